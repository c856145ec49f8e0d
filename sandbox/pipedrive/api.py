"""The company API, installed on every `FakePipedrive` as ``fake.api``, on the kit's pipeline.

Served on the fake's root, which is the ``api_domain`` the token response returns, so a
client calls ``{api_domain}/api/v2/deals/1`` exactly as in production. Each call runs:
bearer check -> injected 429 fault or token-based rate limits (charged) -> other fault ->
scope check -> handler (under the fake's lock) -> limit headers, call log, webhook delivery.
What is not verified against real Pipedrive is marked "unverified" where it is modelled.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from werkzeug.wrappers import Request, Response

from sandbox.kit.calls import Call
from sandbox.kit.clock import Clock
from sandbox.kit.faults import Fault, FaultInjector
from sandbox.kit.grants import AccessToken, Grant
from sandbox.kit.jsonio import Invalid
from sandbox.kit.service import Exchange, VendorApi
from sandbox.kit.state import ScopedState
from sandbox.kit.windows import Admission, FixedWindow, RollingWindows
import sandbox.pipedrive.persons as persons
from sandbox.pipedrive.company import CompanyData, Installer
from sandbox.pipedrive.parse import INVALID, SHAPE, bad_request, too_many_requests
from sandbox.pipedrive.handlers import ROUTES, Ctx
from sandbox.pipedrive.records import Activity, Deal, Organization
from sandbox.pipedrive.webhooks import WEBHOOK_TIMEOUT_S, WebhookDispatcher

FaultKind = Literal["5xx", "429", "slow"]
FAULT_KINDS: tuple[FaultKind, ...] = ("5xx", "429", "slow")
T = TypeVar("T")
Ex = Exchange[Grant[Any]]


class Host(Installer, Protocol):
    """What the API needs of the `FakePipedrive` it is mounted on (its OAuth server)."""

    lock: threading.RLock
    clock: Clock
    client_id: str
    company_id: int
    company_domain: str

    def require_bearer(self, request: Request) -> AccessToken[Any]: ...

    def route(self, rule: str, handler: Callable[..., Response], methods: Any = ...) -> None: ...


DAY_S = 86_400.0
DAILY_BUDGET_HEADER = "x-daily-requests-left"
"""Remaining daily tokens. Unverified: the name is the pre-token-era daily header; the
token-based docs we have do not name a daily-budget header."""


@dataclass
class RateLimits:
    """Token-based limits (platform-facts; core-api-concepts-rate-limiting; each route's cost
    is in handlers.ROUTES), live-tunable. `daily_budget` is per company and resets at 00:00
    UTC; the burst limit is per user (a user's OAuth tokens share it) over a rolling
    `burst_window`. The docs state it in requests; `burst_unit="tokens"` counts tokens."""

    daily_budget: int = 30_000
    burst_limit: int = 80
    burst_window: float = 2.0
    burst_unit: Literal["requests", "tokens"] = "requests"


class RateLimiter:
    """Daily token spend per company and rolling burst windows per (company, user)."""

    def __init__(self, limits: RateLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._daily: dict[int, FixedWindow] = {}
        self._burst: RollingWindows[tuple[int, int]] = RollingWindows(clock)

    def admit(self, company_id: int, user_id: int, cost: int) -> Admission:
        """Charge `cost` tokens, or refuse ("daily", "burst") without charging (lock held)."""
        limits, now = self.limits, self._clock.now()
        day = self._day(company_id)
        weight = cost if limits.burst_unit == "tokens" else 1
        if day.count + cost > limits.daily_budget:
            return Admission(self.headers(company_id, user_id), "daily", day.retry_after(now))
        key = (company_id, user_id)
        if not self._burst.admit(key, limits.burst_window, limits.burst_limit, weight):
            headers = self.headers(company_id, user_id)
            return Admission(headers, "burst", int(headers["x-ratelimit-reset"]))
        day.count += cost
        return Admission(self.headers(company_id, user_id))

    def headers(self, company_id: int, user_id: int) -> dict[str, str]:
        limits = self.limits
        burst = self._burst.state((company_id, user_id), limits.burst_window, limits.burst_limit)
        daily_left = max(0, limits.daily_budget - self.spent_today(company_id))
        return {"x-ratelimit-limit": str(burst.limit),
                "x-ratelimit-remaining": str(burst.remaining),
                "x-ratelimit-reset": str(burst.reset_in), DAILY_BUDGET_HEADER: str(daily_left)}

    def spent_today(self, company_id: int) -> int:
        return self._day(company_id).count

    def _day(self, company_id: int) -> FixedWindow:
        day = self._daily.setdefault(company_id, FixedWindow(DAY_S, aligned=True))
        day.roll(self._clock.now())
        return day


def path_matches(prefix: str, path: str) -> bool:
    """Prefix match; a prefix without ``/api/vN`` matches every API version."""
    if path.startswith(prefix):
        return True
    short = re.match(r"^/api/v\d+(/.*)?$", path)  # /api/v2/deals/1 -> /deals/1
    if short is None or prefix.startswith("/api/"):
        return False
    return (short.group(1) or "/").startswith(prefix)


@dataclass(frozen=True)
class ApiCall(Call):
    """One API call; `scope` is the company, `tokens` what the call cost (0 when refused)."""

    user_id: int | None = None
    tokens: int = 0


def _on_company(change: Callable[..., T]) -> Callable[..., T]:
    """`change`, a `CompanyData` method, as a helper of the API: run under the lock on the
    fake's current company or on `company_id=`, then wake webhook delivery."""

    def helper(api: PipedriveApi, *args: Any, company_id: int | None = None, **kwargs: Any) -> T:
        with api.lock:
            result = change(api.company(company_id), *args, **kwargs)
        api.webhooks.wake()
        return result

    helper.__name__, helper.__doc__ = change.__name__, change.__doc__
    return helper


class PipedriveApi(VendorApi[Grant[Any], ApiCall]):
    """The company API and its data per company. The seeding helpers (the "UI": changes
    have change_source "app") are `CompanyData`'s methods of the same name."""

    call_type = ApiCall

    def __init__(self, fake: Host, *, limits: RateLimits | None = None,
                 webhook_timeout: float = WEBHOOK_TIMEOUT_S) -> None:
        faults = FaultInjector(FAULT_KINDS, path_match=path_matches)
        super().__init__(fake, fake.clock, faults)  # type: ignore[arg-type]
        self._fake = fake
        self.limiter = RateLimiter(limits or RateLimits(), fake.clock)
        self.webhooks = WebhookDispatcher(fake.lock, fake.clock)
        self.webhooks.timeout = webhook_timeout
        self._companies: ScopedState[int, CompanyData] = ScopedState(fake.lock, lambda cid: (
            CompanyData(cid, fake.company_domain, fake.clock, fake, self.webhooks.emit)))
        self.mount(ROUTES)

    def authenticate(self, ex: Ex) -> Grant[Any]:
        return self._fake.require_bearer(ex.request).grant

    def scope_of(self, ex: Ex) -> int:
        return int(_who(ex).company_id)

    def gate(self, ex: Ex) -> None:
        """Injected 429 (free), else the limits (charged), else any other fault."""
        who = _who(ex)
        ex.log["user_id"] = who.user_id
        fault = self.faults.peek(ex.request.method, ex.request.path, ex.scope)
        if fault is None or fault.kind != "429":
            cost = ex.route.policy.cost
            ex.admission = self.limiter.admit(who.company_id, who.user_id, cost)
            if not ex.admission.allowed:
                return
            ex.log["tokens"] = cost
        if fault is not None:
            self.faults.use(fault)
            ex.fault = fault

    def render_refusal(self, ex: Ex) -> Response:
        no = ex.admission
        return too_many_requests(no.refused == "daily", no.headers, no.retry_after or 1)

    def render_fault(self, ex: Ex, fault: Fault) -> Response | None:
        if fault.kind == "429":
            headers = self._headers(ex)
            headers["x-ratelimit-remaining"] = "0"
            return too_many_requests(False, headers, int(headers["x-ratelimit-reset"]))
        if fault.kind == "5xx":
            return SHAPE.response(fault.status or 500, code="ERR_INTERNAL",
                                  message="injected fault: the call was not processed")
        return None  # "slow": the kit sleeps `delay` real seconds, then the call goes on

    def render_invalid(self, ex: Ex, err: Invalid) -> Response:
        return bad_request(err.message(INVALID)).response

    def handle(self, ex: Ex) -> Response:
        assert ex.caller is not None
        if not set(ex.caller.scopes) & set(ex.route.policy.scopes):
            return SHAPE.response(403, message="Scope and URL mismatch", code="ERR_SCOPE_MISMATCH")
        who = _who(ex)
        ctx = Ctx(ex.request, self._companies[who.company_id], who.user_id,
                  self._fake.client_id, self.webhooks)
        return ex.route.handler(ctx, **ex.path_values)

    def rate_headers(self, ex: Ex) -> dict[str, str]:
        """Fresh limit headers on every admitted call (a 429 carries its own)."""
        admitted = ex.fault_kind != "429" and ex.admission.allowed
        return self._headers(ex) if admitted else {}

    def after(self, ex: Ex, response: Response) -> None:
        self.webhooks.wake()

    def _headers(self, ex: Ex) -> dict[str, str]:
        with self.lock:
            return self.limiter.headers(_who(ex).company_id, _who(ex).user_id)

    def company(self, company_id: int | None = None) -> CompanyData:
        """A company's data (default: the fake's current company), created on first use."""
        return self._companies[self._fake.company_id if company_id is None else company_id]

    def deal(self, deal_id: int, *, company_id: int | None = None) -> Deal:
        """A snapshot of a deal (deleted ones included)."""
        return self._snapshot(company_id, "deals", deal_id, "deal")

    def org(self, org_id: int, *, company_id: int | None = None) -> Organization:
        return self._snapshot(company_id, "orgs", org_id, "organization")

    def person(self, person_id: int, *, company_id: int | None = None) -> Any:
        return self._snapshot(company_id, "persons", person_id, "person")

    def activities(self, *, company_id: int | None = None) -> list[Activity]:
        with self.lock:
            return copy.deepcopy(list(self.company(company_id).activities.values()))

    def _snapshot(self, company_id: int | None, table: str, key: int, what: str) -> Any:
        with self.lock:
            record = getattr(self.company(company_id), table).get(key)
            if record is None:
                raise KeyError(f"unknown {what} {key}")
            return copy.deepcopy(record)

    def tokens_spent(self, company_id: int | None = None) -> int:
        """Tokens the company has spent today (UTC, fake clock)."""
        cid = self._fake.company_id if company_id is None else company_id
        with self.lock:
            return self.limiter.spent_today(cid)

    @property
    def calls(self) -> list[ApiCall]:
        return self.call_log.calls

    def clear_calls(self) -> None:
        self.call_log.clear()

    def count_calls(self, method: str | None = None, path_prefix: str | None = None,
                    status: int | None = None, company_id: int | None = None) -> int:
        """Calls matching every filter given; `path_prefix` may omit ``/api/v2``."""
        return self.call_log.count(method, path_prefix, status, company_id)


for _helper in ("add_pipeline", "add_stage", "stage_id", "add_deal_field", "deal_field_option",
                "add_org_field", "add_org", "update_org", "add_person", "add_product", "add_user",
                "add_deal", "update_deal", "move_deal", "delete_deal", "add_deal_product",
                "update_deal_product", "rename_org", "delete_org", "merge_orgs"):
    setattr(PipedriveApi, _helper, _on_company(getattr(CompanyData, _helper)))
# Persons (sandbox.pipedrive.persons): a user's edit, and a custom person field.
PipedriveApi.update_person = _on_company(persons.update_person)  # type: ignore[attr-defined]
PipedriveApi.add_person_field = _on_company(persons.add_person_field)  # type: ignore[attr-defined]


def _who(ex: Ex) -> Any:
    """The caller's `PipedriveInstall` (its user and company)."""
    assert ex.caller is not None  # authenticated before any other hook runs
    return ex.caller.consent
