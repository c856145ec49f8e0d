"""Deterministic names: an invoice's Reference, the Idempotency-Keys, comparable stamps."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone

from app.models import Installation
from xero.build import InvoiceDraft

RESEND = "resend"  # request source prefix of the "re-send the deal" choice


def reference(installation: Installation, deal_id: str) -> str:
    """Deterministic and unique per CRM account: the key for finding the invoice again in
    Xero. Two CRM accounts may invoice into one organisation, and deal ids are only unique
    within an account, so the account id is part of it ("HubSpot 4711 deal 123"). Links made
    before keep the reference they stored ("HubSpot deal 123"): the engine always reuses a
    link's own reference, so those invoices are still found by the installation that made
    them, and never by another."""
    label = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}.get(installation.crm.value,
                                                                 installation.crm.value)
    return f"{label} {installation.account_id} deal {deal_id}"


def key(kind: str, parts: Sequence[str]) -> str:
    """An Idempotency-Key (or job id part) that is the same for the same parts."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"paydeck-{kind}-{digest[:48]}"


def draft_hash(draft: InvoiceDraft) -> str:
    return hashlib.sha256(repr(draft).encode()).hexdigest()[:16]


def stamp(moment: datetime | None) -> str | None:
    """UpdatedDateUTC as comparable text (ms; Xero's precision), aware or naive-UTC alike."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
