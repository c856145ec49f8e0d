"""What sales reps see inside the CRM: the HubSpot app card's JSON, and the deal pages that
open in the CRM's iframe (HubSpot modal, Pipedrive custom panel). No cookies: every page
carries a page token and every POST its own single-purpose action token (app.ui_auth)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from typing import Any

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for

from app.access import AMOUNTS_HIDDEN, Viewer, may_act, may_see_all_money, may_see_money, may_view_record
from app.access import refuse_action, viewer_for
from app.card_data import card_facts, company_invoices, deal_link, deal_summary, money, open_review_items
from app.card_data import review_queue, without_money
from app.company_import import connected_xero, contact_choices, crm_name, import_into_company, link_company
from app.company_import import linked_contact
from app.connection_state import connection_notices
from app.engine.intake import request_invoice
from app.engine.preview import preview_invoice
from app.engine.reviews import (
    dismiss_review_item,
    keep_xero_version,
    resend_deal,
    retry_review_item,
)
from app.extensions import db
from app.models import CrmKind, Installation, ReviewItem, ReviewStatus, StageAction
from app.runtime import get_settings
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from app.ui_auth import View, issue_action_token, issue_action_tokens, issue_view_token, read_action_token
from app.ui_auth import read_view_token
from app.views.common import active_installation, called_url, crm_frame_headers, is_crm_id, message_page
from app.views.common import page_url, pipedrive_caller, pipedrive_page_url, settings_view, view_installation
from app.wiring import adapter_for
from crm_adapters.base import CrmError
from domain.crm import WebhookRejected, WebhookRequest
from xero.client import ContactDetails
from xero.errors import FixData, XeroFailure
from xero.status import LABELS

log = logging.getLogger(__name__)
bp = Blueprint("cards", __name__)
bp.after_request(crm_frame_headers)

# The parameters that say who is asking about what (HubSpot's and the card's own).
CARD_IDENTITY = ("portalId", "userId", "userEmail", "appId", "objectId", "objectType")
# The custom modal's name in Developer Hub (app_manifest/pipedrive/app.json `custom_modals`):
# the SDK's OPEN_MODAL takes a custom modal's "id or name" as action_id (SDK README).
PIPEDRIVE_REVIEW_MODAL = "Paydeck review queue"


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
    return jsonify({**_card_urls(installation, user, object_type, object_id),
                    **card_facts(installation, user, object_type, object_id)}), 200


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

@dataclass(frozen=True)
class _Opened:
    """A record's page opened with its page token: by whom, and whether they see its money."""

    token: str | None
    view: View
    installation: Installation
    viewer: Viewer
    money: bool


def _open(object_type: str, object_id: str) -> _Opened:
    """The page token's view of this record (else a 401) and its viewer."""
    token = request.args.get("t")
    view = read_view_token(token, object_type, object_id)
    installation = view_installation(view)
    viewer = viewer_for(installation, view.user)
    return _Opened(token, view, installation, viewer, may_see_money(viewer, object_type, object_id))


@bp.get("/ui/deal/<deal_id>")
def deal_page(deal_id: str) -> str:
    opened = _open("deal", deal_id)
    view, installation = opened.view, opened.installation
    link = deal_link(installation.id, deal_id)
    preview: Any = None
    problem = ""
    if opened.money and (link is None or not link.xero_invoice_id):
        try:
            preview = preview_invoice(installation, deal_id)
        except (CrmError, XeroFailure, TokenUnavailable, TokenReconnectNeeded) as exc:
            problem = f"Could not build a preview right now: {exc}"
    items = open_review_items(installation.id, deal_id)
    pipedrive = request.args.get("pd") == "1"
    review = replace(view, object_type="review", object_id=str(installation.id))
    summary = deal_summary(installation.id, deal_id)
    return render_template("deal.html", token=opened.token, deal_id=deal_id, link=link,
                           push_token=issue_action_token(view, "push"),
                           retry_tokens=issue_action_tokens(view, "retry", (i.id for i in items)),
                           summary=summary if opened.money else without_money(summary), preview=preview,
                           money=opened.money, may_act=may_act(opened.viewer, "deal", deal_id),
                           problem=problem, items=items, message=request.args.get("m", ""),
                           pipedrive=pipedrive, review_url=page_url(review, pipedrive=pipedrive),
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

@bp.get("/ui/company/<company_id>")
def company_page(company_id: str) -> str:
    """The company's Xero contact (or suggested contacts and a search, to link or import one),
    what it owes, recent invoices."""
    opened = _open("company", company_id)
    installation = opened.installation
    linked = linked_contact(installation.id, company_id)
    contact_id, contact_name = linked if linked else (None, "")
    owed = company_invoices(installation.id, contact_id)
    query = (request.args.get("q") or "").strip()
    results, suggestions, problem = contact_choices(installation, company_id, query, contact_id is not None)
    return render_template("company.html", token=opened.token, company_id=company_id,
                           link_token=issue_action_token(opened.view, "link"),
                           import_token=issue_action_token(opened.view, "import"),
                           contact_id=contact_id, contact_name=contact_name, invoices=owed.invoices,
                           outstanding=money(owed.outstanding), overdue=money(owed.overdue), query=query,
                           results=results, suggestions=suggestions, problem=problem,
                           crm_name=crm_name(installation), labels=LABELS,
                           message=request.args.get("m", ""), money=opened.money,
                           amounts_hidden=AMOUNTS_HIDDEN,
                           may_act=may_act(opened.viewer, "company", company_id),
                           pipedrive=request.args.get("pd") == "1")


@bp.post("/ui/company/<company_id>/link")
def link_contact(company_id: str) -> Response:
    """Link this CRM company to the Xero contact a person chose (replacing any earlier link)."""
    view, installation, token = _company_action(company_id, "link")
    contact = _chosen_contact(installation, company_id, token)
    link_company(installation, company_id, contact, view.user)
    return redirect(_company_url(company_id, token, f"Linked to {contact.name}: new invoices for "
                                                    "this company go to that Xero contact."))


@bp.post("/ui/company/<company_id>/import")
def import_contact(company_id: str) -> Response:
    """Link, as above, and copy the contact's phone, address, website and tax number into the
    company's empty fields (what a rep typed is never overwritten)."""
    view, installation, token = _company_action(company_id, "import")
    contact = _chosen_contact(installation, company_id, token)
    outcome = import_into_company(installation, company_id, contact, view.user)
    return redirect(_company_url(company_id, token, outcome.summary()))


def _company_action(company_id: str, action: str) -> tuple[View, Installation, str]:
    """The view a company form's action token grants (spent), its installation, and a page
    token for the page again (no longer-lived than the form's); a 403 page unless they may act."""
    view = read_action_token(request.form.get("a"), action, "company", company_id)
    token = issue_view_token(view)
    installation = view_installation(view)
    _require_act(viewer_for(installation, view.user), "company", company_id, action)
    return view, installation, token


# Xero's ContactID (a GUID). Xero's GET /Contacts/{ContactID} also takes a contact number,
# which the company page never sends: anything else is refused before calling Xero.
_CONTACT_ID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _chosen_contact(installation: Installation, company_id: str, token: str) -> ContactDetails:
    """The Xero contact the form names, read from Xero (one GET). A 4xx page if there is no
    such active contact; back to the page with a notice if Xero cannot answer now."""
    back = _company_url(company_id, token)
    contact_id = request.form.get("contact_id", "").strip()
    if not _CONTACT_ID.match(contact_id):
        abort(message_page("Choose a Xero contact", "Pick a contact from the suggestions or the "
                           "search results.", 400, back))
    try:
        contact = connected_xero(installation).get_contact(contact_id)
    except FixData as exc:
        if exc.status != 404:
            abort(redirect(_company_url(company_id, token, f"Xero refused to show that contact "
                                                           f"({exc}). Nothing was changed.")))
        abort(message_page("No such Xero contact", "Xero has no contact with that id (it may have "
                           "been deleted or merged in Xero). Nothing was changed.", 404, back))
    except XeroFailure as exc:
        abort(redirect(_company_url(company_id, token, f"Could not read the contact from Xero "
                                                       f"right now ({exc}). Nothing was changed.")))
    if not contact.active:
        abort(message_page("Archived in Xero", f"{contact.name} is archived in Xero, so invoices "
                           "cannot go to it. Restore it in Xero or choose another contact.",
                           409, back))
    return contact


def _company_url(company_id: str, token: str, message: str | None = None) -> str:
    """The company page again, keeping Pipedrive's panel mode (`pd`) when the form carried it."""
    return url_for("cards.company_page", company_id=company_id, t=token, m=message, pd=_pd())


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
    items, events = review_queue(view.installation_id, deal, status, _day(request.args.get("since")))
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
                            pd=_pd()))


def _day(value: str | None) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc) if value else None
    except ValueError:
        abort(400, "since: use YYYY-MM-DD")


# --- helpers -----------------------------------------------------------------------------------------

def _back(deal_id: str, view: View, message: str) -> Response:
    """The deal page again, with a page token no longer-lived than the action's."""
    return redirect(url_for("cards.deal_page", deal_id=deal_id, t=issue_view_token(view), m=message,
                            pd=_pd()))


def _pd() -> str | None:
    """`pd=1` again after a form from a page in Pipedrive's panel mode."""
    return "1" if request.form.get("pd") == "1" else None


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
