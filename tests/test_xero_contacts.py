"""Contact matching: each dedupe order, ambiguity, and the unique-name rule."""

from __future__ import annotations

import pytest

from xero.contacts import KEYS, Candidate, Customer, match_contact

ACME = Candidate("c-acme", "Acme Pty Ltd", "accounts@acme.example", "51 824 753 556")
ACME_TWIN = Candidate("c-twin", "Acme Holdings", "accounts@acme.example", "")
GLOBEX = Candidate("c-globex", "Globex", "ap@globex.example", "11 222 333 444")


def lookup_in(*contacts: Candidate):
    def lookup(field: str, key: str):
        return [c for c in contacts if getattr(c, field) and KEYS[field](getattr(c, field)) == key]
    return lookup


def customer(**kw) -> Customer:
    return Customer(**{"crm_type": "company", "crm_id": "co-1", "name": "Acme Pty Ltd", **kw})


@pytest.mark.parametrize(("order", "who", "expected", "on"), [
    (("email", "tax_number", "name"), customer(email="ACCOUNTS@acme.example "), "c-acme", "email"),
    (("tax_number", "email", "name"), customer(tax_number="51824753556"), "c-acme", "tax_number"),
    (("name", "email", "tax_number"), customer(name="  acme   pty ltd"), "c-acme", "name"),
    (("email", "tax_number", "name"), customer(email="new@acme.example", tax_number="51 824 753 556"),
     None, None),  # email finds nobody; tax then finds Acme - but the email differs: ambiguous
])
def test_each_order_matches_on_its_first_field(order, who, expected, on):
    result = match_contact(who, order, lookup_in(ACME, GLOBEX))

    if expected is None:
        assert result.outcome == "ambiguous" and "different email" in result.detail
    else:
        assert (result.outcome, result.contact_id, result.matched_on) == ("matched", expected, on)


def test_the_order_decides_which_contact_wins():
    who = customer(name="Globex", email="ap@globex.example", tax_number="51 824 753 556")
    by_email = match_contact(who, ("email", "tax_number"), lookup_in(ACME, GLOBEX))
    by_tax = match_contact(who, ("tax_number", "email"), lookup_in(ACME, GLOBEX))

    assert by_email.outcome == by_tax.outcome == "ambiguous"  # the other field disagrees
    assert by_email.candidates[0].contact_id == "c-globex"
    assert by_tax.candidates[0].contact_id == "c-acme"


def test_several_candidates_is_ambiguous_with_all_of_them():
    result = match_contact(customer(email="accounts@acme.example"), ("email",), lookup_in(ACME, ACME_TWIN))

    assert result.outcome == "ambiguous"
    assert {c.contact_id for c in result.candidates} == {"c-acme", "c-twin"}


def test_same_name_different_email_is_ambiguous_never_a_second_contact():
    result = match_contact(customer(email="someone@else.example"), ("email", "tax_number", "name"),
                           lookup_in(ACME))

    assert result.outcome == "ambiguous"
    assert result.candidates == (ACME,)


def test_same_name_when_name_is_not_in_the_order_is_still_ambiguous():
    """Creating would break Xero's unique-name rule: ask a person instead of 'Acme (2)'."""
    result = match_contact(customer(email="new@acme.example"), ("email",), lookup_in(ACME))

    assert result.outcome == "ambiguous" and "exists" in result.detail


def test_nobody_like_it_means_create():
    result = match_contact(customer(name="Initech", email="hi@initech.example"), ("email", "name"),
                           lookup_in(ACME, GLOBEX))

    assert result.outcome == "create" and result.contact_id is None


def test_name_match_without_contradiction_is_a_match():
    result = match_contact(customer(email=""), ("email", "tax_number", "name"), lookup_in(ACME))

    assert (result.outcome, result.contact_id) == ("matched", "c-acme")
