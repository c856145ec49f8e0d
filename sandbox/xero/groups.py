"""Xero's contact groups, as the fake serves them (tests/specs/xero/xero_accounting.yaml,
`/ContactGroups` getContactGroups and `/ContactGroups/{ContactGroupID}` getContactGroup; schema
ContactGroup).

- GET /ContactGroups: "Retrieves the contact Id and name of each contact group", filtered by
  `where` and ordered by `order`; the spec's ContactGroup.Status: "To delete a contact group
  update the status to DELETED. Only contact groups with a status of ACTIVE are returned on
  GETs". The list's `Contacts` is empty (the spec's example: `Contacts: []`).
- GET /ContactGroups/{id}: the group with its members: ContactGroup.Contacts is "The
  ContactID and Name of Contacts in a contact group. Returned on GETs when the ContactGroupID
  is supplied in the URL." Unverified: what Xero answers for a DELETED group's id (the spec
  says only ACTIVE groups are returned on GETs; the fake answers 404, as for an unknown id).
- The contacts' own `ContactGroups` array ("Displays which contact groups a contact is
  included in") is left empty by the fake (sandbox/xero/render.py), as the spec's GET
  /Contacts and GET /Contacts/{id} examples show it (`ContactGroups: []`). Unverified whether
  real Xero fills it on a list read; Paydeck reads membership from the group instead.

Groups are made in Xero's UI (the seeding helpers below), not through Paydeck.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.xero.where import Listing
from sandbox.xero.wire import json_body, ms_datetime, not_found

PROVIDER_NAME = "Paydeck Xero sandbox"
_GROUPS = Listing("ContactGroup", "Name Status ContactGroupID", "Name", dated=False)


@dataclass
class ContactGroup:
    contact_group_id: str
    name: str
    status: str = "ACTIVE"
    contact_ids: list[str] = field(default_factory=list)


def _table(books: Any) -> dict[str, ContactGroup]:
    return books.contact_group_by_id  # type: ignore[no-any-return]


def add_group(books: Any, name: str, contact_ids: Iterable[str] = ()) -> str:
    """A group made in Xero's UI, with these contacts in it; its ContactGroupID."""
    with books.lock:
        group = ContactGroup(str(uuid.uuid4()), name, contact_ids=list(contact_ids))
        _table(books)[group.contact_group_id] = group
        return group.contact_group_id


def add_to_group(books: Any, group_id: str, *contact_ids: str) -> None:
    with books.lock:
        group = _table(books)[group_id]
        group.contact_ids.extend(c for c in contact_ids if c not in group.contact_ids)


def delete_group(books: Any, group_id: str) -> None:
    """Deleted in Xero (Status DELETED: no longer returned on GETs)."""
    with books.lock:
        _table(books)[group_id].status = "DELETED"


def _render(books: Any, group: ContactGroup, *, members: bool) -> dict[str, Any]:
    contacts = []
    if members:
        for contact_id in group.contact_ids:
            record = books.contact_by_id.get(contact_id)
            if record is not None:
                contacts.append({"ContactID": contact_id, "Name": record.name})
    return {"ContactGroupID": group.contact_group_id, "Name": group.name,
            "Status": group.status, "Contacts": contacts, "HasValidationErrors": False}


def _ok(books: Any, groups: list[dict[str, Any]]) -> Response:
    return json_body({"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": PROVIDER_NAME,
                      "DateTimeUTC": ms_datetime(int(books.clock.now() * 1000)),
                      "ContactGroups": groups})


def get_groups(request: Request, books: Any) -> Response:
    active = [g for g in _table(books).values() if g.status == "ACTIVE"]
    args = {k.lower(): v for k, v in request.args.items()}
    chosen = _GROUPS.select(active, args.get("where") or "", args.get("order") or "", None)
    return _ok(books, [_render(books, g, members=False) for g in chosen])


def get_group(request: Request, books: Any, record_id: str) -> Response:
    group = _table(books).get(record_id.lower()) or _table(books).get(record_id)
    if group is None or group.status != "ACTIVE":
        return not_found()
    return _ok(books, [_render(books, group, members=True)])
