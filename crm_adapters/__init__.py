"""One module per CRM behind a small interface; the registry is an explicit dict."""

from __future__ import annotations

from collections.abc import Callable

from app.settings import Settings
from crm_adapters import hubspot, pipedrive
from crm_adapters.base import AccountIdentity, DealSource

# What the install flow needs of each CRM: who is this token for?
IDENTIFY: dict[str, Callable[[Settings, dict[str, object]], AccountIdentity]] = {
    "hubspot": hubspot.identify,
    "pipedrive": pipedrive.identify,
}

# Deal reading and writeback per CRM. HubSpot and Pipedrive register here with the CRM adapter
# issue (#4); until then the engine reports "no deal adapter" as a review item.
DEAL_SOURCES: dict[str, DealSource] = {}


class NoDealSource(LookupError):
    """This CRM cannot be read yet."""


def deal_source(crm: str) -> DealSource:
    try:
        return DEAL_SOURCES[crm]
    except KeyError:
        raise NoDealSource(f"no deal adapter for {crm}") from None
