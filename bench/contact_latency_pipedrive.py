"""Pipedrive's part of bench/contact_latency: the fake Pipedrive (sandbox.pipedrive), the app
installed into it through its real OAuth flow (the install's setup job registers the
organization webhooks, which the fake delivers with the installation's Basic credentials),
and organizations as the linked companies.

The phone: a v2 organization has no phone of its own (UpdateOrganizationRequest in
pipedrive/client-nodejs; crm_adapters.pipedrive), so app.contact_sync.mapping has no Pipedrive
default for it and the field is inactive until the admin names a CRM field. The bench does
what an admin would: creates a custom organization field "Phone" (text, as an admin adds one
in Pipedrive) and maps the phone to its key, ContactSyncSettings.fields {"phone":
{"crm_property": <the field's key>}}, which is what the settings form saves (only what
differs from the defaults; app/settings_forms/contacts.py). The adapter then reads and writes
it as `custom_fields[<key>]` (its `extra` properties).

Whole seconds: Pipedrive's `update_time` has whole seconds, and Paydeck tells its own write
from a user's by that version (app.contact_sync.crm_to_xero.echoed_versions; rules.is_echo):
an edit within the second of Paydeck's last write to the same organization would read as
Paydeck's echo and not sync (the known limit tests/test_contact_sync_crm_to_xero.py names;
checked against this stack: a phone edited right after Paydeck's PATCH of the organization
never reached Xero, 3 times of 3, and 1.1 s later it did, 3 of 3; the safety net does not
catch it either, since the organization still reads as at Paydeck's version).
So every phase that edits organizations starts `settle` seconds after Paydeck's last write to
them (the sleep is outside the timed part); within a phase each organization is edited once,
and Paydeck writes to none of them while the other side's changes are timed, so no change
waits on a second boundary and none is lost to one.
"""

from __future__ import annotations

from typing import Any

from app.settings import PIPEDRIVE_SCOPES
from sandbox.pipedrive import FakePipedrive


class PipedriveSide:
    """bench.contact_latency.CrmSide for Pipedrive."""

    crm, vendor, record = "pipedrive", "Pipedrive", "organization"
    settle = 1.1  # past the whole second of Paydeck's last write (see the docstring)

    def __init__(self) -> None:
        self.fake = FakePipedrive(scopes=tuple(PIPEDRIVE_SCOPES.split()))
        self.phone_field = ""

    def settings(self, crm_url: str) -> dict[str, Any]:
        return dict(pipedrive_client_id=self.fake.client_id,
                    pipedrive_client_secret=self.fake.client_secret, pipedrive_oauth_base=crm_url)

    def installed(self, paydeck_url: str) -> dict[str, Any]:
        hooks = {(h.event_object, h.event_action) for h in self.fake.webhooks
                 if h.subscription_url.startswith(paydeck_url)}
        if not {("organization", "change"), ("organization", "create")} <= hooks:
            raise RuntimeError(f"the install registered no organization webhooks: {hooks}")
        self.phone_field = self.fake.api.add_org_field("Phone")
        return {"phone": {"crm_property": self.phone_field}}

    def add_company(self, name: str, phone: str) -> str:
        return str(self.fake.api.add_org(name, custom_fields={self.phone_field: phone}))

    def set_phone(self, company_id: str, phone: str) -> None:
        """A user edits the field in Pipedrive's web app (change_source "app")."""
        self.fake.api.update_org(int(company_id), custom_fields={self.phone_field: phone})

    def phone(self, company_id: str) -> str:
        return str(self.fake.api.org(int(company_id)).custom_fields.get(self.phone_field) or "")

    def deliver(self) -> int:
        return len(self.fake.deliver())

    def lose_webhooks(self) -> int:
        queued = self.fake.api.webhooks.queued()
        for item in queued:
            self.fake.api.webhooks.drop(item, "lost")
        return len(queued)

    def calls(self) -> int:
        return self.fake.api.count_calls()
