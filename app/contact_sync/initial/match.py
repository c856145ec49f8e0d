"""Pure: the records a match run read -> the review's rows.

The admin's dedupe order decides (xero.contacts.match_contact: the first key that finds
anyone decides; several contacts -> ambiguous). On top of it, safer than a first match:
- keys that disagree (the email finds contact A, the tax number finds B) -> ambiguous, both
  listed;
- a Xero contact proposed to two companies -> both ambiguous;
- two CRM-only companies with one name -> both ambiguous (Xero's names are unique among
  active contacts, so only one could be created under it);
- linked companies and linked contacts are left alone ("linked" rows); archived contacts are
  never candidates; unmatched contacts outside the sync's scope are not offered for CRM
  creation (counted only).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from xero.contacts import KEYS, Candidate, Customer, match_contact, name_key

KINDS = ("proposed", "ambiguous", "crm_only", "xero_only", "linked")
LABELS = {"email": "email", "tax_number": "tax number", "name": "name"}


@dataclass(frozen=True)
class Side:
    """A company or contact as read: its id and the keys matching uses."""

    record_id: str
    name: str
    email: str = ""
    tax_number: str = ""
    active: bool = True
    in_scope: bool = True


@dataclass
class Proposal:
    kind: str
    crm_id: str | None = None
    xero_id: str | None = None
    crm_name: str = ""
    xero_name: str = ""
    matched_on: str = ""
    detail: str = ""
    candidates: list[Side] = field(default_factory=list)


@dataclass
class Matched:
    rows: list[Proposal]
    counts: dict[str, int]


def match_all(companies: Sequence[Side], contacts: Sequence[Side], links: Mapping[str, str],
              order: Sequence[str]) -> Matched:
    """Every company and every active, unlinked contact in exactly one row (contacts only
    when nothing claims them); `links`: company id -> linked contact id."""
    by_id = {c.record_id: c for c in contacts}
    taken = set(links.values())
    pool = [c for c in contacts if c.active and c.record_id not in taken]
    index: dict[str, dict[str, list[Side]]] = {k: defaultdict(list) for k in KEYS}
    for contact in pool:
        for key, fold in KEYS.items():
            value = fold(getattr(contact, key))
            if value:
                index[key][value].append(contact)

    def lookup(key: str, value: str) -> list[Candidate]:
        return [_candidate(c) for c in index[key].get(value, [])] if value else []

    rows: list[Proposal] = []
    for company in companies:
        if company.record_id in links:
            contact = by_id.get(links[company.record_id])
            rows.append(Proposal("linked", company.record_id, links[company.record_id],
                                 company.name, contact.name if contact else "",
                                 detail="already linked: ongoing sync keeps the two in step"))
            continue
        rows.append(_match_one(company, order, lookup, index))
    _one_company_per_contact(rows)
    _one_new_contact_per_name(rows)
    claimed = {r.xero_id for r in rows if r.xero_id} | {
        c.record_id for r in rows for c in r.candidates}
    counts = {"archived": sum(1 for c in contacts if not c.active),
              "out_of_scope": 0}
    for contact in pool:
        if contact.record_id in claimed:
            continue
        if not contact.in_scope:
            counts["out_of_scope"] += 1
            continue
        rows.append(Proposal("xero_only", xero_id=contact.record_id, xero_name=contact.name,
                             detail="only in Xero: create it in the CRM?"))
    for kind in KINDS:
        counts[kind] = sum(1 for r in rows if r.kind == kind)
    return Matched(rows, counts)


def _match_one(company: Side, order: Sequence[str], lookup, index) -> Proposal:
    customer = Customer("company", company.record_id, company.name, company.email,
                        company.tax_number)
    found = match_contact(customer, order, lookup)
    base = Proposal("crm_only", company.record_id, crm_name=company.name,
                    matched_on=found.matched_on)
    if found.outcome == "create":
        base.detail = ("only in the CRM: create it in Xero?" if company.name.strip()
                       else "only in the CRM, and it has no name: Xero needs one to create it")
        return base
    if found.outcome == "ambiguous":
        base.kind, base.detail = "ambiguous", found.detail
        base.candidates = [_side(c) for c in found.candidates]
        return base
    chosen = next(c for c in index[found.matched_on].get(
        KEYS[found.matched_on](getattr(company, found.matched_on)), [])
        if c.record_id == found.contact_id)
    for key in order:  # a later (or earlier) key naming someone else: the keys disagree
        value = KEYS[key](getattr(company, key, "")) if key in KEYS else ""
        others = [c for c in index.get(key, {}).get(value, []) if value]
        if others and chosen.record_id not in {c.record_id for c in others}:
            base.kind = "ambiguous"
            base.candidates = [chosen, *others]
            base.detail = (f"the {LABELS[found.matched_on]} matches Xero contact "
                           f"{chosen.name!r} but the {LABELS[key]} matches "
                           + ", ".join(repr(c.name) for c in others))
            return base
    base.kind, base.xero_id, base.xero_name = "proposed", chosen.record_id, chosen.name
    base.detail = f"same {LABELS[found.matched_on]}"
    return base


def _one_company_per_contact(rows: list[Proposal]) -> None:
    wanting: dict[str, list[Proposal]] = defaultdict(list)
    for row in rows:
        if row.kind == "proposed" and row.xero_id:
            wanting[row.xero_id].append(row)
    for contact_id, claims in wanting.items():
        if len(claims) < 2:
            continue
        contact = Side(contact_id, claims[0].xero_name)
        for row in claims:
            row.kind, row.xero_id, row.xero_name = "ambiguous", None, ""
            row.candidates = [contact]
            row.detail = (f"{len(claims)} CRM companies match Xero contact {contact.name!r}; "
                          "a contact can be linked to one company only")


def _one_new_contact_per_name(rows: list[Proposal]) -> None:
    named: dict[str, list[Proposal]] = defaultdict(list)
    for row in rows:
        if row.kind == "crm_only" and row.crm_name.strip():
            named[name_key(row.crm_name)].append(row)
    for same in named.values():
        if len(same) < 2:
            continue
        for row in same:
            row.kind = "ambiguous"
            row.detail = (f"{len(same)} CRM companies are named {row.crm_name!r}: Xero's contact "
                          "names are unique, so only one of them can be created under it")


def _candidate(side: Side) -> Candidate:
    return Candidate(side.record_id, side.name, side.email, side.tax_number)


def _side(candidate: Candidate) -> Side:
    return Side(candidate.contact_id, candidate.name, candidate.email, candidate.tax_number)
