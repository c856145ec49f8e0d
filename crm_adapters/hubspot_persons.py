"""HubSpot contacts (persons) for two-way contact sync: B2C deals are invoiced to a contact,
not a company (app/engine/steps/contacts.py links it with crm_object_type "person").

contacts-v3.json POST /crm/v3/objects/contacts/batch/read and /batch/update (the SDK's
crm.contacts.batch_api), 100 inputs a call like every HubSpot batch endpoint; each result's
`updatedAt` is the record's version. Property names are HubSpot's default contact properties
(knowledge.hubspot.com "HubSpot's default contact properties": firstname, lastname, email,
phone, mobilephone, address, city, state, zip, country; the fake's table in
sandbox/hubspot/schema.py). HubSpot has no whole-name contact property: "name" is read as
"firstname lastname" and never written (app.contact_sync.mapping.PERSON_CRM_READ_ONLY).
Writing needs the crm.objects.contacts.write scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timezone
from typing import Any

from domain.crm import CompanyRecord
from domain.dates import to_moment

BATCH = 100
# PERSON_FIELDS -> HubSpot contact property (the tax number is the admin's `extra` choice).
PERSON_FIELD_PROPERTIES = {"first_name": "firstname", "last_name": "lastname", "email": "email",
                           "phone": "phone", "mobile": "mobilephone", "street": "address",
                           "city": "city", "region": "state", "postal_code": "zip",
                           "country": "country"}


def whole_name(first: str, last: str) -> str:
    return " ".join(x.strip() for x in (first, last) if x and x.strip())


def _aware(moment: Any) -> Any:
    if moment is None or not hasattr(moment, "tzinfo"):
        return to_moment(moment) if isinstance(moment, str) else None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else \
        moment.astimezone(timezone.utc)


class HubSpotPersons:
    """Mixed into HubSpotCrm (which gives `_client` and `_call`)."""

    _client: Any
    _call: Any
    _changed_since: Any

    def persons_changed_since(self, installation: Any, since: Any) -> Any:
        """Pages of contacts modified at or after `since` (crm_adapters.changes, on contacts'
        own `lastmodifieddate`): the person side of the contact sync safety net, through the
        same windows as the companies' search (contacts-v3.json POST
        /crm/v3/objects/contacts/search)."""
        from hubspot.crm.contacts import PublicObjectSearchRequest

        from crm_adapters.changes import CONTACT_MODIFIED

        client = self._client(installation)
        return self._changed_since(installation, "contact search",
                                   client.crm.contacts.search_api, PublicObjectSearchRequest,
                                   since, CONTACT_MODIFIED)

    def fetch_persons(self, installation: Any, person_ids: Sequence[str],
                      extra: Mapping[str, str] | None = None) -> dict[str, CompanyRecord | None]:
        from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

        client = self._client(installation)
        properties = {**PERSON_FIELD_PROPERTIES, **(extra or {})}
        found = self._batch_read(installation, "contacts", client.crm.contacts.batch_api,
                                 (SimplePublicObjectId, BatchReadInputSimplePublicObjectId),
                                 properties, person_ids)
        return {i: None if r is None else CompanyRecord(r.company_id, {
            **r.fields, "name": whole_name(r.fields.get("first_name", ""),
                                           r.fields.get("last_name", ""))}, r.updated_at)
            for i, r in found.items()}

    def update_persons(self, installation: Any, updates: Mapping[str, Mapping[str, str]],
                       extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        """ValueError for a field HubSpot contacts cannot take (the whole name), before any
        call."""
        from hubspot.crm.contacts import (
            BatchInputSimplePublicObjectBatchInput,
            SimplePublicObjectBatchInput,
        )

        properties = {**PERSON_FIELD_PROPERTIES, **(extra or {})}
        client = self._client(installation)
        return self._batch_update(installation, "contacts", client.crm.contacts.batch_api,
                                  (SimplePublicObjectBatchInput,
                                   BatchInputSimplePublicObjectBatchInput),
                                  properties, set(properties), updates)

    def _batch_read(self, installation: Any, noun: str, batch_api: Any, models: Any,
                    properties: Mapping[str, str],
                    record_ids: Sequence[str]) -> dict[str, CompanyRecord | None]:
        """POST /crm/v3/objects/{noun}/batch/read, BATCH ids a call (companies-v3.json,
        contacts-v3.json); each result's `updatedAt` is the record's version. An id HubSpot
        does not return is gone (None). `models`: the SDK's (id, batch read input) classes."""
        one, batch = models
        found: dict[str, CompanyRecord | None] = {i: None for i in dict.fromkeys(record_ids)}
        unique = list(found)
        for start in range(0, len(unique), BATCH):
            body = batch(inputs=[one(id=i) for i in unique[start:start + BATCH]],
                         properties=list(dict.fromkeys(properties.values())),
                         properties_with_history=[])
            result = self._call(installation, noun, batch_api.read, body)
            for record in result.results or []:
                values = record.properties or {}
                found[str(record.id)] = CompanyRecord(
                    str(record.id), {field: values[name] or "" for field, name in properties.items()
                                     if name in values}, _aware(record.updated_at))
        return found

    def _batch_update(self, installation: Any, noun: str, batch_api: Any, models: Any,
                      properties: Mapping[str, str], writable: set[str],
                      updates: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        """POST /crm/v3/objects/{noun}/batch/update, BATCH inputs a call (companies-v3.json,
        contacts-v3.json); the version (`updatedAt`) of each record written. ValueError for a
        field outside `writable`, before any call. `models`: the SDK's (input, batch input)
        classes for the object type."""
        one, batch = models
        unknown = {f for fields in updates.values() for f in fields} - writable
        if unknown:
            raise ValueError(f"HubSpot {noun} have no writable field for {sorted(unknown)}")
        inputs = [one(id=record_id, properties={properties[f]: v for f, v in fields.items()})
                  for record_id, fields in updates.items() if fields]
        versions: dict[str, Any] = {}
        for start in range(0, len(inputs), BATCH):
            result = self._call(installation, f"{noun} updates", batch_api.update,
                                batch(inputs=inputs[start:start + BATCH]))
            versions.update({str(c.id): _aware(c.updated_at) for c in result.results or []})
        return versions
