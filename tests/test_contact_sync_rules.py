"""app.contact_sync: the mapping's defaults, the scope, and the per-field rules (every
direction, every conflict rule, loop prevention, first sync), all pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from app.contact_sync.mapping import (
    FIELDS,
    ConflictRule,
    Direction,
    FieldRule,
    MappingError,
    mapping_for,
)
from app.contact_sync.rules import (
    Action,
    Snapshot,
    decide,
    resolve,
    settle,
)
from app.contact_sync.scope import ContactScope, in_scope
from app.contact_sync.state import SyncState
from app.contact_sync.values import address, digest, same

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
T1, T2, T3 = (T0 + timedelta(minutes=m) for m in (1, 2, 3))


def rule(direction=Direction.BOTH, conflict=ConflictRule.CRM, field="phone"):
    return {field: FieldRule(field, direction, conflict, "phone")}


def synced(field="phone", value="+61 2 9000 0000", **kw):
    """The state right after both sides agreed on `value`."""
    h = digest(field, value)
    return SyncState(xero_version=T0, crm_version=T0,
                     hashes={"xero": {field: h}, "crm": {field: h}}, **kw)


def sides(x, c, xv=T1, cv=T1, field="phone"):
    return Snapshot({field: x}, xv), Snapshot({field: c}, cv)


OLD, NEW_X, NEW_C = "+61 2 9000 0000", "+61 2 9111 1111", "+61 2 9222 2222"


# --- the defaults ----------------------------------------------------------------------------

@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_defaults_xero_wins_financial_fields_the_crm_the_rest(crm):
    rules = mapping_for(crm, tax_number_property="abn")
    assert set(rules) == set(FIELDS)
    for name in ("tax_number", "payment_terms", "currency"):
        assert rules[name].conflict == ConflictRule.XERO
    for name in set(FIELDS) - {"tax_number", "payment_terms", "currency"}:
        assert rules[name].conflict == ConflictRule.CRM, name
    assert rules["name"].direction == Direction.BOTH and rules["name"].active
    assert rules["street_address"].crm_property == "address"
    assert rules["tax_number"].crm_property == "abn" and rules["tax_number"].active


def test_defaults_per_crm_fields_without_a_crm_property_do_not_sync():
    hubspot, pipedrive = mapping_for("hubspot"), mapping_for("pipedrive")
    assert hubspot["phone"].crm_property == "phone" and hubspot["phone"].active
    assert pipedrive["phone"].crm_property is None and not pipedrive["phone"].active
    for rules in (hubspot, pipedrive):
        # No standard company property: the admin picks one first.
        for name in ("email", "payment_terms", "currency", "account_number", "contact_persons"):
            assert not rules[name].active, name
        # The tax number's field is the admin's choice too.
        assert not rules["tax_number"].active


def test_website_only_syncs_from_xero_because_xeros_api_cannot_write_it():
    rules = mapping_for("hubspot")
    assert rules["website"].direction == Direction.XERO_TO_CRM
    assert rules["website"].to_crm and not rules["website"].to_xero
    with pytest.raises(MappingError, match="cannot write Website"):
        mapping_for("hubspot", {"website": {"direction": "both"}})


def test_overrides_change_direction_conflict_and_property():
    rules = mapping_for("pipedrive", {"email": {"crm_property": "a1b2c3", "direction": "xero_to_crm"},
                                      "name": {"conflict": "ask"}, "street_address": {"direction": "off"}})
    assert rules["email"] == FieldRule("email", Direction.XERO_TO_CRM, ConflictRule.CRM, "a1b2c3")
    assert rules["name"].conflict == ConflictRule.ASK
    assert not rules["street_address"].active


@pytest.mark.parametrize("overrides", [{"fax": {}}, {"name": {"direction": "sideways"}},
                                       {"name": {"conflict": "loudest"}}, {"name": "both"},
                                       {"name": {"crm_property": 7}}])
def test_bad_overrides_are_refused(overrides):
    with pytest.raises(MappingError):
        mapping_for("hubspot", overrides)


# --- the scope: contact groups, IsCustomer / IsSupplier --------------------------------------

def test_scope_customers_and_new_contacts_by_default_suppliers_only_stay_out():
    assert in_scope(ContactScope(is_customer=True, is_supplier=False))
    assert in_scope(ContactScope(is_customer=False, is_supplier=False))
    assert not in_scope(ContactScope(is_customer=False, is_supplier=True))
    assert in_scope(ContactScope(is_customer=True, is_supplier=True))
    assert in_scope(ContactScope(False, True), roles=["supplier"])
    assert not in_scope(ContactScope(True, False), roles=["supplier"])
    assert not in_scope(ContactScope(True, False, active=False))


def test_scope_contact_groups():
    wholesale = ContactScope(True, False, frozenset({"g-wholesale"}))
    assert in_scope(wholesale, groups=["g-wholesale", "g-retail"])
    assert not in_scope(wholesale, groups=["g-retail"])
    assert not in_scope(ContactScope(True, False), groups=["g-retail"])
    assert in_scope(ContactScope(True, False))  # no groups chosen: any


# --- one side changed: each direction ---------------------------------------------------------

@pytest.mark.parametrize("direction,expected", [
    (Direction.BOTH, Action.WRITE_CRM), (Direction.XERO_TO_CRM, Action.WRITE_CRM),
    (Direction.CRM_TO_XERO, Action.NOTHING), (Direction.OFF, Action.NOTHING)])
def test_a_change_in_xero(direction, expected):
    plan = decide(rule(direction), synced(), *sides(NEW_X, OLD))
    assert plan.of("phone").action == expected
    if expected == Action.WRITE_CRM:
        assert plan.to_crm == {"phone": NEW_X} and plan.to_xero == {}


@pytest.mark.parametrize("direction,expected", [
    (Direction.BOTH, Action.WRITE_XERO), (Direction.CRM_TO_XERO, Action.WRITE_XERO),
    (Direction.XERO_TO_CRM, Action.NOTHING), (Direction.OFF, Action.NOTHING)])
def test_a_change_in_the_crm(direction, expected):
    plan = decide(rule(direction), synced(), *sides(OLD, NEW_C))
    assert plan.of("phone").action == expected
    if expected == Action.WRITE_XERO:
        assert plan.to_xero == {"phone": NEW_C} and plan.to_crm == {}


def test_no_change_and_equal_values_are_nothing():
    assert decide(rule(), synced(), *sides(OLD, OLD)).of("phone").reason == "in_sync"
    # The same number written differently is the same number.
    assert decide(rule(), synced(), *sides(OLD, "+61 (2) 9000-0000")).of("phone").action == Action.NOTHING


def test_a_field_one_side_cannot_hold_is_left_alone():
    plan = decide(rule(), synced(), Snapshot({"phone": NEW_X}, T1), Snapshot({}, T1))
    assert plan.of("phone").reason == "not_held"


def test_a_field_without_a_crm_property_is_left_alone():
    rules = {"email": FieldRule("email", Direction.BOTH, ConflictRule.CRM, None)}
    plan = decide(rules, SyncState(), Snapshot({"email": "a@x.test"}), Snapshot({"email": ""}))
    assert plan.of("email").reason == "no_crm_field"


# --- both changed: each conflict rule ------------------------------------------------------

@pytest.mark.parametrize("conflict,action,value", [
    (ConflictRule.XERO, Action.WRITE_CRM, NEW_X), (ConflictRule.CRM, Action.WRITE_XERO, NEW_C)])
def test_both_changed_the_rule_picks_the_winner(conflict, action, value):
    d = decide(rule(conflict=conflict), synced(), *sides(NEW_X, NEW_C)).of("phone")
    assert (d.action, d.value) == (action, value)


def test_both_changed_most_recent_wins():
    newer_xero = decide(rule(conflict=ConflictRule.MOST_RECENT), synced(),
                        *sides(NEW_X, NEW_C, xv=T3, cv=T2)).of("phone")
    assert (newer_xero.action, newer_xero.value) == (Action.WRITE_CRM, NEW_X)
    newer_crm = decide(rule(conflict=ConflictRule.MOST_RECENT), synced(),
                       *sides(NEW_X, NEW_C, xv=T2, cv=T3)).of("phone")
    assert (newer_crm.action, newer_crm.value) == (Action.WRITE_XERO, NEW_C)


@pytest.mark.parametrize("xv,cv", [(T2, T2), (None, T2), (T2, None)])
def test_most_recent_that_cannot_tell_asks(xv, cv):
    d = decide(rule(conflict=ConflictRule.MOST_RECENT), synced(), *sides(NEW_X, NEW_C, xv, cv)).of("phone")
    assert d.action == Action.CONFLICT and d.reason == "cannot_tell_newer"


def test_both_changed_ask_is_a_conflict_with_both_values_and_no_write():
    plan = decide(rule(conflict=ConflictRule.ASK), synced(), *sides(NEW_X, NEW_C))
    (conflict,) = plan.conflicts
    assert (conflict.xero_value, conflict.crm_value) == (NEW_X, NEW_C)
    assert plan.to_crm == {} and plan.to_xero == {}


@pytest.mark.parametrize("direction,action", [(Direction.XERO_TO_CRM, Action.WRITE_CRM),
                                              (Direction.CRM_TO_XERO, Action.WRITE_XERO)])
def test_both_changed_on_a_one_way_field_the_source_wins_whatever_the_rule(direction, action):
    d = decide(rule(direction, ConflictRule.ASK), synced(), *sides(NEW_X, NEW_C)).of("phone")
    assert d.action == action


def test_an_open_conflict_waits_for_a_person_and_closes_once_the_sides_agree():
    waiting = synced(open_conflicts={"phone": 41})
    xero, crm = sides(NEW_X, NEW_C)
    assert decide(rule(), waiting, xero, crm).of("phone").reason == "waiting_for_review"
    xero, crm = sides(NEW_C, NEW_C)
    plan = decide(rule(), waiting, xero, crm)
    assert settle(waiting, plan, xero, crm).open_conflicts == {}


def test_a_conflict_is_remembered_with_its_review_item_and_hashes_stay():
    state = synced()
    xero, crm = sides(NEW_X, NEW_C)
    plan = decide(rule(conflict=ConflictRule.ASK), state, xero, crm)
    after = settle(state, plan, xero, crm, conflict_items={"phone": 7})
    assert after.open_conflicts == {"phone": 7}
    assert after.hashes == state.hashes  # still both "changed" when the person answers


@pytest.mark.parametrize("choice,action,value", [("xero", Action.WRITE_CRM, NEW_X),
                                                 ("crm", Action.WRITE_XERO, NEW_C)])
def test_a_person_resolves_a_conflict(choice, action, value):
    d = resolve("phone", choice, NEW_X, NEW_C)
    assert (d.action, d.value) == (action, value)
    state = synced(open_conflicts={"phone": 7})
    after = settle(state, (d,), *sides(NEW_X, NEW_C),
                   written={"crm" if action == Action.WRITE_CRM else "xero": T3})
    assert after.open_conflicts == {}
    assert after.base("xero", "phone") == after.base("crm", "phone") == digest("phone", value)
    with pytest.raises(ValueError):
        resolve("phone", "both", NEW_X, NEW_C)


# --- loop prevention ------------------------------------------------------------------------------

def test_paydecks_own_write_never_bounces_back():
    """Xero changed -> Paydeck writes the CRM -> the CRM's change event comes back: the CRM
    now holds exactly what Paydeck wrote, so nothing goes to Xero."""
    state = synced()
    xero, crm = sides(NEW_X, OLD)
    plan = decide(rule(), state, xero, crm)
    assert plan.to_crm == {"phone": NEW_X}
    after = settle(state, plan, xero, crm, written={"crm": T2})
    assert after.crm_written_version == T2 and after.last_origin == "xero"
    echo = decide(rule(), after, *sides(NEW_X, NEW_X, xv=T1, cv=T2))
    assert echo.to_crm == {} and echo.to_xero == {}


def test_a_record_at_paydecks_written_version_is_an_echo_even_if_reformatted():
    """The CRM stored Paydeck's value in its own format (a different hash): at the version
    Paydeck's write produced, that is no one's change."""
    state = synced(crm_written_version=T2)
    plan = decide(rule(), state, *sides(OLD, "(02) 9000 0000 ext", xv=T0, cv=T2))
    assert plan.crm_echo and plan.to_xero == {} and plan.to_crm == {}
    # ... and the reformatted value becomes the CRM's base: no change next time either.
    xero, crm = sides(OLD, "(02) 9000 0000 ext", xv=T0, cv=T2)
    after = settle(state, plan, xero, crm)
    later = replace(after, crm_written_version=None)  # another write since, elsewhere
    assert decide(rule(), later, *sides(OLD, "(02) 9000 0000 ext", xv=T0, cv=T3)).to_xero == {}


def test_a_change_after_paydecks_write_is_someone_elses_and_syncs():
    state = synced(crm_written_version=T2)
    plan = decide(rule(), state, *sides(OLD, NEW_C, xv=T0, cv=T3))
    assert not plan.crm_echo and plan.to_xero == {"phone": NEW_C}


def test_a_failed_write_is_not_settled_so_it_is_tried_again():
    state = synced()
    xero, crm = sides(NEW_X, OLD)
    plan = decide(rule(), state, xero, crm)
    after = settle(state, plan, xero, crm, written={})  # the CRM write failed
    assert after.hashes == state.hashes and after.crm_written_version is None
    assert decide(rule(), after, xero, crm).to_crm == {"phone": NEW_X}


def test_a_change_the_direction_excludes_is_absorbed_not_replayed_later():
    state = synced()
    xero, crm = sides(NEW_X, OLD)
    rules = rule(Direction.CRM_TO_XERO)
    after = settle(state, decide(rules, state, xero, crm), xero, crm)
    # Later the CRM changes: the CRM's value goes to Xero (the CRM is the source).
    assert decide(rules, after, *sides(NEW_X, NEW_C, xv=T1, cv=T2)).to_xero == {"phone": NEW_C}


# --- the first sync of a link ------------------------------------------------------------

def test_first_sync_fills_empty_fields_and_never_clears_one():
    plan = decide(rule(), SyncState(), *sides("", NEW_C, None, None))
    assert plan.to_xero == {"phone": NEW_C}
    plan = decide(rule(), SyncState(), *sides(NEW_X, "", None, None))
    assert plan.to_crm == {"phone": NEW_X}
    plan = decide(rule(Direction.CRM_TO_XERO), SyncState(), *sides(NEW_X, "", None, None))
    assert plan.to_xero == {} and plan.to_crm == {}


def test_first_sync_two_different_values_follow_the_conflict_rule():
    assert decide(rule(conflict=ConflictRule.XERO), SyncState(),
                  *sides(NEW_X, NEW_C, None, None)).to_crm == {"phone": NEW_X}
    assert decide(rule(conflict=ConflictRule.ASK), SyncState(),
                  *sides(NEW_X, NEW_C, None, None)).conflicts


def test_clearing_a_field_on_one_side_is_a_change():
    assert decide(rule(), synced(), *sides(OLD, "")).to_xero == {"phone": ""}


# --- values -----------------------------------------------------------------------------------------

def test_values_compare_by_meaning():
    assert same("email", "AP@Acme.test ", "ap@acme.test")
    assert same("website", "https://www.acme.test/", "acme.test")
    assert same("tax_number", "51 824 753 556", "51824753556")
    assert same("name", "Acme  Pty Ltd", "Acme Pty Ltd") and not same("name", "acme", "Acme")
    assert same("street_address", address("1 George St", "Sydney"), address(" 1 George  St", "Sydney"))
    assert not same("street_address", address("1 George St", "Sydney"), address("2 George St", "Sydney"))
    assert address() == "" and digest("street_address", address()) == digest("street_address", "")


def test_the_default_mapping_end_to_end_a_xero_tax_number_wins_a_crm_phone_wins():
    rules = mapping_for("hubspot", tax_number_property="abn")
    base = {"name": "Acme", "phone": OLD, "tax_number": "11 111 111 111"}
    state = SyncState(hashes={s: {k: digest(k, v) for k, v in base.items()} for s in ("xero", "crm")})
    xero = Snapshot({**base, "phone": NEW_X, "tax_number": "22 222 222 222"}, T2)
    crm = Snapshot({**base, "phone": NEW_C, "tax_number": "33 333 333 333"}, T3)
    plan = decide(rules, state, xero, crm)
    assert plan.to_crm == {"tax_number": "22 222 222 222"}
    assert plan.to_xero == {"phone": NEW_C}
