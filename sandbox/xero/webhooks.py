"""Xero's webhooks, as the fake Xero sends them (platform-facts, "Webhooks";
shared/specs/xero/xero-webhooks.yaml).

Body `{events: [...], firstEventSequence, lastEventSequence, entropy}`, each event naming a
changed invoice or contact (the record itself is not included: the receiver fetches it).
Categories and types: tests/specs/xero/xero-webhooks.yaml `eventCategory` (INVOICE, CONTACT:
"For organisation contact-related events"; the `/contacts` endpoint is "Contact (Create,
Update)") and `eventType` CREATE / UPDATE. Every save counts, through the API (Paydeck's own
writes included: Xero does not tell apps apart in an event) or Xero's UI (the seeding
helpers). Header
`x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)). Xero expects 200 with an
empty body within 5 s, and 401 for a bad signature; before enabling a hook it sends signed
and mis-signed `events: []` posts ("intent to receive").
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from sandbox.kit.webhooks import hmac_sha256
from sandbox.xero.books import TenantBooks

TIMEOUT = 5.0


class XeroWebhookSender:
    """Sends an INVOICE event for every invoice, and a CONTACT event for every contact, changed
    since the last successful delivery (CREATE the first time a record is announced, UPDATE
    after). Invoice and contact ids are both UUIDs, so one `delivered` map serves both."""

    def __init__(self, all_books: Callable[[], list[TenantBooks]]) -> None:
        self.all_books = all_books
        self.lock = threading.Lock()
        self.delivered: dict[tuple[str, str], int] = {}  # (tenant, record id) -> updated_ms sent
        self.sequence = 0

    def pending(self) -> list[dict[str, Any]]:
        events = []
        for books in self.all_books():
            records = [("INVOICE", i.invoice_id, i.updated_ms) for i in books.invoices]
            records += [("CONTACT", c.contact_id, c.updated_ms) for c in books.contacts]
            for category, record_id, updated_ms in records:
                key = (books.tenant_id, record_id)
                if updated_ms > self.delivered.get(key, 0):
                    kind = "UPDATE" if key in self.delivered else "CREATE"
                    events.append(_event(books.tenant_id, record_id, updated_ms, kind,
                                         category))
        return events

    def deliver(self, url: str, key: str, *, max_events: int = 500) -> requests.Response | None:
        """POST the pending events (signed); on a 200 they count as delivered."""
        with self.lock:
            events = self.pending()[:max_events]
            if not events:
                return None
            response = self._post(url, key, events)
            if response.status_code == 200:
                for e in events:
                    self.delivered[(e["tenantId"], e["resourceId"])] = e["_updated_ms"]
            return response

    def lose_pending(self) -> int:
        """Fault injection: the pending events are never delivered (Xero retries a failed
        delivery for 24 hours and then disables the hook: platform-facts "Webhooks"; this is
        the end of that, or an event lost on the way). Returns how many were lost."""
        with self.lock:
            events = self.pending()
            for e in events:
                self.delivered[(e["tenantId"], e["resourceId"])] = e["_updated_ms"]
            return len(events)

    def intent_to_receive(self, url: str, key: str) -> bool:
        """Xero's check before it enables a hook: right signature -> 200 and an empty body;
        wrong signature -> 401."""
        good = self._post(url, key, [])
        bad = self._post(url, key, [], signature="x" + hmac_sha256(key, b"{}"))
        return good.status_code == 200 and good.content == b"" and bad.status_code == 401

    def _post(self, url: str, key: str, events: list[dict[str, Any]],
              signature: str | None = None) -> requests.Response:
        first, extra = self.sequence + 1, max(len(events) - 1, 0)
        self.sequence = first + extra
        public = [{k: v for k, v in e.items() if not k.startswith("_")} for e in events]
        body = json.dumps({"events": public, "firstEventSequence": first,
                           "lastEventSequence": first + extra,
                           "entropy": secrets.token_hex(10).upper()}).encode()
        headers = {"Content-Type": "application/json",
                   "x-xero-signature": signature or hmac_sha256(key, body)}
        return requests.post(url, data=body, timeout=TIMEOUT, headers=headers)


_RESOURCES = {"INVOICE": "Invoices", "CONTACT": "Contacts"}


def _event(tenant_id: str, record_id: str, updated_ms: int, kind: str,
           category: str = "INVOICE") -> dict[str, Any]:
    """One event as the spec's example shows it (resourceUrl .../Contacts/{id} for CONTACT)."""
    stamp = datetime.fromtimestamp(updated_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return {"resourceUrl": f"https://api.xero.com/api.xro/2.0/{_RESOURCES[category]}/{record_id}",
            "resourceId": record_id, "tenantId": tenant_id, "tenantType": "ORGANISATION",
            "eventDateUtc": stamp[:-3], "eventType": kind, "eventCategory": category,
            "_updated_ms": updated_ms}
