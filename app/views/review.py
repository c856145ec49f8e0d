"""The review queue and activity log of one installation, opened from the CRM (HubSpot card,
Pipedrive custom modal and deal panel) with a page token; retry, dismiss, keep and resend;
the log filtered, paged (by key, newest first) and exported as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from functools import partial

from flask import Blueprint, Response, abort, redirect, render_template, request, stream_with_context, url_for

from app import formatting
from app.access.rules import AMOUNTS_HIDDEN, may_see_all_money
from app.access.viewer import Viewer, page_locale, viewer_for
from app.activity_log import ActivityFilter, activity_actions, activity_page, activity_query
from app.card_data.review_queue import deal_names, review_items
from app.connection_state import connection_notices
from app.engine.reviews import (
    dismiss_review_item,
    keep_crm_value,
    keep_xero_value,
    keep_xero_version,
    resend_deal,
    retry_review_item,
)
from app.contact_sync.merge_review import choose_merged_contact
from app.extensions import db
from app.models import AuditEvent, ContactLink, Installation, ReviewItem, ReviewStatus
from app.page_format import current_locale, use_locale
from app.ui_auth import View, issue_action_tokens, issue_view_token, read_action_token, read_view_token
from app.views.common import crm_frame_headers, form_pd, require_act, view_installation

bp = Blueprint("review", __name__)
bp.after_request(crm_frame_headers)

# Xero contacts a merge conflict offers a button for (HubSpot and Pipedrive merge two
# companies at a time; a chain of merges adds one each).
MERGE_CHOICES = 4
OUTCOMES = ("ok", "failed", "partial", "refused", "retry", "review", "unchanged")
MAX_FILTER = 64  # characters of a typed filter kept
CSV_BATCH = 1000  # rows read per query while exporting


@bp.get("/ui/review/<int:installation_id>")
def review_page(installation_id: int) -> str:
    """Open (or all) review items and the activity log, filtered by deal, status, action,
    outcome and dates (days in the viewer's timezone), the log paged by `before`."""
    token = request.args.get("t")
    view, installation, viewer, tz = _open(token, installation_id)
    status = request.args.get("status") or "open"
    if status != "all" and status not in {s.value for s in ReviewStatus}:
        abort(400, f"status: one of all, {', '.join(s.value for s in ReviewStatus)}")
    log_filter = _filter(tz)
    before = _before(request.args.get("before"))
    items = review_items(view.installation_id, log_filter.deal, status, log_filter.since)
    page = activity_page(view.installation_id, log_filter, before)
    names = deal_names(view.installation_id,
                       [i.deal_id for i in items] + [e.deal_id for e in page.events],
                       [(e.xero_ids or {}).get("invoice_id") for e in page.events])
    # The queue spans every deal: details (which quote amounts) only for viewers who may see
    # every deal's money - one owner look-up per listed deal would cost a CRM call each.
    details = may_see_all_money(viewer)
    open_ids = [i.id for i in items if i.status == ReviewStatus.OPEN]
    filters = _filter_args()
    return render_template("review.html", token=token, installation_id=installation_id,
                           action_tokens={verb: issue_action_tokens(view, verb, open_ids)
                                          for verb in _REVIEW_VERBS},
                           details=details, amounts_hidden=AMOUNTS_HIDDEN,
                           connection_notices=connection_notices(installation),
                           items=items, page=page, names=names, status=status,
                           filters=filters, actions=activity_actions(view.installation_id),
                           outcomes=OUTCOMES, before=before, zone=tz or "UTC",
                           older_url=page.older and _page_url(installation_id, token, status,
                                                              before=str(page.older)),
                           newest_url=before and _page_url(installation_id, token, status),
                           csv_url=url_for("review.export_activity", installation_id=installation_id,
                                           t=token, **{k: v for k, v in filters.items() if v}),
                           message=request.args.get("m", ""),
                           statuses=[s.value for s in ReviewStatus],
                           pipedrive=request.args.get("pd") == "1")


@bp.get("/ui/review/<int:installation_id>/activity.csv")
def export_activity(installation_id: int) -> Response:
    """The activity log (as filtered) as CSV: whoever may open the queue (the same page token),
    every matching row, read in batches by key. Columns carry no amounts."""
    view, installation, viewer, tz = _open(request.args.get("t"), installation_id)
    log_filter = _filter(tz)
    query = activity_query(view.installation_id, log_filter)

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["time_utc", f"time ({tz or 'UTC'})", "deal_id", "deal", "invoice",
                         "action", "outcome", "trigger"])
        before: int | None = None
        while True:
            q = query if before is None else query.where(AuditEvent.id < before)
            batch = list(db.session.scalars(q.limit(CSV_BATCH)).all())
            if not batch:
                break
            names = deal_names(view.installation_id, [e.deal_id for e in batch],
                               [(e.xero_ids or {}).get("invoice_id") for e in batch])
            for e in batch:
                invoice_id = (e.xero_ids or {}).get("invoice_id")
                writer.writerow([_safe(v) for v in (
                    _utc(e.created_at), formatting.when(e.created_at, tz, current_locale()), e.deal_id or "",
                    names.deal(e.deal_id), names.invoice(e.deal_id, invoice_id), e.action,
                    e.outcome, e.trigger)])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            before = batch[-1].id
            if len(batch) < CSV_BATCH:
                break
        yield out.getvalue()

    filename = f"paydeck-activity-{installation_id}.csv"
    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


_REVIEW_VERBS = {"retry": (retry_review_item, "Retrying."),
                 "dismiss": (dismiss_review_item, "Dismissed."),
                 # A XERO_EDITED item's choice: finance's edit stays, or the deal overwrites it.
                 "keep": (keep_xero_version, "Kept Xero's version; nothing was sent."),
                 "resend": (resend_deal, "Re-sending the deal."),
                 # A CONTACT_CONFLICT item's one-click choice of the field's value.
                 "use_xero": (keep_xero_value, "Keeping Xero's value: it is being written to "
                                               "the CRM."),
                 "use_crm": (keep_crm_value, "Keeping the CRM's value: it is being written to "
                                             "Xero."),
                 # A CONTACT_MERGE_CONFLICT item's one-click choice of the Xero contact kept.
                 **{f"pick_{n}": (partial(choose_merged_contact, index=n),
                                  "Kept that Xero contact for the merged company; nothing was "
                                  "changed in Xero.") for n in range(MERGE_CHOICES)}}


@bp.post("/ui/review/<int:installation_id>/<int:item_id>/<any(retry, dismiss, keep, resend, use_xero, use_crm, pick_0, pick_1, pick_2, pick_3):verb>")
def review_action(installation_id: int, item_id: int, verb: str) -> Response:
    view = read_action_token(request.form.get("a"), verb, "review", str(installation_id),
                             str(item_id))
    token = issue_view_token(view)
    installation = view_installation(view)
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.installation_id != view.installation_id:
        abort(404)
    link = db.session.get(ContactLink, item.contact_link_id) if item.contact_link_id else None
    if link is not None:  # a contact conflict is about the company (or person), not a deal
        require_act(viewer_for(installation, view.user), link.crm_object_type,
                    link.crm_object_id, verb)
    else:
        require_act(viewer_for(installation, view.user), "deal", item.deal_id or "", verb)
    act, said = _REVIEW_VERBS[verb]
    message = said if act(item_id) else "Already handled."
    return redirect(url_for("review.review_page", installation_id=installation_id, t=token, m=message,
                            pd=form_pd()))


# --- helpers ---------------------------------------------------------------------------------

def _open(token: str | None, installation_id: int) -> tuple[View, Installation, Viewer, str | None]:
    """The queue's page token (else a 401), its active installation, the viewer; the page
    formats in the viewer's locale and timezone."""
    view = read_view_token(token, "review", str(installation_id))
    installation = view_installation(view)  # an uninstalled installation's queue is closed
    viewer = viewer_for(installation, view.user)
    locale, tz = page_locale(viewer)
    use_locale(locale, tz)
    return view, installation, viewer, tz


def _filter_args() -> dict[str, str]:
    """The filter as typed (cut to MAX_FILTER), for the form and the paging links."""
    return {name: (request.args.get(name) or "").strip()[:MAX_FILTER]
            for name in ("deal", "action", "outcome", "since", "until")}


def _filter(tz: str | None) -> ActivityFilter:
    args = _filter_args()
    if args["outcome"] and args["outcome"] not in OUTCOMES:
        abort(400, f"outcome: one of {', '.join(OUTCOMES)}")
    since, until = _day(args["since"], "since", tz), _day(args["until"], "until", tz)
    return ActivityFilter(deal=args["deal"], action=args["action"], outcome=args["outcome"],
                          since=since, until=until + timedelta(days=1) if until else None)


def _day(value: str, name: str, tz: str | None) -> datetime | None:
    """The start of a YYYY-MM-DD day in the viewer's timezone."""
    try:
        return datetime.combine(date.fromisoformat(value), time.min, formatting.zone(tz)) if value else None
    except ValueError:
        abort(400, f"{name}: use YYYY-MM-DD")


def _before(value: str | None) -> int | None:
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        abort(400, "before: an event number")
    return int(value)


def _page_url(installation_id: int, token: str | None, status: str, **extra: str) -> str:
    args = {k: v for k, v in _filter_args().items() if v}
    if request.args.get("pd") == "1":
        args["pd"] = "1"
    return url_for("review.review_page", installation_id=installation_id, t=token, status=status,
                   **args, **extra)


def _utc(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _safe(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP "CSV injection")."""
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
