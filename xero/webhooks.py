"""Xero's webhooks: signature and payload (platform-facts, "Webhooks";
shared/specs/xero/xero-webhooks.yaml). The event names a changed record; it does not carry it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import defaultdict


class XeroWebhookRejected(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def verify(key: str, body: bytes, signature: str) -> None:
    """x-xero-signature = base64(HMAC-SHA256(webhook key, raw body)), compared in constant time."""
    expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest())
    if not key or not hmac.compare_digest(expected, signature.encode()):
        raise XeroWebhookRejected(401, "bad signature")


def changed_invoices(body: bytes) -> dict[str, set[str]]:
    """Invoice ids per tenant in a (verified) delivery; other categories are not ours."""
    return changed_resources(body, "INVOICE")


def changed_contacts(body: bytes) -> dict[str, set[str]]:
    """Contact ids per tenant (eventCategory CONTACT, CREATE or UPDATE): for contact sync."""
    return changed_resources(body, "CONTACT")


def changed_resources(body: bytes, category: str) -> dict[str, set[str]]:
    """Resource ids per tenant of one eventCategory in a (verified) delivery."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise XeroWebhookRejected(400, "not JSON") from exc
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise XeroWebhookRejected(400, "no events list")
    changed: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if (isinstance(event, dict) and event.get("eventCategory") == category
                and event.get("tenantId") and event.get("resourceId")):
            changed[str(event["tenantId"])].add(str(event["resourceId"]))
    return dict(changed)
