"""Which companies (or persons) changed in the CRM since a moment: the read behind contact
sync's CRM-side safety net (app.contact_sync.safety_net), for when a webhook was lost.

Each reader yields pages of `Changed` (the company id, its version as the batch reads report
it, and the moment the cursor moves on), oldest change first, so the caller can store its
place after every page and resume there. "Since" is inclusive on both CRMs: re-reading the
newest company of the last pass is harmless (its version says it was seen), where a strict
"after" could lose a company changed in the same millisecond (HubSpot) or second (Pipedrive).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from crm_adapters.limits import CrmLimiter
from domain.dates import to_moment

log = logging.getLogger(__name__)

# HubSpot CRM search (developers.hubspot.com/docs/guides/api/crm/search, "Limitations"): "The
# search endpoints are limited to 10,000 total results for any given query. Attempting to page
# beyond 10,000 will result in a 400 error", and search requests are rate limited to five a
# second per account (platform-facts, HubSpot "Limits"). `limit` is "up to 200 objects"
# (tests/specs/hubspot/companies-v3.json PublicObjectSearchRequest.limit).
SEARCH_CAP = 10_000
SEARCH_PAGE = 200
MODIFIED = "hs_lastmodifieddate"
# Contacts keep their own name for it: "lastmodifieddate" (HubSpot's contacts "Last Modified
# Date"; the v1 recently-updated contacts endpoint is "sorted by lastmodifieddate",
# developers.hubspot.com/docs/methods/contacts/get_recently_updated_contacts). Unverified
# whether a v3 contacts search also accepts hs_lastmodifieddate: Paydeck uses the documented one.
CONTACT_MODIFIED = "lastmodifieddate"
PIPEDRIVE_PAGE = 500  # v2 list `limit`: "maximum 500" (developers.pipedrive.com, API v2)


@dataclass(frozen=True)
class Changed:
    company_id: str
    version: datetime | None  # HubSpot updatedAt / Pipedrive update_time
    modified: datetime  # the cursor's value for this company (hs_lastmodifieddate / update_time)


def _ms(moment: datetime) -> str:
    return str(int(moment.astimezone(timezone.utc).timestamp() * 1000))


def _aware(moment: Any) -> datetime | None:
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return to_moment(moment)


def hubspot_changed(search: Callable[[dict[str, Any]], Any], since: datetime,
                    search_limiter: CrmLimiter | None = None,
                    modified: str = MODIFIED) -> Iterator[list[Changed]]:
    """POST /crm/v3/objects/companies/search (companies-v3.json; contacts: contacts-v3.json
    with `modified` CONTACT_MODIFIED), `modified` GTE `since`, sorted ascending, 200 a page
    by `after`. A query is never paged past the 10,000
    cap: before the page that would cross it, the search starts again from the newest
    modification seen (so any number of changes is read, 10,000 at a time). Search calls also
    take the search window (`search_limiter`, crm_adapters.limits.HUBSPOT_SEARCH)."""
    start = since
    while True:
        after: str | None = None
        read = 0
        newest = start
        while True:
            if search_limiter is not None:
                search_limiter.take()
            body = {"filterGroups": [{"filters": [
                        {"propertyName": modified, "operator": "GTE", "value": _ms(start)}]}],
                    # The search guide sorts by {propertyName, direction}; the vendored spec
                    # types `sorts` as strings (the fake takes both).
                    "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
                    "properties": [modified], "limit": SEARCH_PAGE, "after": after or "0"}
            result = search(body)
            page = [_hubspot_changed(r, start, modified) for r in result.results or []]
            read += len(page)
            if page:
                newest = max(newest, max(c.modified for c in page))
                yield page
            after = _next(result)
            if after is None:
                return
            if read + SEARCH_PAGE > SEARCH_CAP:
                break  # the next page would cross the cap: a new query from `newest`
        if newest <= start:
            # 10,000 companies modified in the same millisecond: a new query would read them
            # again for ever. Stop; the webhooks carried them (Unverified: never seen).
            log.warning("HubSpot search: %s changes at one moment; stopping at the cap", read)
            return
        start = newest


def _next(result: Any) -> str | None:
    paging = getattr(result, "paging", None)
    after = getattr(getattr(paging, "next", None), "after", None)
    return str(after) if after else None


def _hubspot_changed(record: Any, fallback: datetime, modified: str) -> Changed:
    props = record.properties or {}
    moment = _aware(props.get(modified)) or _aware(record.updated_at) or fallback
    return Changed(str(record.id), _aware(record.updated_at), moment)


def pipedrive_changed(list_page: Callable[[dict[str, Any]], dict[str, Any]],
                      since: datetime) -> Iterator[list[Changed]]:
    """GET /api/v2/organizations (or /api/v2/persons) ?updated_since= (RFC 3339; "later than
    or equal to this time") &sort_by=update_time&sort_direction=asc, 500 a page by `cursor`
    (developers.pipedrive.com/docs/api/v1/Organizations#getOrganizations, API v2; client-nodejs
    src/versions/v2/api/persons-api.ts getPersons takes the same parameters)."""
    cursor: str | None = None
    seen: set[str] = set()
    stamp = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    while True:
        params = {"updated_since": stamp, "sort_by": "update_time", "sort_direction": "asc",
                  "limit": PIPEDRIVE_PAGE, **({"cursor": cursor} if cursor else {})}
        body = list_page(params)
        page = []
        for org in body.get("data") or []:
            version = to_moment(org.get("update_time"))
            page.append(Changed(str(org.get("id")), version, version or since))
        if page:
            yield page
        cursor = (body.get("additional_data") or {}).get("next_cursor")
        if not cursor or cursor in seen:
            return
        seen.add(cursor)
