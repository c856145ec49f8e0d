"""The sandbox console: a start page, mock CRM record views embedding Paydeck's real card
pages, and a mock Xero where the bookkeeper records payments - the parts a newcomer has no
account for. A stage move here is one in the fake CRM (which fires its signed webhook); cards
are fetched as `hubspot.fetch` does (v3-signed) or loaded as a Pipedrive panel is (JWT in the
URL); a payment goes into the fake Xero's books and out as a signed Xero webhook. Paydeck
itself is not touched from here.

A playground, not a replay: deals, their products, quantities and discounts, products and
companies are created and edited here through the fakes' own seeding helpers, which act as a
CRM user, so the fakes fire the webhooks the real CRMs would (sandbox/console_records.py);
the mock Xero is sandbox/console_xero.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from flask import Flask, abort, jsonify, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from sandbox.demo import ADMIN_EMAIL, Sandbox

# What the mock record watches to re-render the card, as the CRM re-renders a card when the
# deal changes (status, number, review items); for Pipedrive, the custom fields Paydeck writes.
CARD_STATE = ("status", "invoice_number", "open_review_items", "error")
PIPEDRIVE_STATE = ("Xero invoice status", "Xero invoice number", "Paydeck sync error")
# Paydeck's own icon: the console's pages are the sandbox's face of Paydeck.
FAVICON = Path(__file__).resolve().parents[1] / "app" / "static" / "favicon.svg"


@dataclass
class Console:
    """State the console's pages read: the sandbox, and whether it finished setting up."""

    sandbox: Sandbox
    ready: bool = False
    error: str = ""


def create_console(console: Console) -> Flask:
    from sandbox.console_records import register_records
    from sandbox.console_xero import register_xero

    app = Flask(__name__, template_folder=str(Path(__file__).parent / "templates" / "console"))
    sandbox = console.sandbox
    paydeck = sandbox.paydeck_url
    hubspot, pipedrive = sandbox.hubspot, sandbox.pipedrive

    app.jinja_env.globals.update(paydeck_url=paydeck, console=console, sandbox=sandbox)

    @app.before_request
    def _until_ready() -> Response | None:
        if not console.ready and request.endpoint not in ("index", "ready", "favicon"):
            return redirect(url_for("index"))
        return None

    @app.errorhandler(HTTPException)
    def _error_page(error: HTTPException) -> tuple[str, int]:
        """Every refusal is a page of the console, never Werkzeug's bare one."""
        code = error.code or 500
        return render_template("error.html", code=code, name=error.name,
                               detail=error.description if code < 500 else ""), code

    @app.get("/favicon.ico")
    @app.get("/favicon.svg")
    def favicon() -> Response:
        return send_file(FAVICON, mimetype="image/svg+xml", max_age=86400)

    @app.get("/")
    def index() -> str:
        if not console.ready:
            return render_template("starting.html")
        return render_template("index.html", **_deal_rows(sandbox), **_pickers(sandbox),
                               message=request.args.get("m", ""), error=request.args.get("e", ""))

    @app.get("/ready")
    def ready() -> Response:
        return jsonify({"ready": console.ready, "error": console.error})

    # --- HubSpot -----------------------------------------------------------------------

    def hubspot_pipeline(deal_id: str) -> Any:
        props = or_404(hubspot.crm.object_properties, "deals", deal_id)
        return props, next(p for p in hubspot.crm.pipelines if p.id == props.get("pipeline"))

    @app.get("/hubspot/deals/<deal_id>")
    def hubspot_deal(deal_id: str) -> str:
        props, pipeline = hubspot_pipeline(deal_id)
        card = _hubspot_card(sandbox, "deals", deal_id)
        crm = hubspot.crm
        lines = [{"id": i, **crm.object_properties("line_items", i)}
                 for i in crm.associated_ids("deals", deal_id, "line_items")]
        return render_template("hubspot_deal.html", deal_id=deal_id, props=props, card=card,
                               state=_pick(card, CARD_STATE), stages=pipeline.stages,
                               demo=sandbox.deal("hubspot", deal_id), lines=lines,
                               products=_pickers(sandbox)["hubspot_products"],
                               message=request.args.get("m", ""), error=request.args.get("e", ""))

    @app.post("/hubspot/deals/<deal_id>/stage")
    def hubspot_move(deal_id: str) -> Response:
        stage = request.form.get("stage", "")
        if hubspot_pipeline(deal_id)[1].stage(stage) is None:
            abort(400, "Choose a stage of the deal's pipeline.")
        hubspot.crm.set_deal_properties(deal_id, dealstage=stage)  # fires the webhook
        return redirect(url_for("hubspot_deal", deal_id=deal_id, m=f"Deal moved to {stage}."))

    @app.get("/hubspot/deals/<deal_id>/card.json")
    def hubspot_card_json(deal_id: str) -> Response:
        return jsonify(_pick(_hubspot_card(sandbox, "deals", deal_id), CARD_STATE))

    @app.get("/hubspot/companies/<company_id>")
    def hubspot_company(company_id: str) -> str:
        props = or_404(hubspot.crm.object_properties, "companies", company_id)
        card = _hubspot_card(sandbox, "companies", company_id)
        return render_template("company.html", crm="hubspot", name=props.get("name"),
                               company_id=company_id, props=props, frame_url=card.get("open_url"),
                               card_error=card.get("error"), message=request.args.get("m", ""),
                               error=request.args.get("e", ""))

    # --- Pipedrive ---------------------------------------------------------------------

    @app.get("/pipedrive/deals/<int:deal_id>")
    def pipedrive_deal(deal_id: int) -> str:
        from app.views.cards import PIPEDRIVE_REVIEW_MODAL

        deal = or_404(pipedrive.api.deal, deal_id)
        if deal.is_deleted:
            abort(404)
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
            products=_pickers(sandbox)["pipedrive_products"],
            message=request.args.get("m", ""), error=request.args.get("e", ""))

    @app.post("/pipedrive/deals/<int:deal_id>/stage")
    def pipedrive_move(deal_id: int) -> Response:
        or_404(pipedrive.api.deal, deal_id)
        stage = request.form.get("stage", "")
        if not stage.isdigit() or int(stage) not in pipedrive.api.company().stages:
            abort(400, "Choose a stage of the deal's pipeline.")
        pipedrive.api.move_deal(deal_id, int(stage))  # fires the webhook
        return redirect(url_for("pipedrive_deal", deal_id=deal_id, m="Deal moved."))

    @app.get("/pipedrive/deals/<int:deal_id>/card.json")
    def pipedrive_card_json(deal_id: int) -> Response:
        custom = or_404(pipedrive.api.deal, deal_id).custom_fields
        return jsonify(_pick(_pipedrive_fields(sandbox, custom), PIPEDRIVE_STATE))

    @app.get("/pipedrive/organizations/<int:org_id>")
    def pipedrive_organization(org_id: int) -> str:
        org = or_404(pipedrive.api.org, org_id)
        frame = pipedrive.panel_url(f"{paydeck}/pipedrive/panel/organization", "organization",
                                    org_id)
        return render_template("company.html", crm="pipedrive", name=org.name, props={},
                               company_id=org_id, frame_url=frame, card_error=None,
                               message=request.args.get("m", ""), error=request.args.get("e", ""))

    @app.post("/pipedrive/signed-token")
    def pipedrive_signed_token() -> Response:
        """What Pipedrive answers the SDK's GET_SIGNED_TOKEN with: a fresh JWT signed with the
        app's client secret (FakePipedrive.signed_token). Pipedrive's servers sign it, so the
        host page asks here; the secret never reaches a browser. A JSON body is required, so
        another site's page cannot send this without a CORS preflight the console refuses."""
        if not request.is_json:
            abort(415, "Send a JSON body.")
        return jsonify({"token": pipedrive.signed_token()})

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
        return render_template("admin.html", crm=crm, page=page, frame_url=frame, frame_error=error)

    register_records(app, sandbox)
    register_xero(app, sandbox)
    return app


# --- helpers --------------------------------------------------------------------------------------

def or_404(read: Callable[..., Any], *args: Any) -> Any:
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


def _pickers(sandbox: Sandbox) -> dict[str, list[dict[str, Any]]]:
    """Companies and products of each fake CRM, for the console's forms and lists."""
    crm, pipedrive = sandbox.hubspot.crm, sandbox.pipedrive
    with pipedrive.lock:
        company = pipedrive.api.company()
        orgs = [{"id": o.id, "name": o.name} for o in company.orgs.values()]
        products = [{"id": p.id, "name": p.name, "code": p.code,
                     "price": next((x.price for x in p.prices), None)}
                    for p in company.products.values()]
    return {
        "hubspot_companies": [{"id": c["hs_object_id"], "name": c.get("name") or "(no name)"}
                              for c in crm.objects("companies")],
        "hubspot_products": [{"id": p["hs_object_id"], "name": p.get("name"), "code": p.get("hs_sku"),
                              "price": p.get("price")} for p in crm.objects("products")],
        "pipedrive_orgs": orgs,
        "pipedrive_products": products,
    }


def _deal_rows(sandbox: Sandbox) -> dict[str, list[dict[str, Any]]]:
    """The start page's rows: every deal of each fake CRM (the demo's and the newcomer's own),
    with its stage, amount and invoice status."""
    crm, pipedrive = sandbox.hubspot.crm, sandbox.pipedrive
    hubspot_stages = {s.id: s.label for p in crm.pipelines for s in p.stages}
    rows: dict[str, list[dict[str, Any]]] = {"hubspot": [], "pipedrive": []}
    for props in crm.objects("deals"):
        deal_id = props["hs_object_id"] or ""
        demo = sandbox.deal("hubspot", deal_id)
        rows["hubspot"].append({
            "id": deal_id, "title": props.get("dealname") or "(no name)",
            "story": demo.story if demo else "", "amount": props.get("amount"),
            "stage": hubspot_stages.get(props.get("dealstage") or "", ""),
            "status": props.get("paydeck_invoice_status") or "Not invoiced"})
    with pipedrive.lock:
        company = pipedrive.api.company()
        deals = [d for d in company.deals.values() if not d.is_deleted]
        for deal in deals:
            demo = sandbox.deal("pipedrive", str(deal.id))
            status = _pipedrive_fields(sandbox, deal.custom_fields).get("Xero invoice status")
            rows["pipedrive"].append({
                "id": deal.id, "title": deal.title, "story": demo.story if demo else "",
                "amount": f"{deal.value} {deal.currency}", "stage": company.stages[deal.stage_id].name,
                "status": status or "Not invoiced"})
    return rows
