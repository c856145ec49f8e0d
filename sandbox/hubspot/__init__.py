"""Fake HubSpot: OAuth (`oauth`), the CRM API (`api`, `handlers`, `metadata`, `search`) over
per-portal state (`state`, `schema`), and webhook delivery (`webhooks`, `developer`).

What it models (sources: shared/notes/platform-facts.md "HubSpot", the vendored specs in
shared/specs/hubspot/, the hubspot-api-client 12.0 source): production behaviour - bearer
tokens decide the portal, scope checks (403 MISSING_SCOPES), the 110-per-rolling-10-s limit
with HubSpot's headers and 429 body, injected faults (5xx, 429, slow), a call log - and
requested properties that exist but are unset coming back as ``null`` (the specs say
``string``; see the contract tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import requests

from sandbox.hubspot.api import CrmRateLimits, HubSpotCrmApi
from sandbox.hubspot.oauth import HubSpotOAuth
from sandbox.hubspot.state import PortalCrm
from sandbox.hubspot.webhooks import DeliveryResult, WebhookApp, WebhookHub, signature_v3, signed_uri
from sandbox.kit.calls import Call
from sandbox.kit.faults import Fault

_DIRECT_GRANT_REDIRECT = "urn:paydeck:sandbox:direct-grant"

SANDBOX_CRM_SCOPES: tuple[str, ...] = (
    # platform-facts' list, plus products/owners/schemas-read that reading line items'
    # products, owners and property definitions need, and companies-write for the company
    # page's import and contacts-write for person sync (app.settings.HUBSPOT_SCOPES).
    "oauth", "crm.objects.deals.read", "crm.objects.deals.write", "crm.objects.companies.read",
    "crm.objects.companies.write", "crm.objects.contacts.read", "crm.objects.contacts.write",
    "crm.objects.line_items.read",
    "crm.objects.products.read", "crm.objects.owners.read", "crm.schemas.deals.read",
    "crm.schemas.deals.write",
)


class FakeHubSpot(HubSpotOAuth):
    """HubSpot's OAuth (see `HubSpotOAuth` for the arguments) with the CRM API and webhooks."""

    def __init__(self, *args: Any, crm_rate_limits: CrmRateLimits | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crm_api = HubSpotCrmApi(self, limits=crm_rate_limits)

    @property
    def crm(self) -> PortalCrm:
        """The CRM of portal `portal_id` (the default portal) for seeding and assertions."""
        return self.crm_api.portals[self.portal_id]

    def crm_for(self, portal_id: int) -> PortalCrm:
        return self.crm_api.portals[portal_id]

    def issue_token(self, portal_id: int | None = None,
                    scopes: Sequence[str] = SANDBOX_CRM_SCOPES) -> str:
        """A live access token for `portal_id` (default `self.portal_id`), no browser dance.

        Creates a grant (the app is then installed in that portal, so its webhooks fire).
        """
        with self.lock:
            consent = self.install(portal_id)
            code = self.store.issue_code(self.client_id, _DIRECT_GRANT_REDIRECT, tuple(scopes),
                                         consent)
            grant = self.store.redeem_code(code, self.client_id, _DIRECT_GRANT_REDIRECT, None)
            return self.store.issue_tokens(grant)[0].value

    # ----- calls, faults, limits ---------------------------------------------------------

    @property
    def crm_calls(self) -> list[Call]:
        """Every CRM API call, oldest first (scope: the portal id)."""
        return self.crm_api.call_log.calls

    def count_crm_calls(self, method: str | None = None, path_prefix: str | None = None,
                        status: int | None = None, portal_id: int | None = None) -> int:
        return self.crm_api.call_log.count(method, path_prefix, status, portal_id)

    def clear_crm_calls(self) -> None:
        self.crm_api.call_log.clear()

    def inject_crm(self, kind: str, method: str | None = None, path_prefix: str | None = None,
                   times: int | None = 1, status: int | None = None,
                   delay: float | None = None, *, portal_id: int | None = None,
                   policy_name: str = "TEN_SECONDLY_ROLLING") -> Fault:
        """Make the next `times` matching CRM calls fail (None: until cleared).

        kind: "5xx" (answer `status`, default 500, without doing anything), "429"
        (HubSpot's rate-limit answer with `policy_name`), "slow" (sleep `delay` real
        seconds, then proceed). `path_prefix` is a full path prefix, e.g.
        "/crm/v3/objects/deals/batch".
        """
        return self.crm_api.inject(Fault(kind, method, path_prefix, scope=portal_id,
                                         remaining=times, status=status, delay=delay,
                                         detail=policy_name))

    def clear_crm_faults(self) -> None:
        with self.lock:
            self.crm_api.faults.clear()

    @property
    def crm_rate_limits(self) -> CrmRateLimits:
        """The live limits; assign fields (``fake.crm_rate_limits.per_window = 5``) to tune."""
        return self.crm_api.limits

    # ----- webhooks ------------------------------------------------------------------------

    @property
    def webhooks(self) -> WebhookHub:
        """Queue, delivery log and knobs (retry_delays, timeout, max_attempts, max_batch)."""
        return self.crm_api.webhooks

    def subscribe(self, target_url: str, client_secret: str | None = None,
                  subscriptions: Iterable[str] = ("deal.propertyChange:dealstage",
                                                  "deal.creation"),
                  app_id: int | None = None, *, active: bool = True) -> WebhookApp:
        """Set an app's webhook target URL and add subscriptions like
        "deal.propertyChange:dealstage" or "deal.creation" (default app: this fake's,
        signing with its client secret)."""
        return self.webhooks.subscribe(
            self.app_id if app_id is None else app_id, target_url,
            self.client_secret if client_secret is None else client_secret, subscriptions,
            active=active)

    def deliver(self, *, force: bool = False, duplicate: bool = False) -> list[DeliveryResult]:
        """POST the due webhook events now; see `WebhookHub.deliver`."""
        return self.webhooks.deliver(force=force, duplicate=duplicate)

    @property
    def auto_deliver(self) -> bool:
        return self.webhooks.auto

    @auto_deliver.setter
    def auto_deliver(self, enabled: bool) -> None:
        self.webhooks.auto = enabled

    # ----- app cards (UI extensions) -----------------------------------------

    def card_fetch(self, url: str, params: Mapping[str, str] | None = None, *,
                   user_email: str | None = None, timeout: float = 15.0) -> requests.Response:
        """What an app card's `hubspot.fetch(url)` does: HubSpot adds the viewing user's and
        portal's ids to the query and signs the GET with the app's client secret (v3)."""
        query = {**(params or {}), "userId": str(self.user_id),
                 "userEmail": user_email or self.user_email, "appId": str(self.app_id),
                 "portalId": str(self.portal_id)}
        full = f"{url}?{urlencode(query)}"
        timestamp = str(int(self.now() * 1000))
        signature = signature_v3(self.client_secret, "GET", signed_uri(full), b"", timestamp)
        return requests.get(full, timeout=min(timeout, 15.0), headers={
            "X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp})


__all__ = ["SANDBOX_CRM_SCOPES", "CrmRateLimits", "FakeHubSpot", "signature_v3", "signed_uri"]
