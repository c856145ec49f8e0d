"""Xero contact groups for contact sync: the organisation's groups for the settings picker
(GET /ContactGroups, cached briefly), and who is in the chosen groups for a sync pass.

Membership is read from the groups, not from the contacts: the spec gives a group's
`Contacts` on GET /ContactGroups/{ContactGroupID} ("Returned on GETs when the ContactGroupID
is supplied in the URL", tests/specs/xero/xero_accounting.yaml ContactGroup.Contacts), while
a contact's own `ContactGroups` shows empty in the spec's GET /Contacts and GET
/Contacts/{id} examples (Unverified whether Xero fills it on a list read: not relied on). So
a pass reads each chosen group once (one call a group) and scopes every contact by it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from app.contact_sync.scope import ContactScope
from app.redis_conn import get_redis
from xero.client import ContactGroupInfo

log = logging.getLogger(__name__)
CACHE_SECONDS = 60  # the picker's list: a settings page reload within a minute costs no call
_KEY = "paydeck:xero-contact-groups:{}"


def organisation_groups(connection_id: int, client: Any, *,
                        refresh: bool = False) -> list[ContactGroupInfo]:
    """The organisation's active contact groups, by name (cached CACHE_SECONDS). Raises what
    the Xero client raises when Xero cannot be read."""
    redis, key = get_redis(), _KEY.format(connection_id)
    cached = None if refresh else redis.get(key)
    if cached:
        return [ContactGroupInfo(**g) for g in json.loads(cached)]
    groups = client.contact_groups()
    redis.set(key, json.dumps([g.__dict__ for g in groups]), ex=CACHE_SECONDS)
    return groups


def group_members(client: Any, group_ids: Collection[str]) -> dict[str, frozenset[str]]:
    """{group id: its ContactIDs} for the chosen groups, one GET /ContactGroups/{id} each; a
    group Xero no longer has (deleted) has no members."""
    members: dict[str, frozenset[str]] = {}
    for group_id in dict.fromkeys(group_ids):
        found = client.contact_group_members(group_id)
        if found is None:
            log.info("contact group %s is gone from Xero: no contact syncs through it", group_id)
        members[group_id] = found or frozenset()
    return members


def scoped(scope: ContactScope, contact_id: str,
           members: Mapping[str, frozenset[str]]) -> ContactScope:
    """The contact's scope with its groups as the groups themselves list them."""
    return replace(scope, group_ids=frozenset(g for g, ids in members.items() if contact_id in ids))
