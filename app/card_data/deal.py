"""What the HubSpot card and the deal page show of a deal: its invoice (amounts as exact
decimals and as the viewer reads them, or left out for who may not see money) and its open
review items. Database reads only."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select

from app import formatting
from app.access.rules import AMOUNTS_HIDDEN, may_act, may_see_money
from app.access.viewer import page_locale, viewer_for
from app.card_data.alerts import CARD_REVIEW_ITEMS, installation_alerts
from app.connection_state import connection_state
from app.extensions import db
from app.invoice_view import cached_names, card_json, whole_invoice
from app.models import Installation, InvoiceLink, ReviewItem, ReviewStatus
from xero.status import LABELS

# What a viewer who may not see money is not sent: amounts, and review details (which quote
# amounts, e.g. a deal amount that differs from its lines).
MONEY_KEYS = ("total", "amount_due", "amount_paid", "currency", "invoice_url", "total_text",
              "amount_due_text", "amount_paid_text", "invoice", "pdf_url")
# The card's amounts as the viewer reads them ("AUD 3,036.00"), beside the exact decimals.
TEXT_KEYS = {"total": "total_text", "amount_due": "amount_due_text", "amount_paid": "amount_paid_text"}


def card_facts(installation: Installation, user: str, object_type: str,
               object_id: str) -> dict[str, Any]:
    """The HubSpot card's facts for a verified caller: a deal's invoice (its amounts only if
    they may see them), whether they may act, and the connections' state."""
    viewer = viewer_for(installation, user)
    facts: dict[str, Any] = {}
    if object_type == "deal":
        link = deal_link(installation.id, object_id)
        summary = formatted(deal_summary(installation.id, object_id, link), *page_locale(viewer))
        if summary["invoiced"] and link is not None:  # the whole invoice: lines, totals, payments
            summary["invoice"] = whole_invoice_json(link, *page_locale(viewer))
        facts.update(summary if may_see_money(viewer, "deal", object_id) else without_money(summary))
    facts["may_act"] = may_act(viewer, object_type, object_id)
    facts["connection"] = connection_state(installation)
    facts["installation_alerts"] = installation_alerts(installation)
    return facts


def deal_summary(installation_id: int, deal_id: str,
                 link: InvoiceLink | None | bool = False) -> dict[str, Any]:
    """The card's facts about one deal's invoice (database only: fast); `link`: the deal's
    link if the caller already read it."""
    if link is False:
        link = deal_link(installation_id, deal_id)
    assert link is None or isinstance(link, InvoiceLink)
    open_q = _open_items(installation_id, deal_id)
    open_items = db.session.scalar(select(db.func.count()).select_from(open_q.subquery())) or 0
    newest = db.session.scalars(open_q.order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc())
                                .limit(CARD_REVIEW_ITEMS)).all()
    review = {"open_review_items": open_items, "review_items": [_card_item(i) for i in newest]}
    if link is None or not link.xero_invoice_id:
        return {"invoiced": False, "status": "Not invoiced", **review}
    return {"invoiced": True, "status": LABELS.get(link.deal_status or "", link.status or ""),
            "deal_status": link.deal_status,
            "invoice_number": link.invoice_number, "currency": link.currency,
            "total": money(link.total), "amount_due": money(link.amount_due),
            "amount_paid": money(link.amount_paid),
            "due_date": link.due_date.isoformat() if link.due_date else None,
            "invoice_url": link.online_url, **review}


def whole_invoice_json(link: InvoiceLink, locale: str, tz: str | None) -> dict[str, Any]:
    """The whole invoice for the card's JSON (app/invoice_view.py), in the viewer's locale."""
    return card_json(whole_invoice(link, cached_names(link.installation_id), locale), locale, tz)


def formatted(summary: dict[str, Any], locale: str, tz: str | None) -> dict[str, Any]:
    """The summary with each amount, the due date and each review item's time also as the
    viewer reads them (app/formatting.py): `total_text` "AUD 3,036.00" beside `total` "3036.00"."""
    out = dict(summary)
    for key, text_key in TEXT_KEYS.items():
        if key in summary:
            value = summary[key]
            out[text_key] = formatting.money(None if value is None else Decimal(value),
                                             summary.get("currency"), locale)
    if summary.get("due_date"):
        out["due_date_text"] = formatting.day(date.fromisoformat(summary["due_date"]), locale)
    out["review_items"] = [{**item, "created_at_text": formatting.when(
        datetime.fromisoformat(item["created_at"]), tz, locale)}
        for item in summary.get("review_items", [])]
    return out


def without_money(summary: dict[str, Any]) -> dict[str, Any]:
    """The card's summary with the amounts left out, saying why."""
    hidden = {k: v for k, v in summary.items() if k not in MONEY_KEYS}
    hidden["review_items"] = [{k: v for k, v in item.items() if k != "detail"}
                              for item in summary.get("review_items", [])]
    hidden["amounts_hidden"] = AMOUNTS_HIDDEN
    return hidden


def _card_item(item: ReviewItem) -> dict[str, Any]:
    """One open review item as the HubSpot card shows it: why it stopped, in words."""
    return {"id": item.id, "reason": item.reason.value,
            "reason_label": item.reason.value.replace("_", " ").capitalize(),
            "detail": item.detail, "created_at": item.created_at.isoformat()}


def deal_link(installation_id: int, deal_id: str) -> InvoiceLink | None:
    """The deal's invoice link (its `deal` trigger: one per deal and trigger)."""
    return db.session.scalar(select(InvoiceLink).where(
        InvoiceLink.installation_id == installation_id, InvoiceLink.deal_id == deal_id,
        InvoiceLink.trigger == "deal"))


def open_review_items(installation_id: int, deal_id: str) -> list[ReviewItem]:
    """The deal's open review items, newest first."""
    return list(db.session.scalars(_open_items(installation_id, deal_id)
                                   .order_by(ReviewItem.created_at.desc())).all())


def _open_items(installation_id: int, deal_id: str) -> Select[tuple[ReviewItem]]:
    return select(ReviewItem).where(
        ReviewItem.installation_id == installation_id, ReviewItem.deal_id == deal_id,
        ReviewItem.status == ReviewStatus.OPEN)


def money(value: Decimal | None) -> str | None:
    """An amount as the card and pages show it: 2 decimals."""
    return None if value is None else str(value.quantize(Decimal("0.01")))
