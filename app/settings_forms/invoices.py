"""The page's "Invoices" section: drafts, payment terms, line amount type, a deal with no lines,
and how far a deal's amount may differ from its lines."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.datastructures import MultiDict

from app.models import InstallationSettings, LineAmountType
from app.settings_forms.section import Errors, RowSection
from app.settings_forms.sources import Sources

LINE_AMOUNT_LABELS = {LineAmountType.EXCLUSIVE: "Tax exclusive", LineAmountType.INCLUSIVE: "Tax inclusive",
                      LineAmountType.NO_TAX: "No tax"}


@dataclass(frozen=True)
class TermKind:
    label: str
    days: tuple[int, int] | None  # the accepted "days" (inclusive); None: no days


# Keys are the settings' names, which app.engine.rules.xero_terms maps to Xero's PaymentTermType.
# Day-of-month kinds take 1-31 (xero.build clamps to the month's last day); the "days after"
# kinds any count up to a year (Net 60 and Net 90 are common).
TERM_KINDS = {
    "org_default": TermKind("The Xero organisation's default", None),
    "days_after_invoice": TermKind("days after the invoice date", (0, 365)),
    "days_after_end_of_month": TermKind("days after the end of the invoice month", (0, 365)),
    "day_of_following_month": TermKind("day of the month after the invoice", (1, 31)),
    "day_of_current_month": TermKind("day of the invoice's month", (1, 31)),
}


@dataclass(frozen=True)
class InvoiceOptions(RowSection):
    """Every value as the form shows it (text); defaults are the model's."""

    draft_first: bool = False
    terms_type: str = "days_after_invoice"
    terms_days: str = "30"
    use_contact_terms: bool = True  # a Xero contact's own PaymentTerms.Sales come first
    line_amount_type: str = LineAmountType.EXCLUSIVE.value
    allow_single_line_from_amount: bool = False
    amount_tolerance: str = "0.01"  # deal amount vs the sum of its lines, in the deal currency

    @classmethod
    def of_row(cls, row: InstallationSettings) -> InvoiceOptions:
        terms = row.payment_terms or {"type": "org_default"}
        return cls(
            draft_first=bool(row.draft_first), terms_type=str(terms.get("type", "org_default")),
            terms_days="" if terms.get("days") is None else str(terms["days"]),
            use_contact_terms=row.use_contact_terms is not False,
            line_amount_type=row.line_amount_type.value if row.line_amount_type else LineAmountType.EXCLUSIVE.value,
            allow_single_line_from_amount=bool(row.allow_single_line_from_amount),
            amount_tolerance=_tolerance_text(row.amount_tolerance))

    def read(self, form: MultiDict[str, str], sources: Sources, errors: Errors) -> InvoiceOptions:
        terms_type, terms_days = _read_terms(form, errors)
        line_amount_type = form.get("line_amount_type", "")
        if line_amount_type not in {t.value for t in LineAmountType}:
            errors["line_amount_type"] = "Choose one of the listed amount types."
        tolerance = form.get("amount_tolerance")  # None: a form without the field keeps it as saved
        if tolerance is not None and _tolerance(tolerance.strip()) is None:
            errors["amount_tolerance"] = "Enter an amount from 0 to 1,000,000 with at most 2 decimals."
        return replace(
            self, draft_first=form.get("draft_first") == "1", terms_type=terms_type,
            terms_days=terms_days, use_contact_terms=form.get("use_contact_terms") == "1",
            line_amount_type=line_amount_type,
            allow_single_line_from_amount=form.get("allow_single_line_from_amount") == "1",
            amount_tolerance=self.amount_tolerance if tolerance is None else tolerance.strip())

    def error_keys(self, sources: Sources) -> set[str]:
        return {"payment_terms", "line_amount_type", "amount_tolerance"}

    def labels(self, sources: Sources) -> dict[str, Any]:
        return {"term_kinds": TERM_KINDS, "line_amount_labels": LINE_AMOUNT_LABELS}

    def columns(self) -> dict[str, Any]:
        terms: dict[str, Any] = {"type": self.terms_type}
        if self.terms_days:
            terms["days"] = int(self.terms_days)
        return {
            "draft_first": self.draft_first,
            "payment_terms": terms,
            "use_contact_terms": self.use_contact_terms,
            "line_amount_type": LineAmountType(self.line_amount_type),
            "allow_single_line_from_amount": self.allow_single_line_from_amount,
            "amount_tolerance": _tolerance(self.amount_tolerance) or Decimal(0),
        }


def _read_terms(form: MultiDict[str, str], errors: Errors) -> tuple[str, str]:
    """The payment terms' kind and days; days are "" for a kind that takes none."""
    terms_type, terms_days = form.get("terms_type", ""), form.get("terms_days", "").strip()
    kind = TERM_KINDS.get(terms_type)
    if kind is None:
        errors["payment_terms"] = "Choose one of the listed payment terms."
    elif kind.days is not None:
        low, high = kind.days
        # isdigit() alone admits '²' and other digits int() refuses: ASCII digits only.
        if not (terms_days.isascii() and terms_days.isdigit() and low <= int(terms_days) <= high):
            errors["payment_terms"] = f"Enter a whole number of days from {low} to {high}."
    return terms_type, "" if kind is not None and kind.days is None else terms_days


def _tolerance(text: str) -> Decimal | None:
    """The admin's tolerance as money, or None if it is not 0..1,000,000 with 2 decimals."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or not 0 <= value <= 1_000_000 or value != value.quantize(Decimal("0.01")):
        return None
    return value


def _tolerance_text(value: Decimal | None) -> str:
    """A saved tolerance as the form shows it (the model's 0.01 when unset)."""
    return f"{(Decimal('0.01') if value is None else value).quantize(Decimal('0.01'))}"
