"""What the CRM cards and pages show: a deal's invoice and open review items, a company's
invoices and what it owes, the review queue (the activity log: app.activity_log). Database
reads only (fast), in the shapes the card JSON and the page templates take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, select

from app import formatting
from app.access import AMOUNTS_HIDDEN, may_act, may_see_money, page_locale, viewer_for
from app.connection_state import connection_state
from app.contact_sync.crm_merges import merged_into
from app.extensions import db
from app.invoice_view import cached_names, card_json, whole_invoice
from app.models import (
    AuditEvent,
    ContactLink,
    ContactSyncSettings,
    Installation,
    InvoiceLink,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
)
from xero.status import LABELS

# The card lists this many open review items (newest first); `open_review_items` counts them all.
CARD_REVIEW_ITEMS = 5
# What a viewer who may not see money is not sent: amounts, and review details (which quote
# amounts, e.g. a deal amount that differs from its lines).
MONEY_KEYS = ("total", "amount_due", "amount_paid", "currency", "invoice_url", "total_text",
              "amount_due_text", "amount_paid_text", "invoice", "pdf_url")
# The card's amounts as the viewer reads them ("AUD 3,036.00"), beside the exact decimals.
TEXT_KEYS = {"total": "total_text", "amount_due": "amount_due_text", "amount_paid": "amount_paid_text"}
COMPANY_INVOICES = 10  # the company page lists its newest invoices
QUEUE_ROWS = 100  # the review page lists at most this many items, and as many events


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


def installation_alerts(installation: Installation) -> list[dict[str, Any]]:
    """Open `reconnect_needed` review items that name no deal: they hold up every deal of the
    installation, so every card and page shows them as a banner until a person closes them in
    the review queue. `fixed`: the connection works again now (the item is still open)."""
    items = db.session.scalars(select(ReviewItem).where(
        ReviewItem.installation_id == installation.id, ReviewItem.deal_id.is_(None),
        ReviewItem.status == ReviewStatus.OPEN, ReviewItem.reason == ReviewReason.RECONNECT_NEEDED)
        .order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc()).limit(CARD_REVIEW_ITEMS)).all()
    if not items:
        return []
    state = connection_state(installation)
    healthy = state["crm"]["state"] == "ok" and state["xero"]["state"] == "connected"
    return [{"id": i.id, "reason": i.reason.value, "title": _alert_title(installation, i.detail, healthy),
             "detail": i.detail.split(": ", 1)[1] if i.detail.startswith(_PARTIES) else i.detail,
             "fixed": healthy, "created_at": i.created_at.isoformat()} for i in items]


_PARTIES = ("xero_reconnect_needed: ", "crm_reconnect_needed: ")


def _alert_title(installation: Installation, detail: str, fixed: bool) -> str:
    """The banner's headline; in the past tense once both connections work again."""
    crm = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}.get(installation.crm.value, "the CRM")
    if detail.startswith("crm_reconnect_needed: "):
        return (f"Paydeck lost access to {crm} and was reconnected since" if fixed
                else f"Paydeck lost access to {crm}: an admin installs Paydeck again")
    if detail.startswith("xero_reconnect_needed: "):
        return ("Xero needed reconnecting and was reconnected since" if fixed
                else "Xero needs reconnecting: an admin reconnects it in Paydeck's settings")
    return ("A connection needed reconnecting and works again now" if fixed
            else "A connection needs reconnecting: invoices are waiting")


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


@dataclass(frozen=True)
class CompanyInvoices:
    """A company's newest invoices (those to its linked Xero contact) and what they leave owed,
    per currency (amounts in different currencies are never added together)."""

    invoices: list[InvoiceLink]
    outstanding: dict[str, Decimal]
    overdue: dict[str, Decimal]


def company_invoices(installation_id: int, contact_id: str | None) -> CompanyInvoices:
    invoices: list[InvoiceLink] = []
    if contact_id:
        invoices = list(db.session.scalars(select(InvoiceLink).where(
            InvoiceLink.installation_id == installation_id,
            InvoiceLink.xero_contact_id == contact_id).order_by(
            InvoiceLink.created_at.desc()).limit(COMPANY_INVOICES)).all())
    outstanding = _by_currency(l for l in invoices if l.status == "AUTHORISED")
    overdue = _by_currency(l for l in invoices if l.deal_status == "overdue")
    return CompanyInvoices(invoices, outstanding, overdue)


# Open review items about a link that the company card lists under its sync state.
SYNC_REASONS = (ReviewReason.CONTACT_CONFLICT, ReviewReason.CONTACT_ARCHIVED,
                ReviewReason.XERO_VALIDATION, ReviewReason.CONTACT_MERGE_CONFLICT,
                ReviewReason.COMPANY_DELETED)


@dataclass(frozen=True)
class CompanySync:
    """The company link's two-way sync state, as the company card shows it. `state`:
    "off" (the admin has not turned contact sync on), "in_sync" (the last pass left the two
    records alike), "waiting" (never synced yet, a write still to retry, or a person to decide
    first: see `items`). The last change on each side is that record's version when Paydeck
    last compared them (Xero's UpdatedDateUTC, the CRM's updatedAt / update_time)."""

    state: str
    xero_changed: datetime | None
    crm_changed: datetime | None
    synced_at: datetime | None
    last_origin: str | None
    flag: str | None  # "archived" (the Xero contact is archived) or "merged" / None
    items: list[ReviewItem]  # open conflicts and other sync review items of the link
    failed: str | None  # the last write's error, when it failed
    # The CRM side (app.contact_sync.crm_merges): "deleted", "merged" (this company was merged
    # into `merged_into`), "merge_conflict" (a person keeps one of several contacts) or None.
    crm_status: str | None = None
    merged_into: str | None = None


def company_sync(installation_id: int, company_id: str) -> CompanySync | None:
    """The sync state of the company's link (None: not linked). Database reads only."""
    link = db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == installation_id, ContactLink.crm_object_type == "company",
        ContactLink.crm_object_id == company_id)).first()
    return None if link is None else link_sync(link)


def deal_person_sync(installation_id: int, invoice_link: Any) -> CompanySync | None:
    """A B2C deal's person link's sync state, for the deal page: the person link (HubSpot
    contact, Pipedrive person) to the Xero contact the deal's invoice went to, if there is
    one and no company link to that contact (a company deal shows its company's on the
    company page). Database reads only."""
    contact_id = getattr(invoice_link, "xero_contact_id", None)
    if not contact_id:
        return None
    links = list(db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == installation_id,
        ContactLink.xero_contact_id == contact_id).order_by(ContactLink.id)))
    if any(link.crm_object_type == "company" for link in links):
        return None
    person = next((link for link in links if link.crm_object_type == "person"), None)
    return None if person is None else link_sync(person)


def link_sync(link: ContactLink) -> CompanySync:
    """A company's or person's link's sync state (for persons: off unless persons sync)."""
    installation_id, object_id = link.installation_id, link.crm_object_id
    settings = db.session.get(ContactSyncSettings, installation_id)
    items = list(db.session.scalars(select(ReviewItem).where(
        ReviewItem.installation_id == installation_id, ReviewItem.contact_link_id == link.id,
        ReviewItem.status == ReviewStatus.OPEN, ReviewItem.reason.in_(SYNC_REASONS))
        .order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc())).all())
    last = db.session.scalars(select(AuditEvent).where(
        AuditEvent.installation_id == installation_id, AuditEvent.action == "contact_synced",
        AuditEvent.detail[link.crm_object_type].as_string() == object_id)
        .order_by(AuditEvent.id.desc()).limit(1)).first()
    failed = ((last.detail or {}).get("error") or "failed") if last is not None and \
        last.outcome == "failed" else None
    flag = link.xero_status
    if (settings is None or not settings.enabled
            or (link.crm_object_type == "person" and not settings.persons)):
        state = "off"
    elif (link.synced_at is None or items or failed or link.open_conflicts or flag
          or link.crm_status):
        state = "waiting"
    else:
        state = "in_sync"
    merged = merged_into(installation_id, object_id) if link.crm_status == "merged" else None
    return CompanySync(state, link.xero_version, link.crm_version, link.synced_at,
                       link.last_origin, flag, items, failed, link.crm_status, merged)


def _by_currency(links: Iterable[InvoiceLink]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for link in links:
        currency = link.currency or ""
        totals[currency] = totals.get(currency, Decimal(0)) + (link.amount_due or Decimal(0))
    return totals


def review_items(installation_id: int, deal: str, status: str,
                 since: datetime | None) -> list[ReviewItem]:
    """The queue's items, newest first, filtered by deal ("" = every deal), status ("all" or a
    ReviewStatus value) and the day they start from; at most QUEUE_ROWS."""
    items_q = select(ReviewItem).where(ReviewItem.installation_id == installation_id)
    if deal:
        items_q = items_q.where(ReviewItem.deal_id == deal)
    if status != "all":
        items_q = items_q.where(ReviewItem.status == ReviewStatus(status))
    if since is not None:
        items_q = items_q.where(ReviewItem.created_at >= since)
    return list(db.session.scalars(items_q.order_by(ReviewItem.created_at.desc(),
                                                    ReviewItem.id.desc()).limit(QUEUE_ROWS)).all())


@dataclass(frozen=True)
class DealNames:
    """What the log shows for a deal and an invoice: the deal's name (from the engine's audit
    of it), its invoice number (from its invoice link)."""

    deals: dict[str, str]  # deal id -> name
    invoices_by_deal: dict[str, str]  # deal id -> invoice number
    invoices_by_id: dict[str, str]  # Xero InvoiceID -> invoice number

    def deal(self, deal_id: str | None) -> str:
        return self.deals.get(deal_id or "", "")

    def invoice(self, deal_id: str | None, invoice_id: str | None = None) -> str:
        return (self.invoices_by_id.get(invoice_id or "")
                or self.invoices_by_deal.get(deal_id or "", ""))


def deal_names(installation_id: int, deal_ids: Iterable[str | None],
               invoice_ids: Iterable[str | None] = ()) -> DealNames:
    """Names and invoice numbers for these deals and Xero invoices: two queries."""
    ids = sorted({d for d in deal_ids if d})
    xero_ids = sorted({i for i in invoice_ids if i})
    if not ids and not xero_ids:
        return DealNames({}, {}, {})
    names: dict[str, str] = {}
    for deal_id, detail in db.session.execute(
            select(AuditEvent.deal_id, AuditEvent.detail).where(
                AuditEvent.installation_id == installation_id, AuditEvent.deal_id.in_(ids),
                AuditEvent.action == "invoice_sync").order_by(AuditEvent.id.desc())):
        name = (detail or {}).get("deal_name")
        if deal_id and name and deal_id not in names:
            names[deal_id] = str(name)
    by_deal: dict[str, str] = {}
    by_id: dict[str, str] = {}
    for link in db.session.scalars(select(InvoiceLink).where(
            InvoiceLink.installation_id == installation_id,
            db.or_(InvoiceLink.deal_id.in_(ids), InvoiceLink.xero_invoice_id.in_(xero_ids)))):
        if link.invoice_number:
            by_deal.setdefault(link.deal_id, link.invoice_number)
            if link.xero_invoice_id:
                by_id[link.xero_invoice_id] = link.invoice_number
    return DealNames(names, by_deal, by_id)


def money(value: Decimal | None) -> str | None:
    """An amount as the card and pages show it: 2 decimals."""
    return None if value is None else str(value.quantize(Decimal("0.01")))
