"""What sales reps see inside the CRM: the HubSpot app card's JSON, and the deal pages that
open in the CRM's iframe (HubSpot modal, Pipedrive custom panel). No cookies: every page
carries a page token and every POST its own single-purpose action token (app.ui_auth)."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from app.runtime import get_settings
from app.access import (
    AMOUNTS_HIDDEN,
    Viewer,
    may_act,
    may_see_all_money,
    may_see_money,
    may_view_record,
    refuse_action,
    viewer_for,
)
from app.company_import import (
    Suggestion,
    crm_name,
    import_into_company,
    link_company,
    linked_contact,
    rank_suggestions,
    search_term,
)
from app.connection_state import connection_notices, connection_state
from app.connections import xero_client
from app.engine.intake import request_invoice
from app.engine.preview import preview_invoice
from app.engine.reviews import (
    dismiss_review_item,
    keep_xero_version,
    resend_deal,
    retry_review_item,
)
from app.extensions import db
from app.models import (
    AuditEvent,
    ConnectionStatus,
    CrmKind,
    Installation,
    InvoiceLink,
    ReviewItem,
    ReviewStatus,
    StageAction,
)
from app.views.common import (
    active_installation,
    called_url,
    crm_frame_headers,
    is_crm_id,
    pipedrive_caller,
    message_page,
    pipedrive_id_query,
    view_installation,
)
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from app.ui_auth import (
    VIEW_TTL,
    View,
    issue_action_token,
    issue_action_tokens,
    issue_view_token,
    read_action_token,
    read_view_token,
)
from app.wiring import adapter_for
from domain.crm import WebhookRejected, WebhookRequest
from crm_adapters.base import CrmError
from xero.client import ContactDetails, ContactResult, XeroClient
from xero.errors import FixData, ReconnectNeeded, XeroFailure
from xero.status import LABELS

log = logging.getLogger(__name__)
bp = Blueprint("cards", __name__)


bp.after_request(crm_frame_headers)


# --- HubSpot app card (hubspot.fetch, signed v3) ------------------------------------------------

# The parameters that say who is asking about what (HubSpot's and the card's own).
CARD_IDENTITY = ("portalId", "userId", "userEmail", "appId", "objectId", "objectType")


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
    view = View(installation.id, user, object_type, object_id)
    body: dict[str, Any] = {"open_url": _page_url(view),
                            "review_url": _page_url(View(installation.id, user, "review",
                                                         str(installation.id)))}
    if _is_installer(installation, user):  # Paydeck's settings are the installing admin's
        body["settings_url"] = _page_url(View(installation.id, user, "settings", str(installation.id)))
    viewer = viewer_for(installation, user)
    if object_type == "deal":
        summary = deal_summary(installation.id, object_id)
        body.update(summary if may_see_money(viewer, "deal", object_id) else without_money(summary))
    body["may_act"] = may_act(viewer, object_type, object_id)
    body["connection"] = connection_state(installation)
    return jsonify(body), 200


def deal_summary(installation_id: int, deal_id: str) -> dict[str, Any]:
    """The card's facts about one deal's invoice (database only: fast)."""
    link = _link(installation_id, deal_id)
    open_q = select(ReviewItem).where(
        ReviewItem.installation_id == installation_id, ReviewItem.deal_id == deal_id,
        ReviewItem.status == ReviewStatus.OPEN)
    open_items = db.session.scalar(select(db.func.count()).select_from(open_q.subquery())) or 0
    newest = db.session.scalars(open_q.order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc())
                                .limit(CARD_REVIEW_ITEMS)).all()
    review = {"open_review_items": open_items, "review_items": [_card_item(i) for i in newest]}
    if link is None or not link.xero_invoice_id:
        return {"invoiced": False, "status": "Not invoiced", **review}
    return {"invoiced": True, "status": LABELS.get(link.deal_status or "", link.status or ""),
            "deal_status": link.deal_status,
            "invoice_number": link.invoice_number, "currency": link.currency,
            "total": _money(link.total), "amount_due": _money(link.amount_due),
            "amount_paid": _money(link.amount_paid),
            "due_date": link.due_date.isoformat() if link.due_date else None,
            "invoice_url": link.online_url, **review}


# What a viewer who may not see money is not sent: amounts, and review details (which quote
# amounts, e.g. a deal amount that differs from its lines).
MONEY_KEYS = ("total", "amount_due", "amount_paid", "currency", "invoice_url")


def without_money(summary: dict[str, Any]) -> dict[str, Any]:
    """The card's summary with the amounts left out, saying why."""
    hidden = {k: v for k, v in summary.items() if k not in MONEY_KEYS}
    hidden["review_items"] = [{k: v for k, v in item.items() if k != "detail"}
                              for item in summary.get("review_items", [])]
    hidden["amounts_hidden"] = AMOUNTS_HIDDEN
    return hidden


# The card lists this many open review items (newest first); `open_review_items` counts them all.
CARD_REVIEW_ITEMS = 5


def _card_item(item: ReviewItem) -> dict[str, Any]:
    """One open review item as the HubSpot card shows it: why it stopped, in words."""
    return {"id": item.id, "reason": item.reason.value,
            "reason_label": item.reason.value.replace("_", " ").capitalize(),
            "detail": item.detail, "created_at": item.created_at.isoformat()}


# --- Pipedrive custom panels (JWT on every load) -------------------------------------------------

@bp.get("/pipedrive/panel/deal")
def pipedrive_deal_panel() -> Response:
    installation, user = pipedrive_caller()
    deal_id = request.args.get("selectedIds") or request.args.get("id") or ""
    if not is_crm_id(deal_id):
        abort(404, "no such record")
    view = View(installation.id, user, "deal", deal_id)
    _require_record(installation, view)
    return redirect(_pipedrive_page_url(view))


# The custom modal's name in Developer Hub (app_manifest/pipedrive/app.json `custom_modals`):
# the SDK's OPEN_MODAL takes a custom modal's "id or name" as action_id (SDK README).
PIPEDRIVE_REVIEW_MODAL = "Paydeck review queue"


@bp.get("/pipedrive/modal/review")
def pipedrive_review_modal() -> Response:
    """Pipedrive's custom modal with the review queue (`?token=<JWT>`, verified on every load)."""
    installation, user = pipedrive_caller()
    view = View(installation.id, user, "review", str(installation.id))
    return redirect(_pipedrive_page_url(view))


# --- the deal page ---------------------------------------------------------------------------------

@bp.get("/ui/deal/<deal_id>")
def deal_page(deal_id: str) -> str:
    token = request.args.get("t")
    view = read_view_token(token, "deal", deal_id)
    installation = view_installation(view)
    viewer = viewer_for(installation, view.user)
    money = may_see_money(viewer, "deal", deal_id)
    link = _link(installation.id, deal_id)
    preview: Any = None
    problem = ""
    if money and (link is None or not link.xero_invoice_id):
        try:
            preview = preview_invoice(installation, deal_id)
        except (CrmError, XeroFailure, TokenUnavailable, TokenReconnectNeeded) as exc:
            problem = f"Could not build a preview right now: {exc}"
    items = db.session.scalars(select(ReviewItem).where(
        ReviewItem.installation_id == installation.id, ReviewItem.deal_id == deal_id,
        ReviewItem.status == ReviewStatus.OPEN).order_by(ReviewItem.created_at.desc())).all()
    pipedrive = request.args.get("pd") == "1"
    review = replace(view, object_type="review", object_id=str(installation.id))
    summary = deal_summary(installation.id, deal_id)
    return render_template("deal.html", token=token, deal_id=deal_id, link=link,
                           push_token=issue_action_token(view, "push"),
                           retry_tokens=issue_action_tokens(view, "retry", (i.id for i in items)),
                           summary=summary if money else without_money(summary), preview=preview,
                           money=money, may_act=may_act(viewer, "deal", deal_id),
                           problem=problem, items=items, message=request.args.get("m", ""),
                           pipedrive=pipedrive, review_url=_page_url(review, pipedrive=pipedrive),
                           review_modal=PIPEDRIVE_REVIEW_MODAL,
                           connection_notices=connection_notices(installation))


@bp.post("/ui/deal/<deal_id>/push")
def push_deal(deal_id: str) -> Response:
    """The push / re-push button: ask the engine for this deal's invoice now."""
    view = read_action_token(request.form.get("a"), "push", "deal", deal_id)
    installation = view_installation(view)
    _require_act(viewer_for(installation, view.user), "deal", deal_id, "push")
    draft_first = installation.settings is not None and installation.settings.draft_first
    action = StageAction.DRAFT if draft_first else StageAction.AUTHORISE
    request_invoice(installation.id, deal_id, action, f"card:{view.user}")
    return _back(deal_id, view, "Sent to Xero: the card updates in a few seconds.")


@bp.post("/ui/deal/<deal_id>/review/<int:item_id>/retry")
def retry_item(deal_id: str, item_id: int) -> Response:
    view = read_action_token(request.form.get("a"), "retry", "deal", deal_id, str(item_id))
    installation = view_installation(view)
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.installation_id != view.installation_id or item.deal_id != deal_id:
        abort(404)
    _require_act(viewer_for(installation, view.user), "deal", deal_id, "retry")
    retried = retry_review_item(item_id)
    return _back(deal_id, view, "Retrying." if retried else "That item was already handled.")


# --- the company page ----------------------------------------------------------------------------

@bp.get("/pipedrive/panel/organization")
def pipedrive_organization_panel() -> Response:
    installation, user = pipedrive_caller()
    org_id = request.args.get("selectedIds") or request.args.get("id") or ""
    if not is_crm_id(org_id):
        abort(404, "no such record")
    view = View(installation.id, user, "company", org_id)
    _require_record(installation, view)
    return redirect(_pipedrive_page_url(view))


@bp.get("/ui/company/<company_id>")
def company_page(company_id: str) -> str:
    """The company's Xero contact (or suggested contacts and a search, to link or import one),
    what it owes, recent invoices."""
    token = request.args.get("t")
    view = read_view_token(token, "company", company_id)
    installation = view_installation(view)
    viewer = viewer_for(installation, view.user)
    money = may_see_money(viewer, "company", company_id)
    linked = linked_contact(installation.id, company_id)
    contact_id, contact_name = linked if linked else (None, "")
    invoices: list[InvoiceLink] = []
    if contact_id:
        invoices = db.session.scalars(select(InvoiceLink).where(
            InvoiceLink.installation_id == installation.id,
            InvoiceLink.xero_contact_id == contact_id).order_by(
            InvoiceLink.created_at.desc()).limit(10)).all()
    outstanding = sum((l.amount_due or 0 for l in invoices if l.status == "AUTHORISED"), Decimal(0))
    overdue = sum((l.amount_due or 0 for l in invoices if l.deal_status == "overdue"), Decimal(0))
    query = (request.args.get("q") or "").strip()
    results: list[ContactResult] = []
    suggestions: list[Suggestion] = []
    problem = ""
    if query:
        try:
            results = _xero_client(installation).search_contacts(query)
        except XeroFailure as exc:
            problem = f"Xero search is unavailable right now: {exc}"
    elif contact_id is None:
        # Only an unlinked company costs a CRM read and a Xero search; a linked one is
        # answered from the database alone.
        suggestions, problem = _suggestions(installation, company_id)
    return render_template("company.html", token=token, company_id=company_id,
                           link_token=issue_action_token(view, "link"),
                           import_token=issue_action_token(view, "import"),
                           contact_id=contact_id, contact_name=contact_name, invoices=invoices,
                           outstanding=_money(outstanding), overdue=_money(overdue), query=query,
                           results=results, suggestions=suggestions, problem=problem,
                           crm_name=crm_name(installation), labels=LABELS,
                           message=request.args.get("m", ""), money=money,
                           amounts_hidden=AMOUNTS_HIDDEN,
                           may_act=may_act(viewer, "company", company_id),
                           pipedrive=request.args.get("pd") == "1")


@bp.post("/ui/company/<company_id>/link")
def link_contact(company_id: str) -> Response:
    """Link this CRM company to the Xero contact a person chose (replacing any earlier link)."""
    view = read_action_token(request.form.get("a"), "link", "company", company_id)
    token = issue_view_token(view)  # the page again, no longer-lived than the form's token
    installation = view_installation(view)
    _require_act(viewer_for(installation, view.user), "company", company_id, "link")
    contact = _chosen_contact(installation, company_id, token)
    link_company(installation, company_id, contact, view.user)
    return redirect(_company_url(company_id, token, f"Linked to {contact.name}: new invoices for "
                                                    "this company go to that Xero contact."))


@bp.post("/ui/company/<company_id>/import")
def import_contact(company_id: str) -> Response:
    """Link, as above, and copy the contact's phone, address, website and tax number into the
    company's empty fields (what a rep typed is never overwritten)."""
    view = read_action_token(request.form.get("a"), "import", "company", company_id)
    token = issue_view_token(view)
    installation = view_installation(view)
    _require_act(viewer_for(installation, view.user), "company", company_id, "import")
    contact = _chosen_contact(installation, company_id, token)
    outcome = import_into_company(installation, company_id, contact, view.user)
    return redirect(_company_url(company_id, token, outcome.summary()))


# Xero's ContactID (a GUID). Xero's GET /Contacts/{ContactID} also takes a contact number,
# which the company page never sends: anything else is refused before calling Xero.
_CONTACT_ID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _chosen_contact(installation: Installation, company_id: str,
                    token: str | None) -> ContactDetails:
    """The Xero contact the form names, read from Xero (one GET). A 4xx page if there is no
    such active contact; back to the page with a notice if Xero cannot answer now."""
    back = _company_url(company_id, token)
    contact_id = request.form.get("contact_id", "").strip()
    if not _CONTACT_ID.match(contact_id):
        abort(_notice_page("Choose a Xero contact", "Pick a contact from the suggestions or the "
                           "search results.", 400, back))
    try:
        contact = _xero_client(installation).get_contact(contact_id)
    except FixData as exc:
        if exc.status != 404:
            abort(redirect(_company_url(company_id, token, f"Xero refused to show that contact "
                                                           f"({exc}). Nothing was changed.")))
        abort(_notice_page("No such Xero contact", "Xero has no contact with that id (it may have "
                           "been deleted or merged in Xero). Nothing was changed.", 404, back))
    except XeroFailure as exc:
        abort(redirect(_company_url(company_id, token, f"Could not read the contact from Xero "
                                                       f"right now ({exc}). Nothing was changed.")))
    if not contact.active:
        abort(_notice_page("Archived in Xero", f"{contact.name} is archived in Xero, so invoices "
                           "cannot go to it. Restore it in Xero or choose another contact.",
                           409, back))
    return contact


def _suggestions(installation: Installation, company_id: str) -> tuple[list[Suggestion], str]:
    """Up to five Xero contacts like the company: its name from the CRM, one Xero search."""
    try:
        xero = _xero_client(installation)
        company = adapter_for(installation.crm.value).fetch_company(installation, company_id)
        term = search_term(company.get("name", ""))
        found = xero.search_contacts(term) if term else []
    except CrmError as exc:
        return [], (f"Could not read this company from {crm_name(installation)}, so there are "
                    f"no suggestions: {exc}")
    except XeroFailure as exc:
        return [], f"Xero is unavailable right now, so there are no suggestions: {exc}"
    return rank_suggestions(company, found), ""


def _company_url(company_id: str, token: str | None, message: str | None = None) -> str:
    """The company page again, keeping Pipedrive's panel mode (`pd`) when the form carried it."""
    return url_for("cards.company_page", company_id=company_id, t=token, m=message,
                   pd="1" if request.form.get("pd") == "1" else None)


def _notice_page(title: str, message: str, status: int, back_url: str) -> Response:
    return make_response(render_template("message.html", title=title, message=message,
                                         back_url=back_url), status)


def _xero_client(installation: Installation) -> XeroClient:
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        raise ReconnectNeeded("Xero is not connected")
    return xero_client(connection)


# --- review queue and activity log ----------------------------------------------------------------

@bp.get("/ui/review/<int:installation_id>")
def review_page(installation_id: int) -> str:
    """Open (or all) review items and the audit trail, filtered by deal, status and date."""
    token = request.args.get("t")
    view = read_view_token(token, "review", str(installation_id))
    installation = view_installation(view)  # an uninstalled installation's queue is closed
    deal = (request.args.get("deal") or "").strip()[:64]
    status = request.args.get("status") or "open"
    if status != "all" and status not in {s.value for s in ReviewStatus}:
        abort(400, f"status: one of all, {', '.join(s.value for s in ReviewStatus)}")
    since = _day(request.args.get("since"))
    items_q = select(ReviewItem).where(ReviewItem.installation_id == view.installation_id)
    audit_q = select(AuditEvent).where(AuditEvent.installation_id == view.installation_id)
    if deal:
        items_q, audit_q = items_q.where(ReviewItem.deal_id == deal), audit_q.where(AuditEvent.deal_id == deal)
    if status != "all":
        items_q = items_q.where(ReviewItem.status == ReviewStatus(status))
    if since is not None:
        items_q = items_q.where(ReviewItem.created_at >= since)
        audit_q = audit_q.where(AuditEvent.created_at >= since)
    items = db.session.scalars(items_q.order_by(ReviewItem.created_at.desc()).limit(100)).all()
    events = db.session.scalars(audit_q.order_by(AuditEvent.created_at.desc()).limit(100)).all()
    # The queue spans every deal: details (which quote amounts) only for viewers who may see
    # every deal's money - one owner look-up per listed deal would cost a CRM call each.
    details = may_see_all_money(viewer_for(installation, view.user))
    open_ids = [i.id for i in items if i.status == ReviewStatus.OPEN]
    return render_template("review.html", token=token, installation_id=installation_id,
                           action_tokens={verb: issue_action_tokens(view, verb, open_ids)
                                          for verb in _REVIEW_VERBS},
                           details=details, amounts_hidden=AMOUNTS_HIDDEN,
                           connection_notices=connection_notices(installation),
                           items=items, events=events, deal=deal, status=status,
                           since=request.args.get("since", ""), message=request.args.get("m", ""),
                           statuses=[s.value for s in ReviewStatus],
                           pipedrive=request.args.get("pd") == "1")


_REVIEW_VERBS = {"retry": (retry_review_item, "Retrying."),
                 "dismiss": (dismiss_review_item, "Dismissed."),
                 # A XERO_EDITED item's choice: finance's edit stays, or the deal overwrites it.
                 "keep": (keep_xero_version, "Kept Xero's version; nothing was sent."),
                 "resend": (resend_deal, "Re-sending the deal.")}


@bp.post("/ui/review/<int:installation_id>/<int:item_id>/<any(retry, dismiss, keep, resend):verb>")
def review_action(installation_id: int, item_id: int, verb: str) -> Response:
    view = read_action_token(request.form.get("a"), verb, "review", str(installation_id),
                             str(item_id))
    token = issue_view_token(view)
    installation = view_installation(view)
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.installation_id != view.installation_id:
        abort(404)
    _require_act(viewer_for(installation, view.user), "deal", item.deal_id or "", verb)
    act, said = _REVIEW_VERBS[verb]
    message = said if act(item_id) else "Already handled."
    return redirect(url_for("cards.review_page", installation_id=installation_id, t=token, m=message,
                            pd="1" if request.form.get("pd") == "1" else None))


def _day(value: str | None) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc) if value else None
    except ValueError:
        abort(400, "since: use YYYY-MM-DD")


# --- helpers -----------------------------------------------------------------------------------------

def _page_url(view: View, pipedrive: bool = False) -> str:
    from app.views.settings import FORM_TTL  # the settings page lives as long as its form

    token = issue_view_token(view, ttl=FORM_TTL if view.object_type == "settings" else VIEW_TTL)
    return (f"{get_settings().public_url}/ui/{view.object_type}/{view.object_id}?t={token}"
            + ("&pd=1" if pipedrive else ""))


def _pipedrive_page_url(view: View) -> str:
    """The page for Pipedrive's iframe: panel mode, keeping Pipedrive's `id` for the SDK."""
    return _page_url(view, pipedrive=True) + pipedrive_id_query()


def _back(deal_id: str, view: View, message: str) -> Response:
    """The deal page again, with a page token no longer-lived than the action's."""
    return redirect(url_for("cards.deal_page", deal_id=deal_id, t=issue_view_token(view), m=message,
                            pd="1" if request.form.get("pd") == "1" else None))


def _is_installer(installation: Installation, user: str) -> bool:
    return bool(user) and user.casefold() == (installation.installed_by or "").casefold()


def _require_act(viewer: Viewer, kind: str, record_id: str, action: str) -> None:
    """A 403 page (audited) unless the settings let this viewer act on this record."""
    if not may_act(viewer, kind, record_id):
        abort(message_page("Not allowed", refuse_action(viewer, kind, record_id, action), 403))


def _require_record(installation: Installation, view: View) -> None:
    """Pipedrive: a 403 page (audited) unless this user may see the record the panel names
    (its id is not in the signed JWT)."""
    allowed, why = may_view_record(viewer_for(installation, view.user), view.object_type,
                                   view.object_id)
    if not allowed:
        abort(message_page("You cannot open this record", f"Paydeck cannot show it to you: {why}.", 403))


def _link(installation_id: int, deal_id: str) -> InvoiceLink | None:
    return db.session.scalar(select(InvoiceLink).where(
        InvoiceLink.installation_id == installation_id, InvoiceLink.deal_id == deal_id,
        InvoiceLink.trigger == "deal"))


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))
