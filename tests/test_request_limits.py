"""Issue #12: request size limits, checks before reading a body, deep JSON, HSTS.

Each test reproduces the attack over HTTP (Flask's test client speaks WSGI, as gunicorn does)
and sees it refused with nothing recorded."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest

from app.models import DealSyncRequest, WebhookReceipt
from crm_adapters.hubspot import sign_v3
from tests.helpers import count
from tests.test_webhooks import SECRET, event, hub, post_hubspot  # noqa: F401 (fixture)

URL = "http://paydeck.invalid/webhooks/hubspot"


class CountingStream(io.BytesIO):
    """A request body that remembers how much of it the app read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readline(self, size: int | None = -1) -> bytes:
        chunk = super().readline(size)
        self.consumed += len(chunk)
        return chunk


def _signed_headers(raw: bytes) -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    return {"X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", URL, raw, ts),
            "X-HubSpot-Request-Timestamp": ts}


def _nothing_recorded(flask_app) -> bool:
    return count(flask_app, WebhookReceipt) == 0 and count(flask_app, DealSyncRequest) == 0


def test_a_validly_signed_20_mb_webhook_is_413_and_unread(hub):
    flask_app, _, _ = hub
    padding = "x" * (20 * 1024 * 1024)
    raw = json.dumps([event("1", note=padding)]).encode()
    stream = CountingStream(raw)

    response = flask_app.test_client().post(
        "/webhooks/hubspot", input_stream=stream, content_type="application/json",
        headers={**_signed_headers(raw), "Content-Length": str(len(raw))})

    assert response.status_code == 413
    assert "too large" in response.get_json()["error"]
    assert stream.consumed == 0  # refused on the declared length, before reading
    assert _nothing_recorded(flask_app)


def test_a_body_just_under_the_webhook_limit_is_still_read(hub):
    flask_app, _, _ = hub
    body = [event("1", note="x" * (1024 * 1024))]  # 1 MB: under the 2 MB default

    assert post_hubspot(flask_app.test_client(), body).status_code == 200
    assert count(flask_app, DealSyncRequest) == 1


def test_an_unsigned_large_post_is_401_without_reading_the_body(hub):
    flask_app, _, _ = hub
    raw = b"[" + b"1," * 500_000 + b"1]"  # ~1 MB, under the limit: only auth can stop it
    stream = CountingStream(raw)

    response = flask_app.test_client().post(
        "/webhooks/hubspot", input_stream=stream, content_type="application/json",
        headers={"Content-Length": str(len(raw))})

    assert response.status_code == 401
    assert stream.consumed == 0
    assert _nothing_recorded(flask_app)


def test_a_stale_timestamp_is_401_without_reading_the_body(hub):
    flask_app, _, _ = hub
    raw = json.dumps([event("1")]).encode()
    stale = str(int(time.time() * 1000) - 6 * 60 * 1000)  # HubSpot: reject older than 5 min
    stream = CountingStream(raw)

    response = flask_app.test_client().post(
        "/webhooks/hubspot", input_stream=stream, content_type="application/json",
        headers={"Content-Length": str(len(raw)), "X-HubSpot-Request-Timestamp": stale,
                 "X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", URL, raw, stale)})

    assert response.status_code == 401 and stream.consumed == 0


def test_a_pipedrive_post_with_wrong_credentials_is_401_without_reading_the_body(hub):
    flask_app, _, piped_id = hub
    raw = json.dumps({"meta": {}, "data": {"x": "y" * 100_000}}).encode()
    stream = CountingStream(raw)
    wrong = base64.b64encode(b"hookuser:guess").decode()

    response = flask_app.test_client().post(
        f"/webhooks/pipedrive/{piped_id}", input_stream=stream, content_type="application/json",
        headers={"Content-Length": str(len(raw)), "Authorization": f"Basic {wrong}"})

    assert response.status_code == 401 and stream.consumed == 0
    assert _nothing_recorded(flask_app)


def test_a_xero_post_without_a_signature_is_401_without_reading_the_body(hub):
    flask_app, _, _ = hub
    raw = b'{"events": []}' + b" " * 100_000
    stream = CountingStream(raw)

    response = flask_app.test_client().post(
        "/webhooks/xero", input_stream=stream, content_type="application/json",
        headers={"Content-Length": str(len(raw))})

    assert response.status_code == 401 and stream.consumed == 0


def test_150_mb_unauthenticated_posts_are_413_before_anything_is_read(hub):
    flask_app, _, piped_id = hub
    declared = str(150 * 1024 * 1024)
    for path in ("/webhooks/hubspot", f"/webhooks/pipedrive/{piped_id}", "/webhooks/xero",
                 "/install/hubspot", "/ui/settings/1"):
        stream = CountingStream(b"{}")
        response = flask_app.test_client().post(path, input_stream=stream,
                                                environ_overrides={"CONTENT_LENGTH": declared})
        assert response.status_code == 413, path
        assert stream.consumed == 0, path


def test_forms_have_a_smaller_limit_than_webhooks(hub):
    flask_app, _, _ = hub
    big_form = {"field": "x" * (300 * 1024)}  # over the 256 KiB form default

    response = flask_app.test_client().post("/ui/settings/1", data=big_form)

    assert response.status_code == 413


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_in_a_signed_webhook_is_400(hub, depth):
    flask_app, _, piped_id = hub
    nested = ("[" * depth + "]" * depth).encode()

    hubspot = post_hubspot(flask_app.test_client(), nested)
    auth = base64.b64encode(b"hookuser:hook-password").decode()
    pipedrive = flask_app.test_client().post(
        f"/webhooks/pipedrive/{piped_id}", data=nested, content_type="application/json",
        headers={"Authorization": f"Basic {auth}"})

    assert hubspot.status_code == 400 and pipedrive.status_code == 400
    assert "JSON" in hubspot.get_json()["error"] or "nested" in hubspot.get_json()["error"]
    assert _nothing_recorded(flask_app)


def test_hsts_only_when_served_over_https(app_factory):
    secure = app_factory.create(public_url="https://paydeck.example.com")
    plain = app_factory.create(public_url="http://127.0.0.1:5000")

    assert secure.test_client().get("/healthz").headers["Strict-Transport-Security"] \
        == "max-age=31536000; includeSubDomains"
    assert "Strict-Transport-Security" not in plain.test_client().get("/healthz").headers
