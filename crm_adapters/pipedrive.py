"""Pipedrive: install identity, webhooks, deals in, invoice fields out (API v2)."""

from __future__ import annotations

import base64
import hmac
import json

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
    """The company behind a token: GET {api_domain}/api/v1/users/me -> data.company_id.

    The token response carries `api_domain`, the company's own base URL (platform-facts).
    """
    api_domain = str(token.get("api_domain") or "").rstrip("/")
    if not api_domain.startswith(("https://", "http://")):
        raise CrmError("Pipedrive token response has no api_domain")
    try:
        response = requests.get(f"{api_domain}/api/v1/users/me", timeout=settings.http_timeout,
                                headers={"Authorization": f"Bearer {token['access_token']}"})
    except requests.RequestException as exc:
        raise CrmError(f"Pipedrive unreachable: {exc.__class__.__name__}") from exc
    if response.status_code != 200:
        raise CrmError(f"Pipedrive users/me answered {response.status_code}", response.status_code)
    data = response.json()["data"]
    return AccountIdentity(account_id=str(data["company_id"]),
                           account_name=data.get("company_name", ""),
                           user=data.get("email", ""), api_domain=api_domain)


# --- webhooks ---------------------------------------------------------------------------------
# Pipedrive webhooks authenticate with HTTP Basic only, no signature (pipedrive.readme.io
# webhooks-v2): every installation has its own random user and password, compared in
# constant time. Body: {meta, data, previous}; `previous` holds only the changed fields.

def verify_webhook(req: WebhookRequest, user: str, password: str | None) -> None:
    if not user or not password:
        raise WebhookRejected(401, "installation has no webhook credentials")
    header = req.headers.get("Authorization", "")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if not hmac.compare_digest(header.encode(), expected.encode()):
        raise WebhookRejected(401, "bad credentials")


def parse_webhook(req: WebhookRequest) -> ParsedWebhook:
    """One event per request; Paydeck acts when a deal's stage_id changed (or a deal was
    created in a stage)."""
    try:
        payload = json.loads(req.body)
    except ValueError as exc:
        raise WebhookRejected(400, "body is not JSON") from exc
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict) or not isinstance(payload.get("data") or {}, dict):
        raise WebhookRejected(400, "body has no meta object")
    data = payload.get("data") or {}
    previous = payload.get("previous") or {}
    changed_stage = meta.get("action") == "change" and isinstance(previous, dict) and "stage_id" in previous
    created = meta.get("action") == "create"
    if (meta.get("entity") != "deal" or not (changed_stage or created)
            or data.get("stage_id") in (None, "") or not meta.get("entity_id")):
        return ParsedWebhook([], 1)
    key = str(meta.get("id") or meta.get("correlation_id") or "")
    if not key:
        raise WebhookRejected(400, "event has no id")
    return ParsedWebhook([StageEvent(account_id=str(meta.get("company_id", "")),
                                     deal_id=str(meta["entity_id"]), stage_id=str(data["stage_id"]),
                                     event_key=key)], 0)
