"""HubSpot: install identity, webhooks, deals in, invoice fields out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import requests

from app.settings import Settings
from crm_adapters.base import (
    AccountIdentity,
    CrmError,
    ParsedWebhook,
    StageEvent,
    WebhookRejected,
    WebhookRequest,
)


def identify(settings: Settings, token: dict[str, object]) -> AccountIdentity:
    """The portal (hub) id behind an access token: GET /oauth/v1/access-tokens/{token}."""
    url = f"{settings.hubspot_api_base}/oauth/v1/access-tokens/{token['access_token']}"
    try:
        response = requests.get(url, timeout=settings.http_timeout)
    except requests.RequestException as exc:
        raise CrmError(f"HubSpot unreachable: {exc.__class__.__name__}") from exc
    if response.status_code != 200:
        raise CrmError(f"HubSpot token info answered {response.status_code}", response.status_code)
    info = response.json()
    return AccountIdentity(account_id=str(info["hub_id"]), account_name=info.get("hub_domain", ""),
                           user=info.get("user", ""), api_domain=settings.hubspot_api_base)


# --- webhooks ---------------------------------------------------------------------------------
# Signature v3 (developers.hubspot.com request-validation): base64(HMAC-SHA256(client secret,
# method + uri + body + timestamp)); reject timestamps older than 5 minutes. The uri is the URL
# as HubSpot called it with these escapes decoded. Done over the raw bytes here: the SDK's
# Signature.is_valid defaults to v2, wants a str body and accepts any future timestamp.
_URI_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
               "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
MAX_SKEW_MS = 300_000


def _hubspot_uri(url: str) -> str:
    for escaped, plain in _URI_DECODE.items():
        url = url.replace(escaped, plain).replace(escaped.lower(), plain)
    return url


def sign_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    message = f"{method}{_hubspot_uri(url)}".encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify_webhook(req: WebhookRequest, settings: Settings, now_ms: int | None = None) -> None:
    signature = req.headers.get("X-HubSpot-Signature-v3", "")
    timestamp = req.headers.get("X-HubSpot-Request-Timestamp", "")
    if not signature or not timestamp.isdigit() or not settings.hubspot_client_secret:
        raise WebhookRejected(401, "missing signature or timestamp")
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    if abs(now_ms - int(timestamp)) > MAX_SKEW_MS:
        raise WebhookRejected(401, "stale timestamp")
    expected = sign_v3(settings.hubspot_client_secret, req.method, req.url, req.body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookRejected(401, "bad signature")


def parse_webhook(req: WebhookRequest, settings: Settings) -> ParsedWebhook:
    """A JSON array of up to 100 events; Paydeck acts on deal stage changes only."""
    try:
        payload = json.loads(req.body)
    except ValueError as exc:
        raise WebhookRejected(400, "body is not JSON") from exc
    if not isinstance(payload, list) or not all(isinstance(e, dict) for e in payload):
        raise WebhookRejected(400, "body is not an array of events")
    events, ignored = [], 0
    for e in payload:
        if (e.get("subscriptionType") != "deal.propertyChange" or e.get("propertyName") != "dealstage"
                or not all(e.get(k) not in (None, "") for k in ("objectId", "portalId", "eventId",
                                                                   "propertyValue"))):
            ignored += 1
            continue
        own = (e.get("changeSource") == "INTEGRATION" and bool(settings.hubspot_app_id)
               and str(e.get("sourceId", "")) == str(settings.hubspot_app_id))
        events.append(StageEvent(account_id=str(e["portalId"]), deal_id=str(e["objectId"]),
                                 stage_id=str(e["propertyValue"]), event_key=str(e["eventId"]),
                                 own_change=own))
    return ParsedWebhook(events, ignored)
