"""The company page's Xero side: link a CRM company to a Xero contact, import the contact's
details into the company (filling only fields the CRM leaves empty: never over what a rep
typed), and suggest contacts for a company that has none. CRMs are reached only through
crm_adapters, Xero only through xero/."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, select

from app.connections import xero_client
from app.engine.steps.mirror import mirror_row
from app.extensions import db
from app.models import AuditEvent, ConnectionStatus, ContactLink, Installation, XeroConnection, XeroContact
from app.wiring import adapter_for
from crm_adapters.base import CrmError
from xero.client import ContactDetails, ContactResult, XeroClient
from xero.contacts import email_key, name_key, tax_key
from xero.errors import ReconnectNeeded, XeroFailure

# What an import may copy, in the order the page lists it (COMPANY_FIELDS words).
IMPORTED = ("phone", "street", "city", "region", "postal_code", "country", "website", "tax_number")
LABELS = {"phone": "phone", "street": "street address", "city": "city", "region": "state/region",
          "postal_code": "postcode", "country": "country", "website": "website",
          "tax_number": "tax number"}
CRM_NAMES = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}
SUGGESTIONS = 5
# Trailing words that say what kind of company it is, not which: searching Xero for
# "Initech Pty Ltd" would miss "Initech Holdings" (searchTerm is a contains-match).
LEGAL_FORMS = frozenset({"ab", "ag", "bv", "co", "company", "corp", "corporation", "gmbh", "inc",
                         "incorporated", "limited", "llc", "llp", "ltd", "nv", "plc", "pte",
                         "pty", "sa", "sarl", "srl"})


def crm_name(installation: Installation) -> str:
    return CRM_NAMES.get(installation.crm.value, installation.crm.value.title())


# --- which fields to copy (pure) -------------------------------------------------------------

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


# --- suggested contacts (pure) ---------------------------------------------------------------

@dataclass(frozen=True)
class Suggestion:
    contact: ContactResult
    matches: tuple[str, ...]  # what is exactly the same: "name", "email domain", "tax number"


def search_term(company_name: str) -> str:
    """The company's name without trailing legal forms ("Initech Pty Ltd" -> "Initech")."""
    words = company_name.split()
    while len(words) > 1 and words[-1].strip(".,()").casefold() in LEGAL_FORMS:
        words.pop()
    return " ".join(words).strip(" ,")


def rank_suggestions(company: Mapping[str, str], found: Sequence[ContactResult],
                     limit: int = SUGGESTIONS) -> list[Suggestion]:
    """Xero's search results for the company, exact matches first, at most `limit`. CRM
    companies carry no email address, so an email matches on the company's web domain."""
    domain = web_domain(company.get("domain") or company.get("website") or "")
    ranked = [Suggestion(c, _matches(company, domain, c)) for c in found
              if c.contact_id and c.active]
    ranked.sort(key=lambda s: -len(s.matches))  # stable: Xero's order within a rank
    return ranked[:limit]


def _matches(company: Mapping[str, str], domain: str, contact: ContactResult) -> tuple[str, ...]:
    same = []
    if company.get("name") and name_key(company["name"]) == name_key(contact.name):
        same.append("name")
    contact_domain = email_key(contact.email).rpartition("@")[2]
    if domain and contact_domain and web_domain(contact_domain) == domain:
        same.append("email domain")
    tax = tax_key(company.get("tax_number", ""))
    if tax and tax == tax_key(contact.tax_number):
        same.append("tax number")
    return tuple(same)


def web_domain(value: str) -> str:
    """"https://www.Initech.example/about" -> "initech.example"."""
    host = value.strip().casefold().split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.removeprefix("www.")


MAX_QUERY = 100  # characters of a typed search sent to Xero (a name is at most 255; nobody types more)


def search_contacts(xero: XeroClient, query: str, connection_id: int | None = None) -> list[ContactResult]:
    """Xero contacts for a typed search, as the page's label promises: name, email or contact
    number (Xero's searchTerm), and tax number when the query has digits: a `where` on
    TaxNumber (searchTerm does not cover it; Xero compares exactly, so "51824753556" misses
    "51 824 753 556"), plus the contact mirror's tax-number keys, which ignore spacing. Each
    contact once, Xero's order."""
    found = list(xero.search_contacts(query))
    if any(ch.isdigit() for ch in query) and len(tax_key(query)) >= 5:
        found += xero.search_contacts_by_tax_number(query)
        if connection_id is not None:
            found += _mirror_by_tax_number(connection_id, tax_key(query))
    seen: set[str | None] = set()
    unique = []
    for contact in found:
        if contact.contact_id not in seen:
            seen.add(contact.contact_id)
            unique.append(contact)
    return unique


def _mirror_by_tax_number(connection_id: int, key: str) -> list[ContactResult]:
    """Active contacts of the XeroContact mirror (kept by the engine's If-Modified-Since sync)
    whose tax number, ignoring spaces and punctuation, is `key`."""
    rows = db.session.scalars(select(XeroContact).where(
        XeroContact.xero_connection_id == connection_id, XeroContact.tax_number_key == key,
        XeroContact.active.is_(True)).limit(20))
    return [ContactResult(r.contact_id, r.name, r.email_key or "", key) for r in rows]


def contact_choices(installation: Installation, company_id: str, query: str,
                    linked: bool) -> tuple[list[ContactResult], list[Suggestion], str]:
    """What the company page offers to link: a typed search's results, else suggestions for an
    unlinked company; and what went wrong ("" if nothing)."""
    if query:
        try:
            connection_id = installation.xero_connection.id if installation.xero_connection else None
            return search_contacts(connected_xero(installation), query, connection_id), [], ""
        except XeroFailure as exc:
            return [], [], f"Xero search is unavailable right now: {exc}"
    if linked:
        # Only an unlinked company costs a CRM read and a Xero search; a linked one is
        # answered from the database alone.
        return [], [], ""
    suggestions, problem = suggest_contacts(installation, company_id)
    return [], suggestions, problem


def suggest_contacts(installation: Installation, company_id: str) -> tuple[list[Suggestion], str]:
    """Up to five Xero contacts like the company: its name from the CRM, one Xero search; or
    none, and why."""
    try:
        xero = connected_xero(installation)
        company = adapter_for(installation.crm.value).fetch_company(installation, company_id)
        term = search_term(company.get("name", ""))
        found = xero.search_contacts(term) if term else []
    except CrmError as exc:
        return [], (f"Could not read this company from {crm_name(installation)}, so there are "
                    f"no suggestions: {exc}")
    except XeroFailure as exc:
        return [], f"Xero is unavailable right now, so there are no suggestions: {exc}"
    return rank_suggestions(company, found), ""


def connected_xero(installation: Installation) -> XeroClient:
    """The installation's Xero client; ReconnectNeeded (a XeroFailure) if Xero is not connected."""
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        raise ReconnectNeeded("Xero is not connected")
    return xero_client(connection)


# --- the database: links and the contact mirror ----------------------------------------------

def linked_contact(installation_id: int, company_id: str) -> tuple[str, str] | None:
    """(Xero contact id, its name from the local mirror or "") of the company's link: one
    query, no Xero call."""
    row = db.session.execute(
        select(ContactLink.xero_contact_id, XeroContact.name)
        .outerjoin(XeroConnection, XeroConnection.installation_id == ContactLink.installation_id)
        .outerjoin(XeroContact, and_(XeroContact.xero_connection_id == XeroConnection.id,
                                     XeroContact.contact_id == ContactLink.xero_contact_id))
        .where(ContactLink.installation_id == installation_id,
               ContactLink.crm_object_type == "company", ContactLink.crm_object_id == company_id)
    ).first()
    return None if row is None else (row[0], row[1] or "")


def links_elsewhere(installation_id: int, company_id: str,
                    contact_ids: Sequence[str | None]) -> dict[str, list[str]]:
    """Xero contact id -> the other CRM companies already linked to it (one query)."""
    ids = sorted({c for c in contact_ids if c})
    if not ids:
        return {}
    found: dict[str, list[str]] = {}
    for contact_id, other in db.session.execute(
            select(ContactLink.xero_contact_id, ContactLink.crm_object_id).where(
                ContactLink.installation_id == installation_id,
                ContactLink.crm_object_type == "company", ContactLink.xero_contact_id.in_(ids),
                ContactLink.crm_object_id != company_id).order_by(ContactLink.crm_object_id)):
        found.setdefault(contact_id, []).append(other)
    return found


def unlink_company(installation: Installation, company_id: str, user: str) -> str | None:
    """Remove the company's link (new invoices match or create a contact again); audited. The
    Xero contact id it was linked to, None if it had no link. Committed."""
    existing = db.session.scalar(select(ContactLink).where(
        ContactLink.installation_id == installation.id, ContactLink.crm_object_type == "company",
        ContactLink.crm_object_id == company_id))
    if existing is None:
        return None
    contact_id = existing.xero_contact_id
    db.session.delete(existing)
    db.session.add(AuditEvent(installation_id=installation.id, action="contact_unlinked",
                              outcome="ok", detail={"company": company_id, "by": user},
                              xero_ids={"contact_id": contact_id}))
    db.session.commit()
    return contact_id


def link_company(installation: Installation, company_id: str, contact: ContactDetails,
                 user: str, action: str = "contact_linked") -> None:
    """Link the company to the contact a person chose (replacing any earlier link), remember
    the contact in the mirror (so the page shows its name), and audit it; committed."""
    existing = db.session.scalar(select(ContactLink).where(
        ContactLink.installation_id == installation.id, ContactLink.crm_object_type == "company",
        ContactLink.crm_object_id == company_id))
    if existing is None:
        db.session.add(ContactLink(installation_id=installation.id, crm_object_type="company",
                                   crm_object_id=company_id, xero_contact_id=contact.contact_id,
                                   linked_by="user"))
    else:
        existing.xero_contact_id, existing.linked_by = contact.contact_id, "user"
    if installation.xero_connection is not None:
        # The engine's matching reads the same mirror row; its If-Modified-Since sync
        # overwrites it with the same values.
        mirror_row(installation.xero_connection.id, contact)
    if action:
        db.session.add(AuditEvent(installation_id=installation.id, action=action, outcome="ok",
                                  detail={"company": company_id, "by": user},
                                  xero_ids={"contact_id": contact.contact_id}))
    db.session.commit()


# --- the import ------------------------------------------------------------------------------

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
