"""What `xero/` reads of Paydeck's settings, as one frozen value (app/connections.py builds it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class XeroConfig:
    api_base: str  # the Accounting API and GET/DELETE /connections
    identity_base: str  # the token and revocation endpoints
    client_id: str
    client_secret: str
    timeout: float  # seconds, every call
