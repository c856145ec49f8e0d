"""What sales reps see inside the CRM: the HubSpot app card's JSON, the Pipedrive panels and
modal, and the deal page that opens in the CRM's iframe (HubSpot modal, Pipedrive custom
panel). No cookies: every page carries a page token and every POST its own single-purpose
action token (app.ui_auth). The company page and the review queue have their own views."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for

from app.access.rules import may_act, may_administer_pipedrive, may_view_record
from app.access.viewer import remember_hubspot_locale, viewer_for
from app.card_data.company import deal_person_sync
from app.card_data.deal import card_facts, deal_link, deal_summary, open_review_items, without_money
from app.crm_names import crm_name
from app.engine.push import CREATE, FIX_CONNECT_XERO, FIX_RECONNECT_XERO, FIX_REINSTALL, invoice_history
from app.engine.push import plan_push, push
from app.engine.preview import preview_invoice
from app.engine.reviews import retry_review_item
from app.extensions import db
from app.invoice_view import invoice_pdf_url, page_section
from app.models import CrmKind, Installation, ReviewItem
from app.runtime import get_settings
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from app.ui_auth import View, issue_action_token, issue_action_tokens, issue_view_token, read_action_token
from app.views.common import active_installation, called_url, crm_frame_headers, form_pd, is_crm_id
from app.views.common import message_page, open_record, page_url, pipedrive_caller, pipedrive_page_url
import app.views.common as _common
from app.views.common import page_alerts, require_act, settings_view, view_installation
from app.wiring import adapter_for
from crm_adapters.base import CrmError
from domain.crm import WebhookRejected, WebhookRequest
from xero.errors import XeroFailure

log = logging.getLogger(__name__)
bp = Blueprint("cards", __name__)
# The review queue's custom modal name (defined in app.views.common; the sandbox console reads it here).
PIPEDRIVE_REVIEW_MODAL = _common.PIPEDRIVE_REVIEW_MODAL
bp.after_request(crm_frame_headers)

# The parameters that say who is asking about what (HubSpot's and the card's own).
CARD_IDENTITY = ("portalId", "userId", "userEmail", "appId", "objectId", "objectType")


# --- HubSpot app card (hubspot.fetch, signed v3) ------------------------------------------------

@bp.get("/hubspot/card")
def hubspot_card() -> tuple[Response, int]:
    req = WebhookRequest("GET", called_url(), request.headers, b"")
    try:
        adapter_for("hubspot").verify_webhook(req, None)
    except WebhookRejected as exc:
        return jsonify({"error": exc.reason}), 401
    repeated = [name for name in CARD_IDENTITY if len(request.args.getlist(name)) > 1]
    if repeated:
        # HubSpot appends its own portalId, userId, userEmail and appId and signs the whole
        # URL, so a copy placed before them would still verify: identity comes only from a
        # parameter that appears once, which is then HubSpot's.
        log.warning("hubspot card: identity parameters repeated (%s): refused", ", ".join(repeated))
        return jsonify({"error": f"repeated parameters: {', '.join(repeated)}"}), 400
    app_id = get_settings().hubspot_app_id
    if app_id and request.args.get("appId", app_id) != app_id:
        return jsonify({"error": "the request is for another app"}), 401
    installation = active_installation(CrmKind.HUBSPOT, request.args.get("portalId", ""))
    if installation is None:
        return jsonify({"error": "Paydeck is not installed in this HubSpot account"}), 404
    object_type = "company" if request.args.get("objectType") in ("companies", "company", "0-2") else "deal"
    object_id = request.args.get("objectId", "")
    if not is_crm_id(object_id):
        return jsonify({"error": "objectId is required"}), 400
    user = request.args.get("userEmail", "")
    # The card passes its user's locale and the account's timezone (HubSpot's extension
    # context: user.locale, portal.timezone), signed with the rest of the URL.
    remember_hubspot_locale(installation, user, request.args.get("locale"),
                            request.args.get("timezone"))
    facts = card_facts(installation, user, object_type, object_id)
    urls = _card_urls(installation, user, object_type, object_id)
    if "invoice" in facts:  # invoiced, and this viewer may see its amounts
        facts["pdf_url"] = invoice_pdf_url(urls["open_url"], object_id)
    return jsonify({**urls, **facts}), 200


def _card_urls(installation: Installation, user: str, object_type: str, object_id: str) -> dict[str, str]:
    """The pages the card opens, each with a fresh page token."""
    urls = {"open_url": page_url(View(installation.id, user, object_type, object_id)),
            "review_url": page_url(View(installation.id, user, "review", str(installation.id)))}
    if _is_installer(installation, user):  # Paydeck's settings are the installing admin's
        urls["settings_url"] = page_url(settings_view(installation, user))
    return urls


# --- Pipedrive custom panels and modal (JWT on every load) ---------------------------------------

@bp.get("/pipedrive/panel/deal")
def pipedrive_deal_panel() -> Response:
    return _pipedrive_panel("deal")


@bp.get("/pipedrive/panel/organization")
def pipedrive_organization_panel() -> Response:
    return _pipedrive_panel("company")


def _pipedrive_panel(object_type: str) -> Response:
    """The page of the record a panel shows, if this user may see it (its id is not in the
    signed JWT)."""
    installation, user = pipedrive_caller()
    record_id = request.args.get("selectedIds") or request.args.get("id") or ""
    if not is_crm_id(record_id):
        abort(404, "no such record")
    view = View(installation.id, user, object_type, record_id)
    _require_record(installation, view)
    return redirect(pipedrive_page_url(view))


@bp.get("/pipedrive/modal/review")
def pipedrive_review_modal() -> Response:
    """Pipedrive's custom modal with the review queue (`?token=<JWT>`, verified on every load)."""
    installation, user = pipedrive_caller()
    return redirect(pipedrive_page_url(View(installation.id, user, "review", str(installation.id))))


# --- the deal page ---------------------------------------------------------------------------------

@bp.get("/ui/deal/<deal_id>")
def deal_page(deal_id: str) -> str:
    opened = open_record("deal", deal_id)
    view, installation = opened.view, opened.installation
    link = deal_link(installation.id, deal_id)
    preview: Any = None
    problem = ""
    if opened.money and (link is None or not link.xero_invoice_id):
        try:
            preview = preview_invoice(installation, deal_id)
        except (CrmError, XeroFailure, TokenUnavailable, TokenReconnectNeeded) as exc:
            problem = f"Could not build a preview right now: {exc}"
    acts = may_act(opened.viewer, "deal", deal_id)
    plan = None
    if acts:
        stage = (preview.deal.stage_id if preview is not None and preview.deal is not None
                 else _stage_if_needed(installation, deal_id, link))
        plan = plan_push(installation, link, stage)
    items = open_review_items(installation.id, deal_id)
    pipedrive = request.args.get("pd") == "1"
    summary = deal_summary(installation.id, deal_id, link)
    return render_template("deal.html", token=opened.token, deal_id=deal_id, link=link,
                           push_token=issue_action_token(view, "push"), plan=plan,
                           fix_url=_fix_url(installation, view, plan, pipedrive),
                           history=invoice_history(installation.id, deal_id),
                           retry_tokens=issue_action_tokens(view, "retry", (i.id for i in items)),
                           summary=summary if opened.money else without_money(summary), preview=preview,
                           money=opened.money, may_act=acts,
                           problem=problem, items=items, message=request.args.get("m", ""),
                           person_sync=deal_person_sync(installation.id, link),
                           crm_name=crm_name(installation),
                           pipedrive=pipedrive, **page_alerts(view, installation, pipedrive),
                           **page_section(view, link, opened.token, opened.money, acts))


@bp.post("/ui/deal/<deal_id>/push")
def push_deal(deal_id: str) -> Response:
    """The push / re-push / re-invoice button: decided again now (the invoice or the
    connections may have changed since the page was drawn); enqueued only if it will do
    what the page said."""
    view = read_action_token(request.form.get("a"), "push", "deal", deal_id)
    installation = view_installation(view)
    require_act(viewer_for(installation, view.user), "deal", deal_id, "push")
    link = deal_link(installation.id, deal_id)
    plan = plan_push(installation, link, _stage_if_needed(installation, deal_id, link))
    if not plan.allowed:
        return _back(deal_id, view, plan.says)
    expected = request.form.get("kind", CREATE)
    if plan.kind != expected:
        return _back(deal_id, view, "The invoice changed in Xero since this page was opened, "
                                    f"so nothing was sent. Now: {plan.says}")
    number = link.invoice_number if link is not None else None
    push(installation, deal_id, plan, view.user)
    return _back(deal_id, view, plan.done(number))


def _stage_if_needed(installation: Installation, deal_id: str, link: Any) -> str | None:
    """The deal's stage now, when what a push does depends on it ("" when it does not: a
    paid or approved invoice; None when the CRM could not be read)."""
    if link is not None and link.xero_invoice_id and (link.status or "") in ("PAID", "AUTHORISED"):
        return ""
    try:
        deal = adapter_for(installation.crm.value).fetch_deals(installation, [deal_id]).get(deal_id)
    except (CrmError, TokenUnavailable, TokenReconnectNeeded) as exc:
        log.info("deal %s: stage not read for the push decision: %s", deal_id, exc)
        return None
    return deal.stage_id if deal is not None else None


def _fix_url(installation: Installation, view: View, plan: Any, pipedrive: bool) -> str | None:
    """Where the fix for a push that cannot happen is, for this viewer: Paydeck's settings
    (connect or reconnect Xero) for the admins who may open them, the install link for a
    lost CRM grant; None when the viewer cannot fix it themselves."""
    if plan is None or plan.allowed:
        return None
    if plan.fix in (FIX_CONNECT_XERO, FIX_RECONNECT_XERO):
        if installation.crm == CrmKind.PIPEDRIVE:
            allowed = may_administer_pipedrive(installation, view.user)[0]
        else:
            allowed = _is_installer(installation, view.user)
        if allowed:
            return page_url(replace(view, object_type="settings", object_id=str(installation.id)),
                            pipedrive=pipedrive)
    if plan.fix == FIX_REINSTALL:
        return url_for("install.start", crm=installation.crm.value, _external=False)
    return None


@bp.post("/ui/deal/<deal_id>/review/<int:item_id>/retry")
def retry_item(deal_id: str, item_id: int) -> Response:
    view = read_action_token(request.form.get("a"), "retry", "deal", deal_id, str(item_id))
    installation = view_installation(view)
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.installation_id != view.installation_id or item.deal_id != deal_id:
        abort(404)
    require_act(viewer_for(installation, view.user), "deal", deal_id, "retry")
    retried = retry_review_item(item_id)
    return _back(deal_id, view, "Retrying." if retried else "That item was already handled.")


# --- helpers -----------------------------------------------------------------------------------------

def _back(deal_id: str, view: View, message: str) -> Response:
    """The deal page again, with a page token no longer-lived than the action's."""
    return redirect(url_for("cards.deal_page", deal_id=deal_id, t=issue_view_token(view), m=message,
                            pd=form_pd()))


def _is_installer(installation: Installation, user: str) -> bool:
    return bool(user) and user.casefold() == (installation.installed_by or "").casefold()


def _require_record(installation: Installation, view: View) -> None:
    """Pipedrive: a 403 page (audited) unless this user may see the record the panel names
    (its id is not in the signed JWT)."""
    allowed, why = may_view_record(viewer_for(installation, view.user), view.object_type,
                                   view.object_id)
    if not allowed:
        abort(message_page("You cannot open this record", f"Paydeck cannot show it to you: {why}.", 403))
