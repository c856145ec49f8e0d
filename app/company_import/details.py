"""Importing a Xero contact's details into the linked CRM company: which fields to copy
(only those the CRM leaves empty: never over what a rep typed), the import itself and the
rep's summary of it. CRMs are reached only through crm_adapters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.company_import.links import link_company
from app.crm_names import crm_name
from app.extensions import db
from app.models import AuditEvent, Installation
from app.wiring import adapter_for
from crm_adapters.base import CrmError
from xero.client import ContactDetails

# What an import may copy, in the order the page lists it (COMPANY_FIELDS words).
IMPORTED = ("phone", "street", "city", "region", "postal_code", "country", "website", "tax_number")
LABELS = {"phone": "phone", "street": "street address", "city": "city", "region": "state/region",
          "postal_code": "postcode", "country": "country", "website": "website",
          "tax_number": "tax number"}


@dataclass(frozen=True)
class ImportPlan:
    fill: dict[str, str]  # empty in the CRM, known in Xero: write these
    kept: tuple[str, ...]  # the CRM already has a value: left alone
    unsupported: tuple[str, ...]  # Xero has a value the CRM has no field for


def plan_import(contact: ContactDetails, company: Mapping[str, str]) -> ImportPlan:
    """`company` as CrmAdapter.fetch_company returns it (absent: the CRM cannot hold it)."""
    fill: dict[str, str] = {}
    kept: list[str] = []
    unsupported: list[str] = []
    for field in IMPORTED:
        value = getattr(contact, field).strip()
        if not value:
            continue
        if field not in company:
            unsupported.append(field)
        elif company[field].strip():
            kept.append(field)
        else:
            fill[field] = value
    return ImportPlan(fill, tuple(kept), tuple(unsupported))


@dataclass(frozen=True)
class ImportOutcome:
    contact_name: str
    crm: str  # "HubSpot"
    copied: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    error: str = ""

    @property
    def complete(self) -> bool:
        return not self.failed and not self.error

    def summary(self) -> str:
        """What happened, for the rep (the page's notice)."""
        parts = [f"Linked to {self.contact_name}: new invoices for this company go to that "
                 "Xero contact."]
        if self.copied:
            parts.append(f"Copied into {self.crm}: {_labels(self.copied)}.")
        if self.kept:
            parts.append(f"Left as they were ({self.crm} already had them): {_labels(self.kept)}.")
        no_field = [f for f in self.unsupported if f != "tax_number"]
        if no_field:
            parts.append(f"Not copied ({self.crm} has no field for them): {_labels(no_field)}.")
        if "tax_number" in self.unsupported:
            # Any CRM can hold a tax number in a custom field: none is chosen yet.
            parts.append("Tax number not copied: no company field for tax numbers is chosen in "
                         "Paydeck's settings (Matching Xero contacts).")
        if self.failed:
            parts.append(f"Could not copy into {self.crm}: {_labels(self.failed)} "
                         f"({self.error}). The link is kept; try Import again later.")
        elif self.error:
            parts.append(f"Could not read the company from {self.crm} ({self.error}), so "
                         "nothing was copied. The link is kept; try Import again later.")
        if not (self.copied or self.kept or self.unsupported or self.failed or self.error):
            parts.append("The Xero contact has no phone, address, website or tax number to copy.")
        return " ".join(parts)


def _labels(fields: Sequence[str]) -> str:
    return ", ".join(LABELS[f] for f in fields)


def import_into_company(installation: Installation, company_id: str, contact: ContactDetails,
                        user: str) -> ImportOutcome:
    """Link the company to `contact` (committed first: it stands whatever the CRM does), then
    copy the contact's details into the company's empty fields; audited as contact_imported."""
    link_company(installation, company_id, contact, user, action="")
    crm, name = adapter_for(installation.crm.value), crm_name(installation)
    outcome: ImportOutcome
    try:
        plan = plan_import(contact, crm.fetch_company(installation, company_id))
    except CrmError as exc:
        outcome = ImportOutcome(contact.name, name, error=str(exc))
    else:
        try:
            crm.update_company(installation, company_id, plan.fill)
        except CrmError as exc:
            outcome = ImportOutcome(contact.name, name, kept=plan.kept,
                                    unsupported=plan.unsupported, failed=tuple(plan.fill),
                                    error=str(exc))
        else:
            outcome = ImportOutcome(contact.name, name, copied=tuple(plan.fill), kept=plan.kept,
                                    unsupported=plan.unsupported)
    db.session.add(AuditEvent(
        installation_id=installation.id, action="contact_imported",
        outcome="ok" if outcome.complete else "partial",
        detail={"company": company_id, "by": user, "filled": list(outcome.copied),
                "kept": list(outcome.kept), "unsupported": list(outcome.unsupported),
                "failed": list(outcome.failed),
                **({"error": outcome.error} if outcome.error else {})},
        xero_ids={"contact_id": contact.contact_id}))
    db.session.commit()
    return outcome
