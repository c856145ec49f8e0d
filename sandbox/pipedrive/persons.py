"""The fake Pipedrive's persons being created and changed, by a user in the web app
(change_source "app") or through API v2 (PATCH /api/v2/persons/{id}, change_source "api"),
each announced like an organization change (create.person / change.person: "person | ...a
person is added, deleted, has changed", pipedrive.readme.io list-of-webhooks-v2).

The PATCH body is v2 updatePerson's AddPersonRequest (pipedrive/client-nodejs
src/versions/v2/api/persons-api.ts, models/add-person-request.ts): name, owner_id, org_id,
emails, phones, visible_to, label_ids, marketing_status, custom_fields. The fake keeps name,
owner_id, org_id, emails, phones and custom_fields and refuses the rest, saying so. `emails`
and `phones` entries are {value, primary, label} (add-person-request-emails-inner.ts);
unverified: that a PATCH replaces the whole array (the fake does) and how Pipedrive splits
`name` into first_name / last_name (the fake: at the first space, records.PERSON)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import sandbox.pipedrive.parse as parse
from sandbox.pipedrive.parse import bad_request, expect_int, expect_text, not_found
from sandbox.pipedrive.records import (
    CUSTOM_FIELD_TYPES,
    PERSON,
    ChangeSource,
    DealField,
    Person,
    changed,
)

_PATCH_KEYS = frozenset({"name", "owner_id", "org_id", "emails", "phones", "custom_fields"})
_UNMODELLED = frozenset({"visible_to", "label_ids", "marketing_status", "add_time",
                         "update_time"})
_ENTRY_KEYS = frozenset({"value", "primary", "label"})


def person_fields(data: Any) -> dict[str, DealField]:
    """The company's custom person fields (personFields), keyed by field code."""
    fields: dict[str, DealField] = data.person_fields
    return fields


def add_person_field(data: Any, name: str, field_type: str = "varchar") -> str:
    """A custom person field (as an admin adds one); its 40-hex code."""
    if field_type not in CUSTOM_FIELD_TYPES or field_type in ("enum", "set"):
        raise ValueError(f"unsupported person field type {field_type!r}")
    code = secrets.token_hex(20)
    person_fields(data)[code] = DealField(code, name, field_type, True)
    return code


def render(data: Any, person: Person) -> dict[str, Any]:
    """A person's v2 body, every custom person field present (null when unset)."""
    custom: dict[str, Any] = {code: None for code in person_fields(data)}
    custom.update(person.custom_fields)
    return PERSON.render(person) | {"custom_fields": custom}


def _entries(value: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad_request(f"{name} must be an array")
    out = []
    for n, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) - _ENTRY_KEYS:
            raise bad_request(f"{name}[{n}] must be an object of value, primary, label")
        text = expect_text(entry.get("value"), f"{name}[{n}].value")
        primary = entry.get("primary", False)
        if not isinstance(primary, bool):
            raise bad_request(f"{name}[{n}].primary must be a boolean")
        label = expect_text(entry.get("label", "work"), f"{name}[{n}].label")
        out.append({"value": text, "primary": primary, "label": label})
    return out


def announce_created(data: Any, person: Person, user_id: int | None) -> None:
    data.emit("person", "create", person.id, render(data, person), None, user_id, "app",
              person.owner_id)


def patch_person(data: Any, person: Person, body: Mapping[str, Any], user_id: int,
                 source: ChangeSource = "api") -> dict[str, Any]:
    """Apply a v2 PATCH body; announce change.person if the person changed; the person now."""
    changes = parse.read_fields(body, _PATCH_KEYS, _UNMODELLED, {
        "name": lambda value: parse.expect_name(value, "name"),
        "owner_id": lambda value: expect_int(value, "owner_id"),
        "org_id": lambda value: _org(data, value),
        "emails": lambda value: _entries(value, "emails"),
        "phones": lambda value: _entries(value, "phones"),
        "custom_fields": lambda value: parse.custom_values(person_fields(data), value),
    })
    before = render(data, person)
    for key, value in changes.items():
        if key == "custom_fields":
            person.custom_fields.update(value)
        else:
            setattr(person, key, value)
    after = render(data, person)
    previous = changed(before, after)
    if previous:
        person.update_time = data._clock.now()
        data.emit("person", "change", person.id, render(data, person), previous, user_id,
                  source, person.owner_id)
    return render(data, person)


def update_person(data: Any, person_id: int, *, user_id: int | None = None,
                  change_source: ChangeSource = "app", **body: Any) -> dict[str, Any]:
    """Edit a person as a user would in the UI (`body` as a v2 PATCH carries it)."""
    person = data.persons.get(person_id)
    if person is None:
        raise not_found("Person")
    return patch_person(data, person, body,
                        user_id if user_id is not None else data.installer.user_id,
                        change_source)


def _org(data: Any, value: Any) -> int | None:
    if value is None:
        return None
    org_id = expect_int(value, "org_id")
    if org_id not in data.orgs:
        raise bad_request(f"Organization {org_id} not found")
    return org_id
