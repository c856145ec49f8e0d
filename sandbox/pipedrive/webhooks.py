"""App webhooks (``/api/v1/webhooks``) delivering v2 payloads with HTTP Basic auth, on the
kit's delivery loop. Rules: guide-for-webhooks-v2 ("Retry logic", "Webhooks policy") and
webhooks-for-apps."""

from __future__ import annotations

import copy
import itertools
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sandbox.kit.jsonio import dumps
from sandbox.kit.webhooks import Ban, DeliveryLoop, Pending, post
from sandbox.pipedrive.parse import bad_request, expect_text
from sandbox.pipedrive.records import Event, Shape, event_time

WEBHOOK_TIMEOUT_S = 10.0
RETRY_DELAYS_S = (3.0, 30.0, 150.0)
BAN_THRESHOLD = 10
BAN_S = 30 * 60.0
DELETE_AFTER_NO_SUCCESS_S = 3 * 86_400.0
MAX_WEBHOOKS_PER_USER = 40  # webhooks-for-apps: 40 webhooks per app user
EVENT_ACTIONS = ("create", "change", "delete", "*")
EVENT_OBJECTS = ("activity", "deal", "lead", "note", "organization", "person", "pipeline",
                 "product", "stage", "user", "*")
DropReason = Literal["banned", "retries_exhausted", "webhook_removed"]
Payload = dict[str, Any]


@dataclass
class Webhook:
    """An app webhook (type "application"); Pipedrive keeps ban state per webhook."""

    id: int
    company_id: int
    user_id: int
    client_id: str
    subscription_url: str
    event_action: str
    event_object: str
    version: str
    add_time: float
    http_auth_user: str | None = None
    http_auth_password: str | None = None
    name: str | None = None
    ban: Ban = field(default_factory=Ban)
    last_delivery_time: float | None = None
    last_http_status: int | None = None
    last_success_at: float | None = None

    ban_counter = property(lambda self: self.ban.counter)  # first-attempt failures in a row
    banned_until = property(lambda self: self.ban.until)

    def matches(self, action: str, entity: str) -> bool:
        return self.event_action in (action, "*") and self.event_object in (entity, "*")


# v1 webhook object (unverified field list, from the v1 reference as we recall it).
WEBHOOK = Shape(
    "id company_id owner_id=user_id user_id event_action event_object subscription_url"
    " http_auth_user http_auth_password last_http_status admin_id=user_id name version",
    "add_time last_delivery_time",
    {"is_active": 1, "remove_time": None, "type": "application", "additional_data": [],
     "remove_reason": None},
    stamp=event_time,
)


@dataclass(frozen=True)
class EventRef:
    """Which event (ids as the payload's meta gives them), for which webhook."""

    webhook_id: int
    event_id: str
    entity: str
    action: str
    entity_id: str


def _ref(webhook_id: int, payload: dict[str, Any]) -> tuple[int, str, str, str, str]:
    meta = payload["meta"]
    return webhook_id, meta["id"], meta["entity"], meta["action"], meta["entity_id"]


@dataclass(frozen=True)
class DeliveryResult(EventRef):
    """One POST to a subscription URL (or one that could not be made)."""

    attempt: int
    url: str
    time: float
    status: int | None
    error: str | None
    elapsed: float
    next_attempt_at: float | None
    banned: bool
    payload: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class DroppedEvent(EventRef):
    """An event a webhook will never receive, and why."""

    attempt: int
    reason: DropReason
    time: float


def webhook_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a POST /v1/webhooks body (guide-for-webhooks-v2 "Body parameters")."""
    url = body.get("subscription_url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
        raise bad_request("subscription_url must be a full http(s) URL")
    action, obj = body.get("event_action"), body.get("event_object")
    if action not in EVENT_ACTIONS:
        raise bad_request(f"event_action must be one of {', '.join(EVENT_ACTIONS)}")
    if obj not in EVENT_OBJECTS:
        raise bad_request(f"event_object must be one of {', '.join(EVENT_OBJECTS)}")
    version = str(body.get("version") or "2.0")  # docs: 2.0 is the default
    if version != "2.0":
        raise bad_request("this sandbox implements webhooks version 2.0 only")
    auth = {key: expect_text(body.get(key), key, nullable=True)
            for key in ("http_auth_user", "http_auth_password")}
    return {"subscription_url": url, "event_action": action, "event_object": obj,
            "version": version, **auth, "name": _webhook_name(body.get("name"))}


def _webhook_name(raw: Any) -> str:
    """`name` is required: pipedrive/client-nodejs src/versions/v1/models/add-webhook-request.ts
    (AddWebhookRequest, `'name': string` with no `?`, since Build 272, commit 43929e5d,
    2025-09-02). Pipedrive's answer to a missing required field is a 400 with its usual
    `{"success": false, "error": ...}` body (the message text is ours: unverified)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise bad_request("name is required", errors={"name": "is required"})
    return str(expect_text(raw, "name"))


def _payload(event: Event, hook: Webhook, ids: tuple[str, str], now: float) -> dict[str, Any]:
    """The v2 body (guide-for-webhooks-v2 "Webhook format"); meta ids are strings."""
    event_id, correlation_id = ids
    meta: dict[str, Any] = {
        "action": event.action, "entity": event.entity, "company_id": str(event.company_id),
        "correlation_id": correlation_id, "entity_id": str(event.entity_id), "id": event_id,
        "is_bulk_edit": False, "timestamp": event_time(now),
        "type": "application",  # app webhooks; "general" for ones made in the UI
        "user_id": str(event.user_id), "version": "2.0", "webhook_id": str(hook.id),
        "webhook_owner_id": str(hook.user_id), "change_source": event.change_source,
        "attempt": 1, "host": f"{event.domain}.pipedrive.com",
        "permitted_user_ids": [str(u) for u in sorted(set(event.owners))],
        **dict(event.meta),
    }
    return {"meta": meta, "data": copy.deepcopy(event.data),
            "previous": copy.deepcopy(event.previous)}


class WebhookDispatcher(DeliveryLoop[Payload, DeliveryResult]):
    """App webhooks and Pipedrive's retry and ban policy; an event is its v2 payload."""

    by_due = True
    thread_name = "pipedrive-webhooks"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, retry_delays=RETRY_DELAYS_S, **kwargs)
        self.timeout = WEBHOOK_TIMEOUT_S
        self._hooks: dict[int, Webhook] = {}
        self._hook_ids = itertools.count(1)

    def subscribe(self, company_id: int, user_id: int, client_id: str,
                  fields: Mapping[str, Any]) -> Webhook:
        mine = [h for h in self.hooks_of(company_id, client_id) if h.user_id == user_id]
        if len(mine) >= MAX_WEBHOOKS_PER_USER:
            raise bad_request(
                f"An app can create at most {MAX_WEBHOOKS_PER_USER} webhooks per user"
            )
        hook = Webhook(next(self._hook_ids), company_id, user_id, client_id,
                       add_time=self.clock.now(), **fields)
        self._hooks[hook.id] = hook
        return hook

    def get(self, webhook_id: int) -> Webhook | None:
        return self._hooks.get(webhook_id)

    def remove(self, webhook_id: int) -> None:
        self._hooks.pop(webhook_id, None)
        self.drop_target(webhook_id, "webhook_removed")

    @property
    def hooks(self) -> list[Webhook]:
        with self.lock:
            return [copy.deepcopy(h) for h in self._hooks.values()]

    def hooks_of(self, company_id: int, client_id: str) -> list[Webhook]:
        return [h for h in self._hooks.values()
                if h.company_id == company_id and h.client_id == client_id]

    def emit(self, event: Event) -> None:
        """Queue attempt 1 for each matching webhook (caller holds the lock)."""
        now = self.clock.now()
        ids = (str(uuid.uuid4()), str(uuid.uuid4()))
        for hook in list(self._hooks.values()):
            if hook.company_id != event.company_id or not hook.matches(event.action, event.entity):
                continue
            item = self.enqueue(hook.id, _payload(event, hook, ids, now), due=now)
            if hook.ban.active(now):
                self.drop(item, "banned")  # guide-for-webhooks-v2: events in a ban are lost

    def prepare(self, items: list[Pending[Payload]]) -> tuple[Webhook, Payload]:
        [item] = items
        payload = copy.deepcopy(item.event)
        payload["meta"]["attempt"] = item.attempt
        return self._hooks[item.target], payload

    def send(self, items: list[Pending[Payload]], prepared: tuple[Webhook, Payload], *,
             duplicate: bool) -> DeliveryResult:
        [item], (hook, payload) = items, prepared
        auth = None if hook.http_auth_user is None else (
            hook.http_auth_user, hook.http_auth_password or "")
        headers = {"Content-Type": "application/json", "User-Agent": "Pipedrive-Webhooks/2.0"}
        sent_at = self.clock.now()
        # docs: the URL must not redirect (post() never follows one)
        reply = post(hook.subscription_url, dumps(payload).encode(), headers,
                     timeout=self.timeout, auth=auth, deadline=True)
        return DeliveryResult(*_ref(hook.id, payload), item.attempt, hook.subscription_url,
                              sent_at, reply.status, reply.error, reply.elapsed, None, False,
                              payload)

    def settle(self, items: list[Pending[Payload]], result: DeliveryResult) -> DeliveryResult:
        """Apply the retry/ban policy to one attempt's outcome (lock held)."""
        [item] = items
        hook = self._hooks.get(result.webhook_id)
        if hook is None:
            return result
        hook.last_delivery_time, hook.last_http_status = result.time, result.status
        if result.ok:
            hook.last_success_at = result.time
            if item.attempt == 1:
                hook.ban.counter = 0  # unverified: the docs never say a success resets it
            return result
        if item.attempt == 1 and hook.ban.strike(self.clock.now(), BAN_THRESHOLD, BAN_S):
            # "No data will be saved for retries after the ban": this event and any
            # queued ones for the hook are lost (unverified reading of the docs).
            self.drop(item, "banned")
            self.drop_target(hook.id, "banned")
            return replace(result, banned=True)
        # docs: failures during retries do not increase the ban counter
        return replace(result, next_attempt_at=self._retry_or_drop(hook, item))

    def _retry_or_drop(self, hook: Webhook, item: Pending[Payload]) -> float | None:
        last_success = hook.last_success_at or hook.add_time
        if self.clock.now() - last_success >= DELETE_AFTER_NO_SUCCESS_S:
            self.remove(hook.id)  # "no successful deliveries on 3 consecutive days"
            self.drop(item, "webhook_removed")
            return None
        return self.retry(item)

    @property
    def dropped_events(self) -> list[DroppedEvent]:
        return [DroppedEvent(*_ref(d.target, d.event), d.attempt, d.reason, d.time)
                for d in self.dropped]

    @property
    def pending(self) -> list[tuple[int, int, float]]:
        """(webhook id, attempt, due time) of every queued delivery."""
        return [(p.target, p.attempt, p.due) for p in self.queued()]
