"""The review queue and activity log of one installation, opened from the CRM (HubSpot card,
Pipedrive custom modal and deal panel) with a page token; retry, dismiss, keep and resend."""

from __future__ import annotations

from datetime import date, datetime, timezone

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from app.access import AMOUNTS_HIDDEN, may_see_all_money, viewer_for
from app.card_data import review_queue
from app.connection_state import connection_notices
from app.engine.reviews import (
    dismiss_review_item,
    keep_crm_value,
    keep_xero_value,
    keep_xero_version,
    resend_deal,
    retry_review_item,
)
from app.extensions import db
from app.models import ContactLink, ReviewItem, ReviewStatus
from app.ui_auth import issue_action_tokens, issue_view_token, read_action_token, read_view_token
from app.views.common import crm_frame_headers, form_pd, require_act, view_installation

bp = Blueprint("review", __name__)
bp.after_request(crm_frame_headers)


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
                 "resend": (resend_deal, "Re-sending the deal."),
                 # A CONTACT_CONFLICT item's one-click choice of the field's value.
                 "use_xero": (keep_xero_value, "Keeping Xero's value: it is being written to "
                                               "the CRM."),
                 "use_crm": (keep_crm_value, "Keeping the CRM's value: it is being written to "
                                             "Xero.")}


@bp.post("/ui/review/<int:installation_id>/<int:item_id>/<any(retry, dismiss, keep, resend, use_xero, use_crm):verb>")
def review_action(installation_id: int, item_id: int, verb: str) -> Response:
    view = read_action_token(request.form.get("a"), verb, "review", str(installation_id),
                             str(item_id))
    token = issue_view_token(view)
    installation = view_installation(view)
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.installation_id != view.installation_id:
        abort(404)
    link = db.session.get(ContactLink, item.contact_link_id) if item.contact_link_id else None
    if link is not None:  # a contact conflict is about the company, not a deal
        require_act(viewer_for(installation, view.user), "company", link.crm_object_id, verb)
    else:
        require_act(viewer_for(installation, view.user), "deal", item.deal_id or "", verb)
    act, said = _REVIEW_VERBS[verb]
    message = said if act(item_id) else "Already handled."
    return redirect(url_for("review.review_page", installation_id=installation_id, t=token, m=message,
                            pd=form_pd()))


def _day(value: str | None) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc) if value else None
    except ValueError:
        abort(400, "since: use YYYY-MM-DD")
