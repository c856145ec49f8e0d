"""What the settings page offers: the CRM's pipelines and products, Xero's accounts, tax rates
and items. Whatever could not be read is None (with a notice), and the saved rows of that kind
are then shown and kept as they are on save."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.connections import xero_client
from app.contact_sync.groups import organisation_groups
from app.crm_names import crm_name
from app.engine.reference import forget_reference_data, reference_data
from app.extensions import db
from app.models import ConnectionStatus, Installation
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from app.wiring import adapter_for
from crm_adapters.base import CrmError
from xero.client import ContactGroupInfo
from xero.errors import XeroFailure
from xero.reference import ReferenceData

log = logging.getLogger(__name__)

# Xero's account types of the REVENUE class: what a sales line may be coded to.
REVENUE_TYPES = frozenset({"REVENUE", "SALES", "OTHERINCOME"})


@dataclass
class Sources:
    """What the CRM and Xero offer; None where they could not be read (or Xero is not
    connected): then the saved rows of that kind are shown, and kept as they are on save."""

    pipelines: list[dict[str, Any]] | None
    products: list[dict[str, Any]] | None
    ref: ReferenceData | None
    notices: list[str]
    # Xero's contact groups for the Contacts section's picker (None: not read; the saved
    # choice is shown and kept).
    contact_groups: list[ContactGroupInfo] | None = None
    # The CRM grant lacks a scope person sync writes with (HubSpot crm.objects.contacts.write,
    # added after the first installs): the scope's name, or "" (granted, or not known).
    missing_person_scope: str = ""

    @property
    def stages(self) -> set[tuple[str, str]]:
        return {(str(p["id"]), str(s["id"])) for p in self.pipelines or [] for s in p["stages"]}

    @property
    def product_ids(self) -> set[str]:
        return {str(p["id"]) for p in self.products or []}

    @property
    def products_editable(self) -> bool:
        return self.products is not None and self.ref is not None

    def account_options(self) -> list[tuple[str, str]]:
        accounts = self.ref.accounts.values() if self.ref else []
        return [(a.code, f"{a.code} · {a.name}") for a in sorted(accounts, key=lambda a: a.code)
                if sales_account(a.code, self.ref)]

    def tax_options(self) -> list[tuple[str, str]]:
        rates = self.ref.tax_rates.values() if self.ref else []
        return [(r.tax_type, f"{r.name} ({r.rate.normalize():f}%)")
                for r in sorted(rates, key=lambda r: r.name) if r.usable_on_sales]

    def item_options(self) -> list[tuple[str, str]]:
        items = self.ref.items.values() if self.ref else []
        return [(i.code, f"{i.code} · {i.name}") for i in sorted(items, key=lambda i: i.code)]


def sales_account(code: str, ref: ReferenceData | None) -> bool:
    """Is `code` an active Xero revenue account (what a sales line may be coded to)?"""
    account = ref.accounts.get(code) if ref else None
    return account is not None and account.usable and account.type in REVENUE_TYPES


def sales_tax(tax_type: str, ref: ReferenceData | None) -> bool:
    """Is `tax_type` an active Xero tax rate usable on sales?"""
    rate = ref.tax_rates.get(tax_type) if ref else None
    return rate is not None and rate.usable_on_sales


def load_sources(installation: Installation, *, refresh: bool) -> Sources:
    """Read what the page offers; `refresh` forgets the cached Xero reference data first."""
    crm = adapter_for(installation.crm.value)
    name = crm_name(installation)
    notices: list[str] = []
    pipelines = _crm_list(lambda: crm.list_pipelines(installation), f"{name}'s pipelines", notices)
    products = _crm_list(lambda: crm.list_products(installation), f"{name}'s products", notices)
    if notices:  # a failed refresh wrote its state in its own session: show it on this render
        db.session.expire(installation, ["status", "token_failures", "token_failing_since",
                                         "token_failure_detail"])
    ref = _xero_reference(installation, refresh, notices)
    groups = _xero_groups(installation, refresh, notices) if ref is not None else None
    return Sources(pipelines, products, ref, notices, groups,
                   missing_person_scope=missing_person_scope(installation))


PERSON_SCOPES = {"hubspot": "crm.objects.contacts.write"}


def missing_person_scope(installation: Installation) -> str:
    """The scope person sync needs that the installation's grant lacks ("" if none, or if the
    grant's scopes were never recorded). An install from before person sync has a token
    without it: HubSpot adds scopes only when the app is installed again."""
    wanted = PERSON_SCOPES.get(installation.crm.value)
    granted = set((installation.scopes or "").split())
    return wanted if wanted and granted and wanted not in granted else ""


def _crm_list(read: Callable[[], list[dict[str, Any]]], what: str,
              notices: list[str]) -> list[dict[str, Any]] | None:
    try:
        return read()
    except (CrmError, TokenReconnectNeeded, TokenUnavailable) as exc:
        log.warning("settings page: could not list %s: %s", what, exc)
        notices.append(f"Could not load {what} right now ({exc}). The saved settings for them are "
                       "shown and are kept as they are when you save. Reload to try again.")
        return None


def _xero_reference(installation: Installation, refresh: bool,
                    notices: list[str]) -> ReferenceData | None:
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        return None  # the page says: connect Xero first
    if refresh:
        forget_reference_data(installation.id)
    try:
        return reference_data(installation, connection, xero_client(connection))
    except (XeroFailure, TokenReconnectNeeded, TokenUnavailable) as exc:
        log.warning("settings page: installation %s: no Xero reference data: %s", installation.id, exc)
        db.session.expire(connection)  # a failed refresh may have marked it reconnect-needed
        notices.append(f"Could not load accounts, tax rates and items from Xero right now ({exc}). "
                       "The saved Xero settings are kept as they are when you save.")
        return None


def _xero_groups(installation: Installation, refresh: bool,
                 notices: list[str]) -> list[ContactGroupInfo] | None:
    """The organisation's contact groups (app.contact_sync.groups, cached a minute)."""
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        return None
    try:
        return organisation_groups(connection.id, xero_client(connection), refresh=refresh)
    except (XeroFailure, TokenReconnectNeeded, TokenUnavailable) as exc:
        log.warning("settings page: installation %s: no Xero contact groups: %s",
                    installation.id, exc)
        db.session.expire(connection)
        notices.append(f"Could not load the contact groups from Xero right now ({exc}). The "
                       "saved choice of contact groups is kept as it is when you save.")
        return None
