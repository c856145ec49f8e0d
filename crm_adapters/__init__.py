"""One module per CRM behind a small interface; the registry is an explicit dict."""

from __future__ import annotations

from collections.abc import Callable

from app.settings import Settings
from crm_adapters import hubspot, pipedrive
from crm_adapters.base import AccountIdentity

# What the install flow needs of each CRM: who is this token for?
IDENTIFY: dict[str, Callable[[Settings, dict[str, object]], AccountIdentity]] = {
    "hubspot": hubspot.identify,
    "pipedrive": pipedrive.identify,
}
