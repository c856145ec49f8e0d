"""What a push would send, for the card before the first push: the deal's invoice built
(not sent) with the admin's rules and Xero's reference data."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.connections import xero_client
from app.engine import clock
from app.engine.keys import reference
from app.engine.reference import reference_data
from app.engine.rules import invoice_rules
from app.engine.steps.build import invoice_date
from app.engine.steps.contacts import customer_of
from app.extensions import db
from app.invoice_view import account_label, tax_label
from app.models import ConnectionStatus, ContactLink, Installation, InstallationSettings
from app.page_format import current_locale
from app.wiring import adapter_for
from domain.deals import Deal
from xero.build import InvoiceDraft, Problem, build_invoice
from xero.contacts import Customer
from xero.reference import ReferenceData
from xero.timezones import iana_zone


@dataclass
class Preview:
    """What a push would send: for the card, before the first push."""

    deal: Deal | None
    customer: Customer | None
    linked_contact: str | None
    draft: InvoiceDraft | None
    problems: list[Problem]
    ref: ReferenceData | None = None  # the names of the codes the draft carries

    def account_label(self, code: str | None) -> str:
        """"200 · Sales", not "200"."""
        return account_label(self.ref, code)

    def tax_label(self, tax_type: str | None) -> str:
        """"GST on Income (10%)", not "OUTPUT"."""
        return tax_label(self.ref, tax_type, current_locale())


def preview_invoice(installation: Installation, deal_id: str) -> Preview:
    """Build (not send) the deal's invoice with the admin's rules and Xero's reference data."""
    deal = adapter_for(installation.crm.value).fetch_deals(installation, [deal_id]).get(deal_id)
    if deal is None:
        return Preview(None, None, None, None, [Problem("sync_failed", "the deal no longer exists")])
    customer = customer_of(deal)
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        return Preview(deal, customer, None, None,
                       [Problem("reconnect_needed", "connect Xero to see the invoice")])
    client = xero_client(connection)
    linked = _linked_contact(installation, customer)
    row = installation.settings or InstallationSettings(installation_id=installation.id)
    status = "DRAFT" if row.draft_first else "AUTHORISED"
    ref = reference_data(installation, connection, client)
    zone = iana_zone(ref.timezone)
    if zone is None:
        return Preview(deal, customer, linked, None, [Problem(
            "unknown_timezone", f"Xero's organisation timezone {ref.timezone!r} is not known")])
    result = build_invoice(deal, invoice_rules(installation.id, row), ref,
                           contact_id=linked or "", status=status,
                           today=invoice_date(deal, zone, clock.now()),
                           reference=reference(installation, deal_id))
    if isinstance(result, list):
        return Preview(deal, customer, linked, None, result, ref)
    return Preview(deal, customer, linked, result, [], ref)


def _linked_contact(installation: Installation, customer: Customer | None) -> str | None:
    """The Xero contact the customer's CRM record is linked to, if any."""
    if customer is None:
        return None
    return db.session.scalar(select(ContactLink.xero_contact_id).where(
        ContactLink.installation_id == installation.id,
        ContactLink.crm_object_type == customer.crm_type,
        ContactLink.crm_object_id == customer.crm_id))
