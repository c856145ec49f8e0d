"""Fixtures: each fake running on its own loopback port, wrapped in a client harness."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import FakeHubSpot, FakePipedrive, FakeXero, LoopbackServer, OAuthFake

from .support import REDIRECT_URI, OAuthHarness

XERO_SCOPE = (
    "offline_access accounting.invoices accounting.payments accounting.contacts"
    " accounting.settings.read"
)
HUBSPOT_SCOPE = "oauth crm.objects.deals.read crm.objects.deals.write crm.objects.companies.read"
PIPEDRIVE_SCOPE = "base deals:full"  # Pipedrive ignores it; scopes come from the app settings


@pytest.fixture
def xero() -> Iterator[OAuthHarness[FakeXero]]:
    fake = FakeXero(redirect_uris=[REDIRECT_URI])
    fake.add_tenant("Demo Company (AU)")
    with LoopbackServer(fake) as server:
        yield OAuthHarness("xero", fake, server.url, XERO_SCOPE, "/connections")


@pytest.fixture
def hubspot() -> Iterator[OAuthHarness[FakeHubSpot]]:
    fake = FakeHubSpot(redirect_uris=[REDIRECT_URI])
    with LoopbackServer(fake) as server:
        yield OAuthHarness("hubspot", fake, server.url, HUBSPOT_SCOPE, "/account-info/v3/details")


@pytest.fixture
def pipedrive() -> Iterator[OAuthHarness[FakePipedrive]]:
    fake = FakePipedrive(redirect_uris=[REDIRECT_URI])
    with LoopbackServer(fake) as server:
        yield OAuthHarness("pipedrive", fake, server.url, PIPEDRIVE_SCOPE, "/api/v1/users/me")


@pytest.fixture(params=["xero", "hubspot", "pipedrive"])
def vendor(request: pytest.FixtureRequest) -> OAuthHarness[OAuthFake[Any]]:
    """Each fake in turn, for behaviour all three share."""
    harness: OAuthHarness[OAuthFake[Any]] = request.getfixturevalue(request.param)
    return harness
