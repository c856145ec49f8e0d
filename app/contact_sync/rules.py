"""The sync rules, pure: given the mapping, the link's sync state and both sides' current
values, decide per field: write to the CRM, write to Xero, nothing, or a conflict.

A side changed a field when the field's hash differs from the one stored for that side at the
last sync. Loop prevention, twice over: a record still at the version Paydeck's own last
write produced is Paydeck's echo (nothing on that side changed, whatever the CRM or Xero
reformatted), and after a write the side's stored hash is the written value's, so the change
Paydeck made never reads as someone else's.

Never synced yet (no stored hash): a side with a value counts as changed, an empty one as
not, so the first sync fills empty fields and never clears one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.contact_sync.mapping import ConflictRule, Direction, FieldRule
from app.contact_sync.state import SyncState
from app.contact_sync.values import Value, digest, is_empty


class Action(str, enum.Enum):
    WRITE_CRM = "write_crm"
    WRITE_XERO = "write_xero"
    NOTHING = "nothing"
    CONFLICT = "conflict"


# Why a field gets nothing, or what it gets; `settle` reads these.
OFF, NO_CRM_FIELD, NOT_HELD = "off", "no_crm_field", "not_held"
IN_SYNC, UNCHANGED, WAITING = "in_sync", "unchanged", "waiting_for_review"
NOT_THIS_WAY = "direction_excludes"  # the side that changed is not synced from
CHANGED_IN_XERO, CHANGED_IN_CRM = "changed_in_xero", "changed_in_crm"
XERO_WINS, CRM_WINS = "both_changed_xero_wins", "both_changed_crm_wins"
NEWER_WINS, ASK, CANNOT_TELL = "both_changed_newer_wins", "both_changed_ask", "cannot_tell_newer"
ONE_WAY = "both_changed_one_way"  # a one-way field: its source side wins
RESOLVED = "resolved_by_person"
# Xero refuses a contact without a name ("The contact name must be specified."; the
# Accounting API's contacts docs list Name as required, the vendored spec does not mark it;
# the fake refuses it: sandbox/xero/books.py). A CRM record whose name was emptied (a HubSpot
# contact with neither first nor last name) never sends an empty Name: it waits for one.
NAME_REQUIRED = "xero_needs_a_name"
# Decisions after which both sides' current hashes become the base.
_ABSORB = frozenset({IN_SYNC, UNCHANGED, NOT_THIS_WAY})


@dataclass(frozen=True)
class Snapshot:
    """One side's record now: field values (a field absent: this side cannot hold it or it
    was not read) and its version (Xero UpdatedDateUTC, CRM updatedAt / update_time)."""

    values: Mapping[str, Value]
    version: datetime | None = None


@dataclass(frozen=True)
class Decision:
    field: str
    action: Action
    reason: str
    value: Value | None = None  # what to write (WRITE_*)
    xero_value: Value | None = None
    crm_value: Value | None = None


@dataclass(frozen=True)
class SyncPlan:
    decisions: tuple[Decision, ...]
    xero_echo: bool = False  # Xero's record is at Paydeck's own last write
    crm_echo: bool = False

    def _values(self, action: Action) -> dict[str, Value]:
        return {d.field: d.value if d.value is not None else "" for d in self.decisions
                if d.action == action}

    @property
    def to_crm(self) -> dict[str, Value]:
        return self._values(Action.WRITE_CRM)

    @property
    def to_xero(self) -> dict[str, Value]:
        return self._values(Action.WRITE_XERO)

    @property
    def conflicts(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == Action.CONFLICT]

    def of(self, name: str) -> Decision:
        return next(d for d in self.decisions if d.field == name)


def is_echo(version: datetime | None, written: datetime | None) -> bool:
    return version is not None and written is not None and version == written


def decide(rules: Mapping[str, FieldRule], state: SyncState, xero: Snapshot,
           crm: Snapshot) -> SyncPlan:
    xero_echo = is_echo(xero.version, state.xero_written_version)
    crm_echo = is_echo(crm.version, state.crm_written_version)
    decisions = tuple(_named(_decide(rule, state, xero, crm, xero_echo, crm_echo))
                      for rule in rules.values())
    return SyncPlan(decisions, xero_echo, crm_echo)


def _named(d: Decision) -> Decision:
    if d.field == "name" and d.action == Action.WRITE_XERO and is_empty(d.value):
        return replace(d, action=Action.NOTHING, reason=NAME_REQUIRED, value=None)
    return d


def _decide(rule: FieldRule, state: SyncState, xero: Snapshot, crm: Snapshot,
            xero_echo: bool, crm_echo: bool) -> Decision:
    name = rule.field
    if rule.direction == Direction.OFF:
        return Decision(name, Action.NOTHING, OFF)
    if not rule.crm_property:
        return Decision(name, Action.NOTHING, NO_CRM_FIELD)
    if name not in xero.values or name not in crm.values:
        return Decision(name, Action.NOTHING, NOT_HELD)
    x, c = xero.values[name], crm.values[name]
    both = {"xero_value": x, "crm_value": c}
    hx, hc = digest(name, x), digest(name, c)
    if hx == hc:
        return Decision(name, Action.NOTHING, IN_SYNC, **both)
    if name in state.open_conflicts:
        return Decision(name, Action.NOTHING, WAITING, **both)
    x_changed = not xero_echo and _changed(state.base("xero", name), hx, x)
    c_changed = not crm_echo and _changed(state.base("crm", name), hc, c)
    if x_changed and c_changed:
        return _both_changed(rule, xero, crm, x, c)
    if x_changed:
        if rule.to_crm:
            return Decision(name, Action.WRITE_CRM, CHANGED_IN_XERO, x, **both)
        return Decision(name, Action.NOTHING, NOT_THIS_WAY, **both)
    if c_changed:
        if rule.to_xero:
            return Decision(name, Action.WRITE_XERO, CHANGED_IN_CRM, c, **both)
        return Decision(name, Action.NOTHING, NOT_THIS_WAY, **both)
    return Decision(name, Action.NOTHING, UNCHANGED, **both)


def _changed(base: str | None, now: str, value: Value) -> bool:
    if base is None:  # never synced: a value is news, an empty field is not
        return not is_empty(value)
    return now != base


def _both_changed(rule: FieldRule, xero: Snapshot, crm: Snapshot, x: Value,
                  c: Value) -> Decision:
    name, both = rule.field, {"xero_value": x, "crm_value": c}
    to_crm = Decision(name, Action.WRITE_CRM, "", x, **both)
    to_xero = Decision(name, Action.WRITE_XERO, "", c, **both)
    if rule.direction == Direction.XERO_TO_CRM:
        return replace(to_crm, reason=ONE_WAY) if rule.to_crm else \
            Decision(name, Action.NOTHING, NOT_THIS_WAY, **both)
    if rule.direction == Direction.CRM_TO_XERO:
        return replace(to_xero, reason=ONE_WAY) if rule.to_xero else \
            Decision(name, Action.NOTHING, NOT_THIS_WAY, **both)
    winner: str | None
    if rule.conflict == ConflictRule.XERO:
        winner, reason = "xero", XERO_WINS
    elif rule.conflict == ConflictRule.CRM:
        winner, reason = "crm", CRM_WINS
    elif rule.conflict == ConflictRule.MOST_RECENT:
        if xero.version is None or crm.version is None or xero.version == crm.version:
            return Decision(name, Action.CONFLICT, CANNOT_TELL, **both)
        winner, reason = ("xero" if xero.version > crm.version else "crm"), NEWER_WINS
    else:
        return Decision(name, Action.CONFLICT, ASK, **both)
    if winner == "xero":
        return replace(to_crm, reason=reason) if rule.to_crm else \
            Decision(name, Action.NOTHING, NOT_THIS_WAY, **both)
    return replace(to_xero, reason=reason) if rule.to_xero else \
        Decision(name, Action.NOTHING, NOT_THIS_WAY, **both)


def resolve(name: str, choice: str, xero_value: Value, crm_value: Value) -> Decision:
    """A person's answer to a conflict: keep Xero's value (write it to the CRM) or the
    CRM's (write it to Xero)."""
    both = {"xero_value": xero_value, "crm_value": crm_value}
    if choice == "xero":
        return Decision(name, Action.WRITE_CRM, RESOLVED, xero_value, **both)
    if choice == "crm":
        return Decision(name, Action.WRITE_XERO, RESOLVED, crm_value, **both)
    raise ValueError(f"a conflict is resolved with 'xero' or 'crm', not {choice!r}")


def settle(state: SyncState, plan: SyncPlan | tuple[Decision, ...], xero: Snapshot,
           crm: Snapshot, *, written: Mapping[str, datetime | None] | None = None,
           conflict_items: Mapping[str, Any] | None = None) -> SyncState:
    """The link's state once the plan was carried out. `written`: the sides whose planned
    write succeeded, with the version that write produced (None: not told); a side with a
    planned write that is not in it failed, so its fields stay as they were and are tried
    again. `conflict_items`: field -> the review item opened for each conflict."""
    decisions = plan.decisions if isinstance(plan, SyncPlan) else plan
    written = dict(written or {})
    conflict_items = dict(conflict_items or {})
    hashes = {side: dict(state.hashes.get(side, {})) for side in ("xero", "crm")}
    conflicts = dict(state.open_conflicts)
    origins: set[str] = set()
    for d in decisions:
        name = d.field
        if d.reason in _ABSORB:
            hashes["xero"][name] = digest(name, d.xero_value)
            hashes["crm"][name] = digest(name, d.crm_value)
            if d.reason == IN_SYNC:
                conflicts.pop(name, None)
        elif d.action in (Action.WRITE_CRM, Action.WRITE_XERO):
            target, source = ("crm", "xero") if d.action == Action.WRITE_CRM else ("xero", "crm")
            if target not in written:
                continue
            hashes[target][name] = digest(name, d.value)
            hashes[source][name] = digest(name, d.value)
            conflicts.pop(name, None)
            origins.add(source)
        elif d.action == Action.CONFLICT:
            conflicts[name] = conflict_items.get(name, True)
    new = replace(state, hashes=hashes, open_conflicts=conflicts,
                  xero_version=xero.version, crm_version=crm.version)
    for side in ("xero", "crm"):
        if side in written and written[side] is not None:
            new = replace(new, **{f"{side}_version": written[side],
                                  f"{side}_written_version": written[side]})
    if origins:
        new = replace(new, last_origin="both" if len(origins) > 1 else origins.pop())
    return new
