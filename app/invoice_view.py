"""The whole invoice as the deal page and the HubSpot card show it, from Paydeck's database
only (InvoiceLink and the detail Xero returned, stored by app/invoice_results.py) and the
cached Xero reference data for account and tax names - never Xero in the request.

`whole_invoice` gives Decimals and dates (the page formats them with its Jinja filters);
`card_json` gives each amount twice: the exact Decimal as a string and the formatted text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import g, has_request_context, url_for
from sqlalchemy import select

from app import formatting
from app.engine.reference import cached_reference_data
from app.extensions import db
from app.models import InvoiceLink, XeroConnection
from app.page_format import current_locale
from app.ui_auth import View, issue_action_token
from domain.money import CENT
from xero.detail import InvoiceDetail
from xero.reference import ReferenceData

ALLOCATION_LABELS = {"credit_note": "Credit note", "prepayment": "Prepayment",
                     "overpayment": "Overpayment"}
ENDED = {"VOIDED": "Voided", "DELETED": "Deleted"}  # no amount is due on these


def account_label(ref: ReferenceData | None, code: str | None) -> str:
    """"200 · Sales" (the code alone if the name is not known)."""
    if not code:
        return ""
    account = ref.accounts.get(code) if ref else None
    return f"{code} \u00b7 {account.name}" if account and account.name else code


def tax_label(ref: ReferenceData | None, tax_type: str | None, locale: str) -> str:
    """"GST on Income (10%)": the rate's name and the rate Xero shows (DisplayTaxRate)."""
    if not tax_type:
        return "No tax"
    rate = ref.tax_rates.get(tax_type) if ref else None
    if rate is None or not rate.name:
        return tax_type
    shown = rate.display_rate if rate.display_rate is not None else rate.rate
    return f"{rate.name} ({formatting.percent(shown, locale)})"


@dataclass(frozen=True)
class LineView:
    description: str
    quantity: Decimal | None
    unit_amount: Decimal | None
    discount_rate: Decimal | None
    discount_amount: Decimal | None
    account: str
    tax_type: str
    tax: str
    tax_amount: Decimal | None
    line_amount: Decimal | None


@dataclass(frozen=True)
class PaymentView:
    day: date | None
    amount: Decimal | None
    reference: str


@dataclass(frozen=True)
class AllocationView:
    kind: str
    label: str
    day: date | None
    amount: Decimal | None


@dataclass(frozen=True)
class WholeInvoice:
    currency: str
    status: str  # Xero's
    line_amount_types: str
    lines: list[LineView]
    sub_total: Decimal | None
    total_tax: Decimal | None
    total_discount: Decimal | None
    total: Decimal | None
    amount_paid: Decimal | None
    amount_credited: Decimal | None
    amount_due: Decimal | None
    due_date: date | None
    paid_on: date | None
    payments: list[PaymentView]
    allocations: list[AllocationView]
    ended: str  # "Voided" / "Deleted": shown instead of what is due
    explanation: str
    emailed: str
    customer_url: str | None
    synced_at: datetime | None
    has_detail: bool
    may_email: bool = field(default=False)


def whole_invoice(link: InvoiceLink, ref: ReferenceData | None, locale: str) -> WholeInvoice:
    detail = InvoiceDetail.from_json(link.detail) if link.detail else None
    currency = link.currency or ""
    # An invoice of LineAmountTypes NoTax charges no tax whatever rate its lines name.
    no_tax = detail is not None and detail.line_amount_types == "NoTax"
    lines = [LineView(l.description, l.quantity, l.unit_amount, l.discount_rate, l.discount_amount,
                      account_label(ref, l.account_code), l.tax_type,
                      "No tax" if no_tax else tax_label(ref, l.tax_type, locale), l.tax_amount,
                      l.line_amount)
             for l in (detail.lines if detail else ())]
    return WholeInvoice(
        currency=currency, status=link.status or "",
        line_amount_types=detail.line_amount_types if detail else "", lines=lines,
        sub_total=detail.sub_total if detail else None, total_tax=detail.total_tax if detail else None,
        total_discount=detail.total_discount if detail else None, total=link.total,
        amount_paid=link.amount_paid, amount_credited=link.amount_credited,
        amount_due=link.amount_due, due_date=link.due_date, paid_on=link.paid_on,
        payments=[PaymentView(p.day, p.amount, p.reference) for p in (detail.payments if detail else ())],
        allocations=[AllocationView(a.kind, _allocation_label(a.kind, a.number), a.day, a.amount)
                     for a in (detail.allocations if detail else ())],
        ended=ENDED.get(link.status or "", ""),
        explanation=explain(detail, link.total, currency, locale) if detail else "",
        emailed=emailed_words(link, detail, locale), customer_url=link.customer_url,
        synced_at=link.synced_at, has_detail=detail is not None,
        may_email=link.status in ("AUTHORISED", "PAID"))


def explain(detail: InvoiceDetail, total: Decimal | None, currency: str, locale: str) -> str:
    """How the lines became the total, in Xero's arithmetic (LineAmountTypes: Exclusive -
    Total = SubTotal + TotalTax; Inclusive - the line amounts already hold the tax)."""
    def m(value: Decimal | None) -> str:
        return formatting.money(value, currency, locale)

    tax, sub = detail.total_tax or Decimal(0), detail.sub_total
    discount = (f" (after {m(detail.total_discount)} of discounts)"
                if detail.total_discount and detail.total_discount > 0 else "")
    if detail.line_amount_types == "Exclusive" and tax:
        return (f"The line amounts exclude tax: Xero added {m(tax)} of tax to the {m(sub)} "
                f"subtotal{discount}, so the invoice total is {m(total)}. The difference between "
                "the deal's amount and the invoice is that tax.")
    if detail.line_amount_types == "Inclusive" and tax:
        return (f"The line amounts include tax: of the {m(total)} total{discount}, {m(tax)} is "
                f"tax and {m(sub)} is the amount before tax.")
    return f"No tax is charged: the invoice total{discount} is the lines' sum, {m(total)}."


def emailed_words(link: InvoiceLink, detail: InvoiceDetail | None, locale: str) -> str:
    """"Emailed to ap@x on 3 Dec 2026, 1:05 am AEDT" (Paydeck's own send), else what Xero's
    SentToContact says (a flag with no date), else ""."""
    if link.emailed_at:
        to = f" to {link.emailed_to}" if link.emailed_to else ""
        return f"Emailed{to} on {formatting.when(link.emailed_at, None, locale)} by Paydeck"
    if detail and detail.sent_to_contact:
        to = f" to {detail.contact_email}" if detail.contact_email else ""
        return f"Sent{to} (marked as sent in Xero; Xero does not say when)"
    return ""


def _allocation_label(kind: str, number: str) -> str:
    label = ALLOCATION_LABELS.get(kind, kind)
    return f"{label} {number}" if number else label


# --- the card's JSON ---------------------------------------------------------------------------

def card_json(whole: WholeInvoice, locale: str, zone: str | None) -> dict[str, Any]:
    """Every amount as the exact Decimal (string) and as text; dates as ISO and as text."""
    cur = whole.currency

    def amount(name: str, value: Decimal | None) -> dict[str, str | None]:
        # Xero's invoice amounts have 2 decimals (the link's columns keep 4): "3036.00".
        return {name: None if value is None else str(value.quantize(CENT)),
                f"{name}_text": formatting.money(value, cur, locale)}

    def day(name: str, value: date | None) -> dict[str, str | None]:
        return {name: value.isoformat() if value else None,
                f"{name}_text": formatting.day(value, locale) if value else None}

    return {
        "line_amount_types": whole.line_amount_types,
        "lines": [{"description": l.description,
                   "quantity": None if l.quantity is None else str(l.quantity),
                   "quantity_text": formatting.quantity(l.quantity, locale),
                   "unit_amount": None if l.unit_amount is None else str(l.unit_amount),
                   "unit_amount_text": formatting.unit_money(l.unit_amount, cur, locale),
                   "discount_rate": None if l.discount_rate is None else str(l.discount_rate),
                   "discount_text": _discount_text(l, cur, locale),
                   "account": l.account, "tax_type": l.tax_type, "tax": l.tax,
                   **amount("tax_amount", l.tax_amount), **amount("line_amount", l.line_amount)}
                  for l in whole.lines],
        **amount("subtotal", whole.sub_total), **amount("total_tax", whole.total_tax),
        **amount("total_discount", whole.total_discount), **amount("total", whole.total),
        **amount("amount_paid", whole.amount_paid), **amount("amount_due", whole.amount_due),
        **day("paid_on", whole.paid_on), **day("due_date", whole.due_date),
        "payments": [{**day("date", p.day), **amount("amount", p.amount), "reference": p.reference}
                     for p in whole.payments],
        "allocations": [{"kind": a.kind, "label": a.label, **day("date", a.day),
                         **amount("amount", a.amount)} for a in whole.allocations],
        "ended": whole.ended or None,
        # What the card's headline says: never "Due 3,036.00" on a voided invoice.
        "due_text": whole.ended or f"Due {formatting.money(whole.amount_due, cur, locale)}",
        "explanation": whole.explanation, "emailed": whole.emailed or None,
        "customer_url": whole.customer_url,
        "synced_at": whole.synced_at.isoformat() if whole.synced_at else None,
        "synced_text": formatting.when(whole.synced_at, zone, locale) if whole.synced_at else None,
    }


def _discount_text(line: LineView, currency: str, locale: str) -> str:
    if line.discount_rate:
        return formatting.percent(line.discount_rate, locale)
    if line.discount_amount:
        return formatting.money(line.discount_amount, currency, locale)
    return ""


# --- the deal page's invoice section and the card's PDF link -----------------------------------

def page_section(view: View, link: InvoiceLink | None, token: str | None, money: bool,
                 may_act: bool) -> dict[str, Any]:
    """What deal.html's invoice section takes: the whole invoice (amounts only for a viewer
    who may see them), the PDF link (with the page's own token: it outlives nothing) and
    the email button's single-use action token."""
    if link is None or not link.xero_invoice_id or not money:
        return {"whole": None, "pdf_url": None, "email_token": None}
    locale = current_locale()
    whole = whole_invoice(link, cached_names(link.installation_id), locale)
    return {"whole": whole,
            "pdf_url": url_for("invoice.invoice_pdf", deal_id=link.deal_id, t=token),
            "email_token": issue_action_token(view, "email") if may_act and whole.may_email else None}


def invoice_pdf_url(open_url: str, deal_id: str) -> str:
    """The PDF route for the HubSpot card, with the deal page's own page token (the same
    view: this deal, this user; no second token to mint)."""
    page = f"/ui/deal/{deal_id}?"
    assert page in open_url
    return open_url.replace(page, f"/ui/deal/{deal_id}/invoice.pdf?", 1)


def cached_names(installation_id: int) -> ReferenceData | None:
    """The organisation's account and tax-rate names, if Paydeck has them cached (no Xero
    call: pages and the card read only what Paydeck stored)."""
    memo = g.setdefault("paydeck_names", {}) if has_request_context() else {}
    if installation_id not in memo:  # the deal page asks twice (summary and section)
        tenant = db.session.scalar(select(XeroConnection.tenant_id).where(
            XeroConnection.installation_id == installation_id))
        memo[installation_id] = cached_reference_data(installation_id, tenant) if tenant else None
    return memo[installation_id]
