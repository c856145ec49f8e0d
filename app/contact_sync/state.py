"""A link's sync state as a plain value (the rules never touch the database), and its
round trip through the ContactLink row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SIDES = ("xero", "crm")


@dataclass(frozen=True)
class SyncState:
    xero_version: datetime | None = None
    crm_version: datetime | None = None
    # The version Paydeck's own last write produced on each side.
    xero_written_version: datetime | None = None
    crm_written_version: datetime | None = None
    # side -> field -> values.digest of that side's value at the last sync (or as written).
    hashes: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: {"xero": {}, "crm": {}})
    # field -> what the conflict waits on (a review item id): never written meanwhile.
    open_conflicts: Mapping[str, Any] = field(default_factory=dict)
    last_origin: str | None = None

    def base(self, side: str, name: str) -> str | None:
        return self.hashes.get(side, {}).get(name)


def state_of(link: Any) -> SyncState:
    """The SyncState a ContactLink row holds."""
    hashes = link.field_hashes or {}
    return SyncState(
        xero_version=link.xero_version, crm_version=link.crm_version,
        xero_written_version=link.xero_written_version,
        crm_written_version=link.crm_written_version,
        hashes={side: dict(hashes.get(side) or {}) for side in SIDES},
        open_conflicts=dict(link.open_conflicts or {}), last_origin=link.last_origin)


def store(link: Any, state: SyncState, now: datetime) -> None:
    """Write the state onto the ContactLink row (the caller commits)."""
    link.xero_version, link.crm_version = state.xero_version, state.crm_version
    link.xero_written_version = state.xero_written_version
    link.crm_written_version = state.crm_written_version
    link.field_hashes = {side: dict(state.hashes.get(side, {})) for side in SIDES}
    link.open_conflicts = dict(state.open_conflicts)
    link.last_origin = state.last_origin
    link.synced_at = now
