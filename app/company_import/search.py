"""The Xero contacts the company page offers to link: a typed search (name, email, contact
number, tax number) or, for an unlinked company, up to five suggestions like it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from app.connections import xero_client
from app.crm_names import crm_name
from app.extensions import db
from app.models import ConnectionStatus, Installation, XeroContact
from app.wiring import adapter_for
from crm_adapters.base import CrmError
from xero.client import ContactResult, XeroClient
from xero.contacts import email_key, name_key, tax_key
from xero.errors import ReconnectNeeded, XeroFailure

SUGGESTIONS = 5
# Trailing words that say what kind of company it is, not which: searching Xero for
# "Initech Pty Ltd" would miss "Initech Holdings" (searchTerm is a contains-match).
LEGAL_FORMS = frozenset({"ab", "ag", "bv", "co", "company", "corp", "corporation", "gmbh", "inc",
                         "incorporated", "limited", "llc", "llp", "ltd", "nv", "plc", "pte",
                         "pty", "sa", "sarl", "srl"})


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
