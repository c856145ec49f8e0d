"""Which CRM changes a person made: the webhook's word, kept for the pass that reads the record.

Loop prevention takes a CRM record whose version is the one Paydeck's own write produced
(ContactLink.crm_written_version) for Paydeck's echo. Pipedrive's versions have whole seconds,
so a user's edit in the same second as Paydeck's write has that version too; the webhook
for it says it came from the web app (meta.change_source "app", not "api"). The webhook notes
it here, and the pass (app.contact_sync.reconcile) treats a record changed by a person at
exactly its current version as changed, not as an echo.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from app.redis_conn import get_redis
from domain.dates import as_utc

# Kept a day: the pass that reads the record runs within seconds of the webhook.
_USER_CHANGE = "paydeck:crm-user-change:{}:{}:{}"
USER_CHANGE_SECONDS = 86_400


def note_user_versions(installation_id: int, object_type: str,
                       versions: Mapping[str, datetime | None]) -> None:
    """Remember that a person (the CRM's web app, not an API client) changed these records,
    at these versions. Pipedrive's update_time has whole seconds, so a user's edit in the
    same second as Paydeck's own write carries the very version Paydeck stored as its own
    (crm_written_version): without this note the pass takes the edit for Paydeck's echo and
    the edit never reaches Xero."""
    if not any(v is not None for v in versions.values()):
        return
    pipe = get_redis().pipeline()
    for record_id, version in versions.items():
        if version is not None:
            pipe.set(_USER_CHANGE.format(installation_id, object_type, record_id),
                     as_utc(version).isoformat(), ex=USER_CHANGE_SECONDS)
    pipe.execute()


def changed_by_users(installation_id: int, object_type: str,
                     versions: Mapping[str, datetime | None]) -> set[str]:
    """The records among `versions` ({id: its current version}) a webhook said a person
    changed at exactly that version (one Redis round trip)."""
    wanted = [(record_id, as_utc(v).isoformat()) for record_id, v in versions.items()
              if v is not None]
    if not wanted:
        return set()
    noted = get_redis().mget([_USER_CHANGE.format(installation_id, object_type, record_id)
                              for record_id, _ in wanted])
    return {record_id for (record_id, stamp), value in zip(wanted, noted)
            if (value.decode() if isinstance(value, bytes) else value) == stamp}
