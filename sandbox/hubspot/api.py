"""HubSpot's CRM API on the kit's request pipeline, served on the fake's root, so
hubspot-api-client 12.x works against it unchanged: ``HubSpot(access_token=token,
host=server.url)`` (see tests/sandbox/test_hubspot_crm.py).

Each call: bearer token (its portal) -> HubSpot's limits -> injected fault -> handler under
the fake's lock (scope check first) -> rate-limit headers, call log. The developer
webhook-settings API (``/webhooks/v3/{appId}/...``) takes ``hapikey`` instead, and no
limits or faults.
"""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Hashable
from dataclasses import dataclass

from werkzeug.wrappers import Response

from sandbox.hubspot.errors import (
    ValidationFailed, fail, hubspot_error, invalid_input, invalid_properties, rate_limited,
)
from sandbox.hubspot.handlers import ROUTES as RECORD_ROUTES, Ctx
from sandbox.hubspot.metadata import ROUTES as METADATA_ROUTES
from sandbox.hubspot.oauth import HubSpotOAuth
from sandbox.hubspot.schema import JsonObject
from sandbox.hubspot.developer import DEVELOPER, ROUTES as DEVELOPER_ROUTES
from sandbox.hubspot.state import HubSpotInstall, PortalCrm
from sandbox.hubspot.webhooks import WebhookHub
from sandbox.kit.calls import Call
from sandbox.kit.faults import Fault, FaultInjector
from sandbox.kit.grants import AccessToken
from sandbox.kit.jsonio import Invalid
from sandbox.kit.service import Exchange, VendorApi
from sandbox.kit.state import ScopedState
from sandbox.kit.windows import Admission, RollingWindows

DEFAULT_ASSOCIATION_PAGE_SIZE = 500
"""Associations per input on one page of the v4 batch read. Unverified: the batch read's page
size is not documented; 500 is the documented default `limit` of the single-object v4 read
(associations-v4.json GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}).
Tests set `HubSpotCrmApi.association_page_size` small to page cheaply."""
FAULT_KINDS = ("5xx", "429", "slow")


@dataclass
class CrmRateLimits:
    """Per-portal limits (platform-facts: Limits). Mutable: tests may lower them live."""

    per_window: int = 110  # platform-facts: marketplace OAuth apps, 110 requests / 10 s
    window_s: float = 10.0
    search_per_second: int = 5  # platform-facts: search 5/s


Caller = AccessToken[HubSpotInstall] | None


class HubSpotCrmApi(VendorApi[Caller, Call]):
    """The CRM endpoints, per-portal state, limits, faults and webhooks of a FakeHubSpot."""

    log_response_bodies = True

    def __init__(self, fake: HubSpotOAuth, *, limits: CrmRateLimits | None = None) -> None:
        super().__init__(fake, fake.clock, FaultInjector(FAULT_KINDS))
        self._fake = fake
        self._ids = itertools.count(10_000_001)
        # Each portal's CRM, made on first use with HubSpot's defaults.
        self.portals: ScopedState[int, PortalCrm] = ScopedState(self.lock, self._new_portal)
        self.limits = limits or CrmRateLimits()
        self.windows: RollingWindows[tuple[int, str]] = RollingWindows(fake.clock)
        self.webhooks = WebhookHub(lock=self.lock, clock=fake.clock, installed=self._installed)
        self.association_page_size = DEFAULT_ASSOCIATION_PAGE_SIZE
        self.mount(RECORD_ROUTES + METADATA_ROUTES + DEVELOPER_ROUTES)

    def _new_portal(self, portal_id: int) -> PortalCrm:
        fake = self._fake
        return PortalCrm(portal_id, lock=self.lock, clock=self.clock,
                         next_id=lambda: next(self._ids), emit=self.webhooks.on_change,
                         currency=fake.currency, user_id=fake.user_id,
                         user_email=fake.user_email)

    def _installed(self, app_id: int, portal_id: int) -> bool:
        return any(not g.revoked and g.consent.hub_id == portal_id and g.consent.app_id == app_id
                   for g in self._fake.grants)

    # ----- the pipeline's hooks -----------------------------------------------------------

    def authenticate(self, ex: Exchange[Caller]) -> Caller:
        if ex.route.policy == DEVELOPER:
            return None  # the hapikey is checked by `handle`, which answers HubSpot's 401
        return self._fake.require_bearer(ex.request)

    def scope_of(self, ex: Exchange[Caller]) -> Hashable:
        return None if ex.caller is None else ex.caller.grant.consent.hub_id

    def gate(self, ex: Exchange[Caller]) -> None:
        if ex.route.policy != DEVELOPER:
            super().gate(ex)

    def admit(self, ex: Exchange[Caller]) -> Admission:
        """The ten-secondly window, or search's one-second one. Search and v4 association
        batch calls are exempt from the ten-secondly window (the specs'
        ``x-hubspot-rate-limit-exemptions``); a refused call is not counted."""
        portal, policy, limits = ex.scope, ex.route.policy, self.limits
        assert isinstance(portal, int)
        if policy == "search" and not self.windows.admit(
                (portal, "search"), 1.0, limits.search_per_second):
            return Admission(self.rate_limit_headers(portal), "SECONDLY")
        if policy == "ten_secondly" and not self.windows.admit(
                (portal, "ten"), limits.window_s, limits.per_window):
            return Admission(self.rate_limit_headers(portal), "TEN_SECONDLY_ROLLING")
        return Admission(self.rate_limit_headers(portal))

    def rate_limit_headers(self, portal_id: int) -> dict[str, str]:
        state = self.windows.state((portal_id, "ten"), self.limits.window_s,
                                   self.limits.per_window)
        return {"X-HubSpot-RateLimit-Max": str(state.limit),
                "X-HubSpot-RateLimit-Remaining": str(state.remaining),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(state.length * 1000))}

    def render_refusal(self, ex: Exchange[Caller]) -> Response:
        return rate_limited(ex.admission.refused or "")

    def render_fault(self, ex: Exchange[Caller], fault: Fault) -> Response | None:
        if fault.kind == "5xx":
            return hubspot_error(fault.status or 500, "INTERNAL_ERROR",
                                 "injected fault: the call was not processed")
        if fault.kind == "429":
            return rate_limited(fault.detail or "TEN_SECONDLY_ROLLING")
        return None

    def render_invalid(self, ex: Exchange[Caller], err: Invalid) -> Response:
        return invalid_input(err)

    def rate_headers(self, ex: Exchange[Caller]) -> dict[str, str]:
        headers = dict(ex.admission.headers)
        if ex.fault_kind == "429":
            headers["X-HubSpot-RateLimit-Remaining"] = "0"
        return headers

    def handle(self, ex: Exchange[Caller]) -> Response:
        if ex.route.policy == DEVELOPER:
            return self._developer(ex)
        assert ex.caller is not None
        install = ex.caller.grant.consent
        ctx = Ctx(ex, self.portals[install.hub_id], install.app_id,
                  frozenset(ex.caller.grant.scopes), self.clock, self._association_page)
        try:
            return ex.route.handler(ctx, **ex.path_values)
        except ValidationFailed as err:
            return invalid_properties(err.problems, install.hub_id)

    def _developer(self, ex: Exchange[Caller]) -> Response:
        key = ex.request.args.get("hapikey", "")
        if not hmac.compare_digest(key.encode(), self._fake.developer_api_key.encode()):
            return hubspot_error(401, "INVALID_AUTHENTICATION", "The API key provided is invalid.")
        app_id = ex.path_values["app_id"]
        if not app_id.isdigit():
            return hubspot_error(404, "OBJECT_NOT_FOUND", f"No app {app_id}")
        # The fake's own app signs with its client secret; other apps borrow it.
        return ex.route.handler(self.webhooks, ex.request, int(app_id), self._fake.client_secret)

    # ----- v4 association paging (a method, so tests can break it) -------------------------

    def _association_page(self, from_id: str, targets: list[JsonObject],
                          item: JsonObject) -> JsonObject:
        """One input's page: associations-v4.json PublicFetchAssociationsBatchRequest carries
        an optional `after` ("A paging cursor token used to retrieve the next set of
        results"); the result's `paging` is "only present if there are more pages"."""
        after = item.get("after")
        if after is not None and (not isinstance(after, str) or not after.isdigit()):
            fail(400, "VALIDATION_ERROR", f"after must be a paging token, not {after!r}",
                 context={"after": [str(after)]})
        start = int(after or 0)
        end = start + self.association_page_size
        result: JsonObject = {"from": {"id": from_id}, "to": targets[start:end]}
        if end < len(targets):
            result["paging"] = {"next": {"after": str(end)}}
        return result
