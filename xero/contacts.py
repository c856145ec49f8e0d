"""Which Xero contact a deal's customer is: matched in the admin's order, never duplicated,
never guessed. Pure: the caller supplies the look-up (the local mirror of Xero contacts)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_ORDER = ("email", "tax_number", "name")
MatchField = Literal["email", "tax_number", "name"]


def email_key(value: str) -> str:
    return value.strip().casefold()


def tax_key(value: str) -> str:
    """ABN '51 824 753 556' and '51824753556' are the same number."""
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


def name_key(value: str) -> str:
    """Xero's unique-name rule ignores case; we also fold runs of spaces."""
    return " ".join(value.split()).casefold()


KEYS: dict[str, Callable[[str], str]] = {"email": email_key, "tax_number": tax_key, "name": name_key}


@dataclass(frozen=True)
class Customer:
    """Who the deal bills: its organisation, or its person when there is none."""

    crm_type: Literal["company", "person"]
    crm_id: str
    name: str
    email: str = ""
    tax_number: str = ""


@dataclass(frozen=True)
class Candidate:
    contact_id: str
    name: str
    email: str = ""
    tax_number: str = ""


@dataclass(frozen=True)
class Match:
    outcome: Literal["matched", "create", "ambiguous"]
    contact_id: str | None = None
    matched_on: str = ""
    detail: str = ""
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)


Lookup = Callable[[str, str], Sequence[Candidate]]


def match_contact(customer: Customer, order: Sequence[str], lookup: Lookup) -> Match:
    """Follow `order` (fields of DEFAULT_ORDER); the first field that finds anyone decides."""
    for name in order:
        value = getattr(customer, name, "")
        if name not in KEYS or not value:
            continue
        found = list(lookup(name, KEYS[name](value)))
        if len(found) > 1:
            return Match("ambiguous", matched_on=name, candidates=tuple(found),
                         detail=f"{len(found)} Xero contacts have this {_label(name)}")
        if found:
            conflict = _conflict(customer, found[0])
            if conflict:
                return Match("ambiguous", matched_on=name, candidates=tuple(found),
                             detail=f"Xero contact {found[0].name!r} has this {_label(name)} "
                                    f"but a different {conflict}")
            return Match("matched", contact_id=found[0].contact_id, matched_on=name)
    # Creating is safe only if no active contact has the name (Xero: names are unique).
    same_name = list(lookup("name", name_key(customer.name)))
    if same_name:
        return Match("ambiguous", matched_on="name", candidates=tuple(same_name),
                     detail=f"a Xero contact named {customer.name!r} exists but does not match "
                            "on " + " or ".join(_label(n) for n in order if n != "name"))
    return Match("create")


def _conflict(customer: Customer, candidate: Candidate) -> str:
    """A field both sides have and disagree on: the same name is not the same customer."""
    if customer.email and candidate.email and email_key(customer.email) != email_key(candidate.email):
        return "email"
    if (customer.tax_number and candidate.tax_number
            and tax_key(customer.tax_number) != tax_key(candidate.tax_number)):
        return "tax number"
    return ""


def _label(name: str) -> str:
    return {"tax_number": "tax number"}.get(name, name)
