"""HubSpot's part of bench/contact_latency: the fake HubSpot, the app installed into it, its
company.* webhooks subscribed as app_manifest/hubspot says, and a company's own `phone`
property as the phone (the mapping's HubSpot default, app.contact_sync.mapping)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandbox.hubspot import FakeHubSpot

MANIFEST = (Path(__file__).resolve().parents[1] / "app_manifest" / "hubspot" / "src" / "app"
            / "webhooks" / "webhooks-hsmeta.json")


def _subscriptions() -> list[str]:
    """The app's webhook subscriptions (app_manifest/hubspot), as the fake takes them."""
    subs = json.loads(MANIFEST.read_text())["config"]["subscriptions"]["legacyCrmObjects"]
    return [s["subscriptionType"] + (f":{s['propertyName']}" if s.get("propertyName") else "")
            for s in subs if s["active"]]


class HubSpotSide:
    """bench.contact_latency.CrmSide for HubSpot."""

    crm, vendor, record = "hubspot", "HubSpot", "company"
    # HubSpot's updatedAt has milliseconds: an edit right after Paydeck's own write is told
    # apart from its echo, so nothing needs to wait.
    settle = 0.0

    def __init__(self) -> None:
        self.fake = FakeHubSpot()

    def settings(self, crm_url: str) -> dict[str, Any]:
        hubspot = self.fake
        return dict(hubspot_client_id=hubspot.client_id,
                    hubspot_client_secret=hubspot.client_secret,
                    hubspot_authorize_url=f"{crm_url}/oauth/authorize", hubspot_api_base=crm_url,
                    hubspot_app_id=str(hubspot.app_id))

    def installed(self, paydeck_url: str) -> dict[str, Any]:
        self.fake.subscribe(f"{paydeck_url}/webhooks/hubspot", self.fake.client_secret,
                            _subscriptions())
        return {}  # the default mapping: `phone` is HubSpot's own company property

    def add_company(self, name: str, phone: str) -> str:
        return str(self.fake.crm.add_company(name=name, phone=phone))

    def set_phone(self, company_id: str, phone: str) -> None:
        self.fake.crm.set_properties("companies", company_id, {"phone": phone})

    def phone(self, company_id: str) -> str:
        return str(self.fake.crm.object_properties("companies", company_id).get("phone") or "")

    def deliver(self) -> int:
        return len(self.fake.deliver(force=True))

    def lose_webhooks(self) -> int:
        queued = self.fake.webhooks.queued()
        for item in queued:
            self.fake.webhooks.drop(item, "lost")
        return len(queued)

    def calls(self) -> int:
        return self.fake.count_crm_calls()
