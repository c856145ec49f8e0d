"""HubSpot's webhooks as HubSpot sends them, on the kit's delivery loop.

JSON arrays of up to 100 events per POST, signed with X-HubSpot-Signature-v3, retried with
an incrementing ``attemptNumber`` up to 10 times, optionally duplicated. Delivery is
test-driven (`WebhookHub.deliver`) unless ``auto`` is switched on for a live sandbox.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from sandbox.hubspot.schema import JsonObject, iso_ms
from sandbox.hubspot.state import Change
from sandbox.kit.clock import Clock
from sandbox.kit.webhooks import DeliveryLoop, Pending, hmac_sha256, post

MAX_WEBHOOK_BATCH = 100  # platform-facts: arrays of up to 100 events
MAX_WEBHOOK_ATTEMPTS = 10  # platform-facts: retried up to 10 times
WEBHOOK_TIMEOUT_S = 5.0  # platform-facts: a reply slower than 5 s is retried
WEBHOOK_CONNECT_TIMEOUT_S = 3.0
# When the next attempt is due after a failed one (fake-clock seconds), spreading ten
# attempts over roughly 24 h as HubSpot does. Index n is the wait after attempt n.
DEFAULT_RETRY_DELAYS_S: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 28800)
WEBHOOK_USER_AGENT = "HubSpot Connect 2.0 (http://dev.hubspot.com/) - WebhooksExecutorDaemon"

_SIGNATURE_DECODES = {code: chr(int(code, 16)) for code in "3A 2F 3F 40 21 24 27 28 29 2A 2C 3B".split()}
_SIGNATURE_ESCAPE = re.compile(f"%({'|'.join(_SIGNATURE_DECODES)})", re.IGNORECASE)


def signed_uri(url: str) -> str:
    """The URI HubSpot signs: the target URL with these escapes decoded (platform-facts)."""
    return _SIGNATURE_ESCAPE.sub(lambda m: _SIGNATURE_DECODES[m.group(1).upper()], url)


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    return hmac_sha256(secret, method.encode() + uri.encode() + body + timestamp.encode())


@dataclass
class WebhookSubscription:
    """One subscription of an app (webhooks-v3.json `SubscriptionResponse`)."""

    id: int
    event_type: str
    property_name: str | None
    active: bool
    created_ms: int
    updated_ms: int

    def matches(self, change: Change) -> bool:
        object_name, _, action = self.event_type.partition(".")
        if not self.active or object_name != change.object_type.singular:
            return False
        if change.kind == "propertyChange":
            return action == "propertyChange" and self.property_name == change.property_name
        return action == change.kind

    def render(self) -> JsonObject:
        body: JsonObject = {"id": str(self.id), "eventType": self.event_type, "active": self.active,
                            "createdAt": iso_ms(self.created_ms), "updatedAt": iso_ms(self.updated_ms)}
        if self.property_name:
            body["propertyName"] = self.property_name
        return body


@dataclass
class WebhookApp:
    """An app's webhook settings: one target URL, its secret, its subscriptions."""

    app_id: int
    client_secret: str
    target_url: str | None = None
    max_concurrent_requests: int = 10
    subscriptions: list[WebhookSubscription] = field(default_factory=list)
    created_ms: int = 0
    updated_ms: int = 0

    def render_settings(self) -> JsonObject:
        return {"targetUrl": self.target_url,
                "throttling": {"maxConcurrentRequests": self.max_concurrent_requests,
                               "period": "SECONDLY"},
                "createdAt": iso_ms(self.created_ms), "updatedAt": iso_ms(self.updated_ms)}


@dataclass(frozen=True)
class DeliveryResult:
    """One POST to a target URL: what was sent and how the receiver answered."""

    app_id: int
    portal_id: int
    url: str
    status: int | None
    error: str | None
    events: tuple[JsonObject, ...]
    body: bytes
    headers: dict[str, str]
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


_EVENT_ACTIONS = ("creation", "deletion", "propertyChange", "associationChange", "merge",
                  "restore", "privacyDeletion", "newMessage", "completed")


def parse_subscription(text: str) -> tuple[str, str | None]:
    """``"deal.propertyChange:dealstage"`` -> ("deal.propertyChange", "dealstage")."""
    event_type, _, property_name = text.partition(":")
    _, _, action = event_type.partition(".")
    if action not in _EVENT_ACTIONS:
        raise ValueError(f"unknown event type {event_type!r}")
    if action == "propertyChange" and not property_name:
        raise ValueError(f"{event_type} needs a property name: '{event_type}:<property>'")
    return event_type, property_name or None


def _payload(event: JsonObject, attempt: int) -> JsonObject:
    return {**event, "attemptNumber": attempt}


Batch = tuple[str, str, tuple[JsonObject, ...]]
"""What one POST carries: target URL, signing secret, events."""


class WebhookHub(DeliveryLoop[JsonObject, DeliveryResult]):
    """Webhook settings per app, and delivery of their events (target: app and portal).

    Events are queued when a subscribed record changes in a portal where the app is
    installed (a live grant for that portal and app).
    """

    first_attempt = 0  # HubSpot's attemptNumber starts at 0
    thread_name = "hubspot-webhooks"

    def __init__(self, *, lock: threading.RLock, clock: Clock,
                 installed: Callable[[int, int], bool]) -> None:
        super().__init__(lock, clock, retry_delays=DEFAULT_RETRY_DELAYS_S,
                         max_attempts=MAX_WEBHOOK_ATTEMPTS, max_batch=MAX_WEBHOOK_BATCH)
        self._installed = installed
        self._apps: dict[int, WebhookApp] = {}
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(4_100_000_001)
        self.timeout = WEBHOOK_TIMEOUT_S

    # ----- settings --------------------------------------------------------------------

    def app(self, app_id: int, client_secret: str) -> WebhookApp:
        """The app's settings, created empty on first use."""
        with self.lock:
            app = self._apps.get(app_id)
            if app is None:
                now = self._now_ms()
                app = self._apps[app_id] = WebhookApp(app_id, client_secret, created_ms=now, updated_ms=now)
            return app

    def find_app(self, app_id: int) -> WebhookApp | None:
        with self.lock:
            return self._apps.get(app_id)

    def subscribe(self, app_id: int, target_url: str, client_secret: str,
                  subscriptions: Iterable[str], *, active: bool = True) -> WebhookApp:
        """Set the app's target URL and secret and add the missing subscriptions."""
        with self.lock:
            app = self.app(app_id, client_secret)
            app.target_url, app.client_secret = target_url, client_secret
            app.updated_ms = self._now_ms()
            for text in subscriptions:
                event_type, property_name = parse_subscription(text)
                if not any(s.event_type == event_type and s.property_name == property_name
                           for s in app.subscriptions):
                    self.add_subscription(app, event_type, property_name, active)
            return app

    def add_subscription(self, app: WebhookApp, event_type: str, property_name: str | None,
                         active: bool) -> WebhookSubscription:
        with self.lock:
            now = self._now_ms()
            sub = WebhookSubscription(next(self._ids), event_type, property_name, active, now, now)
            app.subscriptions.append(sub)
            return sub

    # ----- events --------------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        """Queue an event per matching active subscription of each installed app."""
        with self.lock:
            for app in self._apps.values():
                if self._installed(app.app_id, change.portal_id):
                    for sub in app.subscriptions:
                        if sub.matches(change):
                            event = self._event(app, sub, change)
                            self.enqueue((app.app_id, change.portal_id), event)

    def _event(self, app: WebhookApp, sub: WebhookSubscription, change: Change) -> JsonObject:
        event: JsonObject = {
            "eventId": next(self._event_ids), "subscriptionId": sub.id, "portalId": change.portal_id,
            "appId": app.app_id, "occurredAt": change.occurred_ms,
            "subscriptionType": sub.event_type, "attemptNumber": 0, "objectId": int(change.object_id)}
        if change.kind == "propertyChange":
            event["propertyName"] = change.property_name
            event["propertyValue"] = change.property_value or ""
        elif change.kind in ("creation", "deletion"):
            event["changeFlag"] = "CREATED" if change.kind == "creation" else "DELETED"
        # Merge events carry primaryObjectId, mergedObjectIds, newObjectId and
        # numberOfPropertiesMoved (changelog new-subscription-types-for-webhooks); restore
        # events nothing new. Unverified: whether either carries a changeFlag (none here).
        event.update(dict(change.extra))
        event["changeSource"] = change.source.change_source
        if change.source.source_id is not None:
            event["sourceId"] = change.source.source_id
        return event

    @property
    def pending(self) -> list[JsonObject]:
        """Queued events as they would be sent next (with their attemptNumber)."""
        return [_payload(item.event, item.attempt) for item in self.queued()]

    @property
    def dropped(self) -> list[JsonObject]:  # type: ignore[override]
        """Events that failed every attempt (with the attemptNumber a next try would carry)."""
        return [_payload(d.event, d.attempt + 1) for d in super().dropped]

    # ----- the delivery loop's hooks -----------------------------------------------------------

    def ready(self, item: Pending[JsonObject]) -> bool:
        app = self._apps.get(item.target[0])  # type: ignore[index]
        return app is not None and bool(app.target_url)

    def group_of(self, item: Pending[JsonObject]) -> Hashable:
        return item.target

    def prepare(self, items: list[Pending[JsonObject]]) -> Batch:
        app = self._apps[items[0].target[0]]  # type: ignore[index]
        return app.target_url or "", app.client_secret, tuple(
            _payload(item.event, item.attempt) for item in items)

    def send(self, items: list[Pending[JsonObject]], prepared: Batch, *,
             duplicate: bool) -> DeliveryResult:
        url, secret, events = prepared
        body = json.dumps(list(events), separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = str(self._now_ms())
        headers = {"Content-Type": "application/json", "User-Agent": WEBHOOK_USER_AGENT,
                   "X-HubSpot-Signature-Version": "v3",
                   "X-HubSpot-Signature-v3": signature_v3(secret, "POST", signed_uri(url), body,
                                                          timestamp),
                   "X-HubSpot-Request-Timestamp": timestamp}
        reply = post(url, body, headers, timeout=self.timeout,
                     connect_timeout=WEBHOOK_CONNECT_TIMEOUT_S)
        error = f"no reply within {self.timeout} s" if reply.timed_out else reply.error
        if error is None and not reply.ok:
            error = f"HTTP {reply.status}"
        app_id, portal_id = items[0].target  # type: ignore[misc]
        return DeliveryResult(app_id, portal_id, url, reply.status, error, events, body,
                              headers, duplicate)

    def settle(self, items: list[Pending[JsonObject]], result: DeliveryResult) -> DeliveryResult:
        if not result.ok:
            for item in items:
                self.retry(item)
        return result

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)
