"""Types every CRM adapter shares."""

from __future__ import annotations

from dataclasses import dataclass


class CrmError(Exception):
    """The CRM refused or failed a call."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AccountIdentity:
    """Which CRM account a fresh OAuth token belongs to."""

    account_id: str
    account_name: str
    user: str
    api_domain: str
