"""Xero's limits: field lengths on the elements Paydeck writes (and how Xero reports them),
and the call rates per tenant and per app.

Limits come from the vendored spec's ``maxLength`` (tests/specs/xero/xero_accounting.yaml)
wherever it has one; the others are cited one by one. Note xero-python copies the spec's
limits into its model setters (ValueError before anything is sent), so the fake is the
only check for fields the spec leaves unbounded (line Description, invoice Reference) and
for raw HTTP callers.

Known disagreement: Xero staff confirmed real Xero does not enforce the 255 limit on
Contact Name (XeroAPI/xero-python#70, 2022: "it seems Xero is not restricting the
character length for contact name"), yet the SDK refuses such a name both ways - even
reading one back. The fake enforces the spec: data Paydeck writes must fit the SDK.

Message wording: Xero's observed form for an over-long field is "Account Code is too
long. Maximum of 10 characters allowed" (XeroAPI/Xero-Net#285); the same form is used
for every field (unverified for fields other than Account Code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.kit.clock import Clock
from sandbox.kit.state import ScopedState
from sandbox.kit.windows import Admission, FixedWindow

SPEC = "spec maxLength"


def _spec(**limits: int) -> dict[str, tuple[int, str]]:
    """Limits that are the spec's own ``maxLength`` for each field."""
    return {name: (limit, SPEC) for name, limit in limits.items()}


INVOICE_LIMITS: dict[str, tuple[int, str]] = {
    "InvoiceNumber": (255, SPEC),  # Invoice.InvoiceNumber "(max length = 255)"
    # No maxLength in the spec or on Xero's invoices page; "(max length = 255)" per
    # suchimitha.github.io/Xero-API InvoiceOperations and the issue brief (unverified).
    "Reference": (255, "third-party doc (unverified)"),
}
LINE_LIMITS: dict[str, tuple[int, str]] = {
    # The spec puts no maxLength on LineItem.Description; 4,000 is Item.Description's
    # (spec maxLength 4000, and an item's description fills the line's) and the limit
    # shared/notes/platform-facts.md records for descriptions.
    "Description": (4000, "spec Item.Description maxLength; platform-facts"),
}
TRACKING_LIMITS: dict[str, tuple[int, str]] = {
    "Name": (100, SPEC),  # LineItemTracking.Name
    "Option": (100, "spec TrackingOption.Name maxLength"),
}
CONTACT_LIMITS = _spec(Name=255, FirstName=255, LastName=255, EmailAddress=255,
                       ContactNumber=50, AccountNumber=50, CompanyNumber=50, TaxNumber=50)
PHONE_LIMITS = _spec(PhoneNumber=50, PhoneAreaCode=10, PhoneCountryCode=20)
ADDRESS_LIMITS = _spec(AddressLine1=500, AddressLine2=500, AddressLine3=500, AddressLine4=500,
                       City=255, Region=255, PostalCode=50, Country=50, AttentionTo=255)


def too_long(label: str, limit: int) -> str:
    """Xero's message for an over-long field (XeroAPI/Xero-Net#285 wording)."""
    return f"{label} is too long. Maximum of {limit} characters allowed"


def length_problems(element: Mapping[str, Any], limits: Mapping[str, tuple[int, str]],
                    prefix: str = "") -> list[str]:
    """One message per string field of `element` longer than its limit."""
    problems: list[str] = []
    for key, (limit, _source) in limits.items():
        value = element.get(key)
        if isinstance(value, str) and len(value) > limit:
            problems.append(too_long(f"{prefix}{key}", limit))
    return problems


def nested_length_problems(entries: Iterable[Any], limits: Mapping[str, tuple[int, str]],
                           prefix: str) -> list[str]:
    """`length_problems` over a list of sub-elements (Phones, Addresses, Tracking)."""
    problems: list[str] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            problems.extend(length_problems(entry, limits, prefix))
    return problems


# ----- call rates ----------------------------------------------------------------------

RateLimitProblem = Literal["minute", "day", "concurrent", "appminute"]
MINUTE_S = 60.0
DAY_S = 86_400.0


@dataclass
class RateLimits:
    """Xero's API limits (platform-facts: Limits). Mutable: tests may lower them live."""

    per_minute: int = 60
    per_day: int = 5000
    concurrent: int = 5
    app_per_minute: int = 10_000


@dataclass
class _TenantUsage:
    # Fixed windows that start at their first call, so resets are tenant-specific.
    minute: FixedWindow = field(default_factory=lambda: FixedWindow(MINUTE_S))
    day: FixedWindow = field(default_factory=lambda: FixedWindow(DAY_S))
    in_flight: int = 0


class RateLimiter:
    """Per-tenant minute/day/concurrent windows and the app-wide minute window."""

    def __init__(self, limits: RateLimits, clock: Clock, lock: Any) -> None:
        self.limits = limits
        self._clock = clock
        self._tenants: ScopedState[str, _TenantUsage] = ScopedState(lock, lambda _: _TenantUsage())
        self._app_minute = FixedWindow(MINUTE_S)

    def reset(self) -> None:
        self._tenants.reset()
        self._app_minute = FixedWindow(MINUTE_S)

    def admit(self, tenant_id: str) -> Admission:
        """Count a call in (caller holds the lock); a refused call is not counted."""
        now = self._clock.now()
        usage = self._tenants[tenant_id]
        windows = [window for _, window, _, _ in self._windows(usage)]
        for window in windows:
            window.roll(now)
        refused = self._refusal(usage, now)
        if refused is not None:
            return Admission(self._remaining(usage), *refused)
        for window in windows:
            window.count += 1
        usage.in_flight += 1
        return Admission(self._remaining(usage))

    def release(self, tenant_id: str) -> None:
        usage = self._tenants.get(tenant_id)  # None: `reset` forgot it meanwhile
        if usage is not None:
            usage.in_flight -= 1

    def remaining(self, tenant_id: str) -> dict[str, str]:
        """The ``X-*Limit-Remaining`` headers for the tenant as things stand."""
        return self._remaining(self._tenants[tenant_id])

    def _windows(self, usage: _TenantUsage) -> list[tuple[str, FixedWindow, int, str]]:
        """(X-Rate-Limit-Problem, window, limit, X-*-Remaining header), checked in this order."""
        limits = self.limits
        return [("day", usage.day, limits.per_day, "X-DayLimit-Remaining"),
                ("minute", usage.minute, limits.per_minute, "X-MinLimit-Remaining"),
                ("appminute", self._app_minute, limits.app_per_minute, "X-AppMinLimit-Remaining")]

    def _refusal(self, usage: _TenantUsage, now: float) -> tuple[str, int | None] | None:
        for problem, window, limit, _ in self._windows(usage):
            if window.count >= limit:
                return problem, window.retry_after(now)
        return ("concurrent", None) if usage.in_flight >= self.limits.concurrent else None

    def _remaining(self, usage: _TenantUsage) -> dict[str, str]:
        return {header: str(max(0, limit - window.count))
                for _, window, limit, header in self._windows(usage)}
