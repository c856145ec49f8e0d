"""The object-type dimension of contact sync: a link joins a Xero contact to a CRM company
or, for B2C deals with no company, a CRM person (HubSpot contact, Pipedrive person). The
rules, values and sync state are the same for both; what differs is the mapping's CRM
properties (app.contact_sync.mapping.person_mapping), the adapter's read and write calls,
and the words shown to people."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.contact_sync.mapping import OBJECT_TYPES

# What people read for each object type (review items, the audit trail).
NOUN = {"company": "company", "person": "person"}


def checked(object_type: str) -> str:
    if object_type not in OBJECT_TYPES:
        raise ValueError(f"contact sync links companies or persons, not {object_type!r}")
    return object_type


def fetch(adapter: Any, object_type: str, installation: Any, ids: Sequence[str],
          extra: Mapping[str, str]) -> dict[str, Any]:
    """The CRM records by id (None: gone): companies-v3 / contacts-v3 batch read in HubSpot,
    GET /api/v2/organizations or /api/v2/persons?ids= in Pipedrive."""
    if checked(object_type) == "person":
        return dict(adapter.fetch_persons(installation, ids, extra))
    return dict(adapter.fetch_companies(installation, ids, extra))


def update(adapter: Any, object_type: str, installation: Any,
           updates: Mapping[str, Mapping[str, str]], extra: Mapping[str, str]) -> dict[str, Any]:
    """Write the fields; the CRM's new version per record written."""
    if checked(object_type) == "person":
        return dict(adapter.update_persons(installation, updates, extra))
    return dict(adapter.update_companies(installation, updates, extra))
