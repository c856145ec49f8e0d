"""The sandbox console: a start page, mock CRM record views embedding Paydeck's real card
pages, and a mock Xero where the bookkeeper records payments - the parts a newcomer has no
account for. A stage move here is one in the fake CRM (which fires its signed webhook); cards
are fetched as `hubspot.fetch` does (v3-signed) or loaded as a Pipedrive panel is (JWT in the
URL); a payment goes into the fake Xero's books and out as a signed Xero webhook. Paydeck
itself is not touched from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import requests
from flask import Flask, abort, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from sandbox.demo import ADMIN_EMAIL, Sandbox

# What the mock record watches to re-render the card, as the CRM re-renders a card when the
# deal changes (status, number, review items); for Pipedrive, the custom fields Paydeck writes.
CARD_STATE = ("status", "invoice_number", "open_review_items", "error")
PIPEDRIVE_STATE = ("Xero invoice status", "Xero invoice number", "Paydeck sync error")


@dataclass
class Console:
    """State the console's pages read: the sandbox, and whether it finished setting up."""

    sandbox: Sandbox
    ready: bool = False
    error: str = ""


def create_console(console: Console) -> Flask:
    app = Flask(__name__, template_folder=str(Path(__file__).parent / "templates" / "console"))
    sandbox = console.sandbox
    paydeck = sandbox.paydeck_url
    hubspot, pipedrive = sandbox.hubspot, sandbox.pipedrive

    app.jinja_env.globals.update(paydeck_url=paydeck, console=console, sandbox=sandbox)

    @app.before_request
    def _until_ready() -> Response | None:
        if not console.ready and request.endpoint not in ("index", "ready", "static"):
            return redirect(url_for("index"))
        return None

    @app.get("/")
    def index() -> str:
        if not console.ready:
            return render_template("starting.html")
        return render_template("index.html", **_deal_rows(sandbox))

    @app.get("/ready")
    def ready() -> Response:
        return jsonify({"ready": console.ready, "error": console.error})

    # --- HubSpot -----------------------------------------------------------------------

    def hubspot_pipeline(deal_id: str) -> Any:
        props = _or_404(hubspot.crm.object_properties, "deals", deal_id)
        return props, next(p for p in hubspot.crm.pipelines if p.id == props.get("pipeline"))

    @app.get("/hubspot/deals/<deal_id>")
    def hubspot_deal(deal_id: str) -> str:
        props, pipeline = hubspot_pipeline(deal_id)
        card = _hubspot_card(sandbox, "deals", deal_id)
        return render_template("hubspot_deal.html", deal_id=deal_id, props=props, card=card,
                               state=_pick(card, CARD_STATE), stages=pipeline.stages,
                               demo=sandbox.deal("hubspot", deal_id),
                               message=request.args.get("m", ""))

    @app.post("/hubspot/deals/<deal_id>/stage")
    def hubspot_move(deal_id: str) -> Response:
        stage = request.form.get("stage", "")
        if hubspot_pipeline(deal_id)[1].stage(stage) is None:
            abort(400, "choose a stage of the deal's pipeline")
        hubspot.crm.set_deal_properties(deal_id, dealstage=stage)  # fires the webhook
        return redirect(url_for("hubspot_deal", deal_id=deal_id, m=f"Deal moved to {stage}."))

    @app.get("/hubspot/deals/<deal_id>/card.json")
    def hubspot_card_json(deal_id: str) -> Response:
        return jsonify(_pick(_hubspot_card(sandbox, "deals", deal_id), CARD_STATE))

    @app.get("/hubspot/companies/<company_id>")
    def hubspot_company(company_id: str) -> str:
        props = _or_404(hubspot.crm.object_properties, "companies", company_id)
        card = _hubspot_card(sandbox, "companies", company_id)
        return render_template("company.html", crm="hubspot", name=props.get("name"),
                               props=props, frame_url=card.get("open_url"), error=card.get("error"))

    # --- Pipedrive ---------------------------------------------------------------------

    @app.get("/pipedrive/deals/<int:deal_id>")
    def pipedrive_deal(deal_id: int) -> str:
        from app.views.cards import PIPEDRIVE_REVIEW_MODAL

        deal = _or_404(pipedrive.api.deal, deal_id)
        stages = sorted((s for s in pipedrive.api.company().stages.values()
                         if s.pipeline_id == deal.pipeline_id), key=lambda s: s.order_nr)
        fields = _pipedrive_fields(sandbox, deal.custom_fields)
        # Paydeck's custom modals (app_manifest/pipedrive/app.json) by name, with the JWT
        # Pipedrive would put on their iframe URL.
        modals = {PIPEDRIVE_REVIEW_MODAL: pipedrive.panel_url(
            f"{paydeck}/pipedrive/modal/review", "deal", deal_id)}
        return render_template(
            "pipedrive_deal.html", deal=deal, stages=stages, modals=modals, fields=fields,
            frame_url=pipedrive.panel_url(f"{paydeck}/pipedrive/panel/deal", "deal", deal_id),
            state=_pick(fields, PIPEDRIVE_STATE), demo=sandbox.deal("pipedrive", str(deal_id)),
            message=request.args.get("m", ""))

    @app.post("/pipedrive/deals/<int:deal_id>/stage")
    def pipedrive_move(deal_id: int) -> Response:
        _or_404(pipedrive.api.deal, deal_id)
        stage = request.form.get("stage", "")
        if not stage.isdigit():
            abort(400, "choose a stage")
        pipedrive.api.move_deal(deal_id, int(stage))  # fires the webhook
        return redirect(url_for("pipedrive_deal", deal_id=deal_id, m="Deal moved."))

    @app.get("/pipedrive/deals/<int:deal_id>/card.json")
    def pipedrive_card_json(deal_id: int) -> Response:
        custom = _or_404(pipedrive.api.deal, deal_id).custom_fields
        return jsonify(_pick(_pipedrive_fields(sandbox, custom), PIPEDRIVE_STATE))

    @app.get("/pipedrive/organizations/<int:org_id>")
    def pipedrive_organization(org_id: int) -> str:
        org = _or_404(pipedrive.api.company().orgs.__getitem__, org_id)
        frame = pipedrive.panel_url(f"{paydeck}/pipedrive/panel/organization", "organization",
                                    org_id)
        return render_template("company.html", crm="pipedrive", name=org.name, props={},
                               frame_url=frame, error=None)

    # --- admin pages: settings and the review queue ----------------------------------------

    @app.get("/admin/<any(hubspot, pipedrive):crm>/<any(settings, review):page>")
    def admin(crm: str, page: str) -> str:
        if crm == "pipedrive":
            # The review queue is Paydeck's custom modal (opened from a deal's panel in Pipedrive).
            path = "/pipedrive/settings" if page == "settings" else "/pipedrive/modal/review"
            frame = pipedrive.panel_url(f"{paydeck}{path}", page, pipedrive.company_id)
            error = None
        else:
            first = next(d.deal_id for d in sandbox.deals if d.crm == "hubspot")
            card = _hubspot_card(sandbox, "deals", first, user_email=ADMIN_EMAIL)
            frame, error = card.get(f"{page}_url"), card.get("error")
        return render_template("admin.html", crm=crm, page=page, frame_url=frame, error=error)

    # --- Xero ------------------------------------------------------------------------------

    @app.get("/xero")
    def xero() -> str:
        names = {t.tenant_id: t.name for t in sandbox.xero.tenants}
        books = []
        for crm, tenant in sandbox.tenants.items():
            ledger = sandbox.xero.accounting(tenant)
            books.append({"crm": crm, "tenant": tenant, "name": names[tenant],
                          "invoices": sorted(ledger.invoices, key=lambda i: i.invoice_number,
                                             reverse=True),
                          "contacts": {c.contact_id: c.name for c in ledger.contacts}})
        return render_template("xero.html", books=books, message=request.args.get("m", ""),
                               error=request.args.get("e", ""))

    @app.post("/xero/<tenant>/invoices/<invoice_id>/<any(pay, void):verb>")
    def xero_change(tenant: str, invoice_id: str, verb: str) -> Response:
        if tenant not in sandbox.tenants.values():
            abort(404)
        ledger = sandbox.xero.accounting(tenant)
        try:
            invoice = ledger.invoice(invoice_id)
            if verb == "pay":
                ledger.pay(invoice_id, _amount(request.form.get("amount", "")))
            else:
                ledger.void(invoice_id)
        except (KeyError, ValueError) as exc:
            return redirect(url_for("xero", e=str(exc)))
        # Xero tells subscribed apps within seconds: a signed webhook to Paydeck.
        sent = sandbox.xero.webhooks.deliver(f"{paydeck}/webhooks/xero", sandbox.xero_webhook_key)
        status = "not sent" if sent is None else f"HTTP {sent.status_code}"
        done = "Payment recorded" if verb == "pay" else "Invoice voided"
        return redirect(url_for("xero", m=f"{done} on {invoice.invoice_number}; "
                                          f"webhook to Paydeck: {status}."))

    return app


# --- helpers --------------------------------------------------------------------------------------

def _or_404(read: Callable[..., Any], *args: Any) -> Any:
    try:
        return read(*args)
    except KeyError:
        abort(404)


def _pick(values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: values.get(key) for key in keys}


def _hubspot_card(sandbox: Sandbox, kind: str, object_id: str,
                  user_email: str | None = None) -> dict[str, Any]:
    """The card's data, fetched as HubSpot's `hubspot.fetch` would (signed)."""
    try:
        response = sandbox.hubspot.card_fetch(f"{sandbox.paydeck_url}/hubspot/card",
                                              {"objectType": kind, "objectId": object_id},
                                              user_email=user_email)
    except requests.RequestException as exc:
        return {"error": f"Paydeck could not be reached: {exc}"}
    body: dict[str, Any] = response.json() if response.headers.get(
        "Content-Type", "").startswith("application/json") else {}
    if response.status_code != 200:
        return {"error": body.get("error") or f"Paydeck answered {response.status_code}"}
    return body


def _pipedrive_fields(sandbox: Sandbox, custom: dict[str, Any]) -> dict[str, Any]:
    """A deal's custom fields by their names, as Pipedrive's deal view shows them."""
    names = {f.field_code: f.field_name for f in sandbox.pipedrive.api.company().custom_fields()}
    return {names.get(key, key): value for key, value in custom.items() if value not in (None, "")}


def _deal_rows(sandbox: Sandbox) -> dict[str, list[dict[str, Any]]]:
    """The start page's rows of demo deals, per CRM: stage, amount and invoice status."""
    crm, api = sandbox.hubspot.crm, sandbox.pipedrive.api
    hubspot_stages = {s.id: s.label for p in crm.pipelines for s in p.stages}
    rows: dict[str, list[dict[str, Any]]] = {"hubspot": [], "pipedrive": []}
    for demo in sandbox.deals:
        if demo.crm == "hubspot":
            props = crm.deal(demo.deal_id)
            stage = hubspot_stages.get(props.get("dealstage") or "", "")
            amount, status = props.get("amount"), props.get("paydeck_invoice_status")
        else:
            deal = api.deal(int(demo.deal_id))
            stage, amount = api.company().stages[deal.stage_id].name, deal.value
            status = _pipedrive_fields(sandbox, deal.custom_fields).get("Xero invoice status")
        rows[demo.crm].append({"demo": demo, "stage": stage, "amount": amount,
                               "status": status or "Not invoiced"})
    return rows


def _amount(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text!r}") from exc
