"""Xero's reference data (accounts, tax rates, items, currencies, terms, timezone), cached an
hour per installation in Redis, and dropped when the admin's settings change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from app.models import Installation, InstallationSettings, ProductMapping, TaxMapping, XeroConnection
from app.redis_conn import get_redis
from xero.client import XeroClient
from xero.reference import ReferenceData

REFERENCE_TTL = 3600


def reference_data(installation: Installation, connection: XeroConnection,
                   client: XeroClient) -> ReferenceData:
    """The organisation's accounts, tax rates, items, currencies and terms, cached an hour.
    The cache names the tenant it came from: after a reconnect to another organisation it is
    not used."""
    key, tenant = _reference_key(installation.id), connection.tenant_id or ""
    cached_tenant, cached = get_redis().hmget(key, ["tenant", "data"])
    if cached and (cached_tenant or b"").decode() == tenant:
        ref = ReferenceData.from_json(cached)
        if ref.timezone:  # a copy cached before Paydeck read Organisation.Timezone is stale
            return ref
    ref = client.reference_data()
    with get_redis().pipeline() as pipe:
        pipe.delete(key).hset(key, mapping={"tenant": tenant, "data": ref.to_json()})
        pipe.expire(key, REFERENCE_TTL).execute()
    return ref


def cached_reference_data(installation_id: int, tenant_id: str | None) -> ReferenceData | None:
    """The cached copy only (no Xero call: for pages that read nothing live), if it is this
    organisation's; None otherwise."""
    cached_tenant, cached = get_redis().hmget(_reference_key(installation_id), ["tenant", "data"])
    if not cached or (cached_tenant or b"").decode() != (tenant_id or ""):
        return None
    return ReferenceData.from_json(cached)


def cached_reference(installation_id: int) -> ReferenceData | None:
    """The copy `reference_data` keeps, if any (no Xero call): what pages read of the
    organisation (its country and timezone) to format in."""
    cached = get_redis().hget(_reference_key(installation_id), "data")
    try:
        return ReferenceData.from_json(cached) if cached else None
    except (ValueError, KeyError, TypeError):
        return None


def forget_reference_data(installation_id: int) -> None:
    """Drop the cached accounts/tax rates/items (settings changed, or Xero said they moved).
    One known key per installation: no scan of Redis's keyspace on this hot path."""
    get_redis().delete(_reference_key(installation_id))


def _reference_key(installation_id: int) -> str:
    return f"paydeck:xero-ref:{installation_id}"


# --- the cached reference data follows the admin's settings ------------------------------------

_SETTINGS_MODELS = (InstallationSettings, ProductMapping, TaxMapping)


def note_settings_change(session: Session, flush_context: object, instances: object) -> None:
    """Before a flush: remember which installations' settings rows change."""
    changed = {o.installation_id for o in (*session.new, *session.dirty, *session.deleted)
               if isinstance(o, _SETTINGS_MODELS)}
    if changed:
        session.info.setdefault("paydeck_settings_changed", set()).update(changed)


def forget_after_settings_change(session: Session) -> None:
    """New mappings are checked against Xero as it is now (the admin may just have added a
    tax rate there), not against an hour-old copy."""
    for installation_id in session.info.pop("paydeck_settings_changed", set()):
        forget_reference_data(installation_id)


# Registered by create_app (never at import): (target, event, listener).
SETTINGS_LISTENERS: tuple[tuple[Any, str, Callable[..., None]], ...] = (
    (Session, "before_flush", note_settings_change),
    (Session, "after_commit", forget_after_settings_change),
)
