"""Pipedrive persons for two-way contact sync (B2C deals' contacts; the engine links them
with crm_object_type "person": app/engine/steps/contacts.py).

API v2 (pipedrive/client-nodejs src/versions/v2/api/persons-api.ts): GET /api/v2/persons?ids=
(a v2 list, up to 100 ids, 10 tokens) and PATCH /api/v2/persons/{id} (updatePerson, body
AddPersonRequest: name, owner_id, org_id, emails, phones, visible_to, label_ids,
marketing_status, custom_fields; scope contacts:full). A person's `emails` and `phones` are
arrays of {value, primary, label} (add-person-request-emails-inner.ts); `update_time` is the
version. first_name / last_name appear in answers but not in the update body, so they are
read, never written. Unverified: whether a PATCH's `emails` / `phones` replace the whole
array (taken so: the entries Paydeck does not change are sent back as they are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crm_adapters.base import CrmError
from domain.crm import CompanyRecord
from domain.dates import to_moment

MOBILE = "mobile"  # the label Pipedrive's UI gives a mobile number (unverified: a free label)


def _entries(values: Any) -> list[dict[str, Any]]:
    return [dict(v) for v in values or [] if isinstance(v, dict)]


def _primary(entries: list[dict[str, Any]], mobile: bool | None = None) -> dict[str, Any] | None:
    """The primary entry (else the first) among those with / without the mobile label."""
    pool = [e for e in entries if mobile is None or (e.get("label") == MOBILE) == mobile]
    return next((e for e in pool if e.get("primary")), pool[0] if pool else None)


def person_fields(person: Mapping[str, Any], extra: Mapping[str, str]) -> dict[str, str]:
    emails, phones = _entries(person.get("emails")), _entries(person.get("phones"))
    email, phone, mobile = _primary(emails), _primary(phones, False), _primary(phones, True)
    fields = {"name": str(person.get("name") or ""),
              "first_name": str(person.get("first_name") or ""),
              "last_name": str(person.get("last_name") or ""),
              "email": str(email["value"] or "") if email else "",
              "phone": str(phone["value"] or "") if phone else "",
              "mobile": str(mobile["value"] or "") if mobile else ""}
    custom = person.get("custom_fields") or {}
    fields.update({k: str(custom.get(key) or "") for k, key in extra.items() if key in custom})
    return fields


def _with(entries: list[dict[str, Any]], value: str, mobile: bool | None) -> list[dict[str, Any]]:
    """The list with the entry Paydeck syncs set to `value` (added if there is none)."""
    out = [dict(e) for e in entries]
    current = _primary(out, mobile)
    if current is not None:
        current["value"] = value
    else:
        out.append({"value": value, "primary": not out,
                    "label": MOBILE if mobile else "work"})
    return out


def _path(person_id: str) -> str:
    if not person_id.isdigit():
        raise CrmError(f"{person_id!r} is not a Pipedrive person id", 404)
    return f"/api/v2/persons/{person_id}"


class PipedrivePersons:
    """Mixed into PipedriveCrm (which gives `_request`, `_send` and `_by_ids`)."""

    _request: Any
    _send: Any
    _by_ids: Any

    def persons_changed_since(self, installation: Any, since: Any) -> Any:
        """Pages of persons updated at or after `since` (crm_adapters.changes): the person
        side of the contact sync safety net, 10 tokens a page as every v2 list."""
        from crm_adapters.changes import pipedrive_changed

        return pipedrive_changed(
            lambda params: self._send(installation, "GET", "/api/v2/persons", 10,
                                      params=params), since)

    def fetch_persons(self, installation: Any, person_ids: Sequence[str],
                      extra: Mapping[str, str] | None = None) -> dict[str, CompanyRecord | None]:
        wanted = list(dict.fromkeys(person_ids))
        found_rows = self._by_ids(installation, "persons", {i for i in wanted if i.isdigit()})
        found: dict[str, CompanyRecord | None] = {}
        for person_id in wanted:
            row = found_rows.get(person_id)
            found[person_id] = None if row is None else CompanyRecord(
                person_id, person_fields(row, extra or {}), to_moment(row.get("update_time")))
        return found

    def update_persons(self, installation: Any, updates: Mapping[str, Mapping[str, str]],
                       extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One PATCH each (v2 has no batch update of persons). ValueError for first/last
        name (Pipedrive derives them from `name`), before any call."""
        extra = dict(extra or {})
        writable = {"name", "email", "phone", "mobile", *extra}
        unknown = {f for fields in updates.values() for f in fields} - writable
        if unknown:
            raise ValueError(f"Pipedrive persons have no writable field for {sorted(unknown)}")
        versions: dict[str, Any] = {}
        for person_id, fields in updates.items():
            if not fields:
                continue
            body: dict[str, Any] = {"name": fields["name"]} if "name" in fields else {}
            custom = {key: fields[k] for k, key in extra.items() if k in fields}
            if custom:
                body["custom_fields"] = custom
            if {"email", "phone", "mobile"} & set(fields):
                current = self._request(installation, "GET", _path(person_id), 1) or {}
                if "email" in fields:
                    body["emails"] = _with(_entries(current.get("emails")), fields["email"], None)
                phones = _entries(current.get("phones"))
                for key, mobile in (("phone", False), ("mobile", True)):
                    if key in fields:
                        phones = _with(phones, fields[key], mobile)
                if {"phone", "mobile"} & set(fields):
                    body["phones"] = phones
            answer = self._request(installation, "PATCH", _path(person_id), 5, json=body)
            versions[person_id] = to_moment((answer or {}).get("update_time"))
        return versions
