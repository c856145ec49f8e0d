"""The sandbox console: a start page, mock CRM record views that embed Paydeck's real card
pages, and a mock Xero where the bookkeeper records payments.

It plays the parts a newcomer has no account for. A stage move here is a stage move in the
fake CRM (which fires its signed webhook at Paydeck); the card is fetched the way HubSpot's
`hubspot.fetch` does (v3-signed) or loaded the way a Pipedrive custom panel is (JWT in the
URL); a payment is recorded in the fake Xero's books and announced with a signed Xero
webhook. Paydeck itself is not touched from here.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import requests
from flask import Flask, abort, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from sandbox.demo import ADMIN_EMAIL, Sandbox

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates" / "console"


class Console:
    """State the console's pages read: the sandbox, and whether it finished setting up."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.ready = False
        self.error = ""


def create_console(console: Console) -> Flask:
    app = Flask(__name__, template_folder=str(TEMPLATES))
    sandbox = console.sandbox
    paydeck = sandbox.paydeck_url

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"paydeck_url": paydeck, "console": console, "sandbox": sandbox}

    @app.before_request
    def _until_ready() -> Response | None:
        if not console.ready and request.endpoint not in ("index", "ready", "static"):
            return redirect(url_for("index"))
        return None

    @app.get("/")
    def index() -> str:
        if not console.ready:
            return render_template("starting.html")
        return render_template("index.html", hubspot=_hubspot_deals(sandbox),
                               pipedrive=_pipedrive_deals(sandbox))

    @app.get("/ready")
    def ready() -> Response:
        return jsonify({"ready": console.ready, "error": console.error})

    # --- HubSpot -----------------------------------------------------------------------

    @app.get("/hubspot/deals/<deal_id>")
    def hubspot_deal(deal_id: str) -> str:
        props = _hubspot_record(sandbox, "deals", deal_id)
        card = _hubspot_card(sandbox, "deals", deal_id)
        pipeline = next(p for p in sandbox.hubspot.crm.pipelines if p.id == props.get("pipeline"))
        return render_template("hubspot_deal.html", deal_id=deal_id, props=props, card=card,
                               state=_card_state(card),
                               stages=pipeline.stages, demo=sandbox.deal("hubspot", deal_id),
                               message=request.args.get("m", ""))

    @app.post("/hubspot/deals/<deal_id>/stage")
    def hubspot_move(deal_id: str) -> Response:
        props = _hubspot_record(sandbox, "deals", deal_id)
        stage = request.form.get("stage", "")
        pipeline = next(p for p in sandbox.hubspot.crm.pipelines if p.id == props.get("pipeline"))
        if pipeline.stage(stage) is None:
            abort(400, "choose a stage of the deal's pipeline")
        sandbox.hubspot.crm.set_deal_properties(deal_id, dealstage=stage)  # fires the webhook
        return redirect(url_for("hubspot_deal", deal_id=deal_id, m=f"Deal moved to {stage}."))

    @app.get("/hubspot/deals/<deal_id>/card.json")
    def hubspot_card_json(deal_id: str) -> Response:
        return jsonify(_card_state(_hubspot_card(sandbox, "deals", deal_id)))

    @app.get("/hubspot/companies/<company_id>")
    def hubspot_company(company_id: str) -> str:
        props = _hubspot_record(sandbox, "companies", company_id)
        card = _hubspot_card(sandbox, "companies", company_id)
        return render_template("company.html", crm="hubspot", name=props.get("name"),
                               props=props, frame_url=card.get("open_url"), error=card.get("error"))

    # --- Pipedrive ---------------------------------------------------------------------

    @app.get("/pipedrive/deals/<int:deal_id>")
    def pipedrive_deal(deal_id: int) -> str:
        deal = _pipedrive_deal(sandbox, deal_id)
        stages = sorted((s for s in sandbox.pipedrive.api.company().stages.values()
                         if s.pipeline_id == deal.pipeline_id), key=lambda s: s.order_nr)
        frame = sandbox.pipedrive.panel_url(f"{paydeck}/pipedrive/panel/deal", "deal", deal_id)
        fields = _pipedrive_fields(sandbox, deal.custom_fields)
        return render_template("pipedrive_deal.html", deal=deal, stages=stages, frame_url=frame,
                               modals=_pipedrive_modals(sandbox, paydeck, deal_id),
                               fields=fields, state=_pipedrive_state(fields),
                               demo=sandbox.deal("pipedrive", str(deal_id)),
                               message=request.args.get("m", ""))

    @app.post("/pipedrive/deals/<int:deal_id>/stage")
    def pipedrive_move(deal_id: int) -> Response:
        _pipedrive_deal(sandbox, deal_id)
        stage = request.form.get("stage", "")
        if not stage.isdigit():
            abort(400, "choose a stage")
        sandbox.pipedrive.api.move_deal(deal_id, int(stage))  # fires the webhook
        return redirect(url_for("pipedrive_deal", deal_id=deal_id, m="Deal moved."))

    @app.get("/pipedrive/deals/<int:deal_id>/card.json")
    def pipedrive_card_json(deal_id: int) -> Response:
        return jsonify(_pipedrive_state(
            _pipedrive_fields(sandbox, _pipedrive_deal(sandbox, deal_id).custom_fields)))

    @app.get("/pipedrive/organizations/<int:org_id>")
    def pipedrive_organization(org_id: int) -> str:
        org = sandbox.pipedrive.api.company().orgs.get(org_id)
        if org is None:
            abort(404)
        frame = sandbox.pipedrive.panel_url(f"{paydeck}/pipedrive/panel/organization",
                                            "organization", org_id)
        return render_template("company.html", crm="pipedrive", name=org.name, props={},
                               frame_url=frame, error=None)

    # --- admin pages: settings and the review queue ----------------------------------------

    @app.get("/admin/<any(hubspot, pipedrive):crm>/<any(settings, review):page>")
    def admin(crm: str, page: str) -> str:
        if crm == "pipedrive":
            # The review queue is Paydeck's custom modal (opened from a deal's panel in Pipedrive).
            path = "/pipedrive/settings" if page == "settings" else "/pipedrive/modal/review"
            frame = sandbox.pipedrive.panel_url(f"{paydeck}{path}", page, sandbox.pipedrive.company_id)
            error = None
        else:
            first = next(d.deal_id for d in sandbox.deals if d.crm == "hubspot")
            card = _hubspot_card(sandbox, "deals", first, user_email=ADMIN_EMAIL)
            frame, error = card.get(f"{page}_url"), card.get("error")
        return render_template("admin.html", crm=crm, page=page, frame_url=frame, error=error)

    # --- Xero ------------------------------------------------------------------------------

    @app.get("/xero")
    def xero() -> str:
        books = []
        for crm, tenant in sandbox.tenants.items():
            ledger = sandbox.xero.accounting(tenant)
            names = {c.contact_id: c.name for c in ledger.contacts}
            books.append({"crm": crm, "tenant": tenant, "name": next(
                t.name for t in sandbox.xero.tenants if t.tenant_id == tenant),
                "invoices": sorted(ledger.invoices, key=lambda i: i.invoice_number, reverse=True),
                "contacts": names})
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

def _hubspot_record(sandbox: Sandbox, kind: str, object_id: str) -> dict[str, str | None]:
    try:
        return sandbox.hubspot.crm.object_properties(kind, object_id)
    except KeyError:
        abort(404)


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


def _card_state(card: dict[str, Any]) -> dict[str, Any]:
    """What the mock record watches to re-render the card: as the CRM re-renders a card when
    the deal changes (status, number, review items)."""
    return {key: card.get(key) for key in ("status", "invoice_number", "open_review_items", "error")}


def _pipedrive_state(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: fields.get(name)
            for name in ("Xero invoice status", "Xero invoice number", "Paydeck sync error")}


def _hubspot_deals(sandbox: Sandbox) -> list[dict[str, Any]]:
    crm = sandbox.hubspot.crm
    stages = {s.id: s.label for p in crm.pipelines for s in p.stages}
    rows = []
    for demo in (d for d in sandbox.deals if d.crm == "hubspot"):
        props = crm.deal(demo.deal_id)
        rows.append({"demo": demo, "stage": stages.get(props.get("dealstage") or "", ""),
                     "amount": props.get("amount"),
                     "status": props.get("paydeck_invoice_status") or "Not invoiced"})
    return rows


def _pipedrive_modals(sandbox: Sandbox, paydeck: str, deal_id: int) -> dict[str, str]:
    """Paydeck's custom modals (app_manifest/pipedrive/app.json) by name, with the JWT Pipedrive
    would put on their iframe URL."""
    from app.views.cards import PIPEDRIVE_REVIEW_MODAL

    return {PIPEDRIVE_REVIEW_MODAL: sandbox.pipedrive.panel_url(
        f"{paydeck}/pipedrive/modal/review", "deal", deal_id)}


def _pipedrive_deal(sandbox: Sandbox, deal_id: int) -> Any:
    try:
        return sandbox.pipedrive.api.deal(deal_id)
    except KeyError:
        abort(404)


def _pipedrive_fields(sandbox: Sandbox, custom: dict[str, Any]) -> dict[str, Any]:
    """A deal's custom fields by their names, as Pipedrive's deal view shows them."""
    names = {f.field_code: f.field_name for f in sandbox.pipedrive.api.company().custom_fields()}
    return {names.get(key, key): value for key, value in custom.items() if value not in (None, "")}


def _pipedrive_deals(sandbox: Sandbox) -> list[dict[str, Any]]:
    stages = sandbox.pipedrive.api.company().stages
    rows = []
    for demo in (d for d in sandbox.deals if d.crm == "pipedrive"):
        deal = sandbox.pipedrive.api.deal(int(demo.deal_id))
        fields = _pipedrive_fields(sandbox, deal.custom_fields)
        rows.append({"demo": demo, "stage": stages[deal.stage_id].name, "amount": deal.value,
                     "status": fields.get("Xero invoice status") or "Not invoiced"})
    return rows


def _amount(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text!r}") from exc
