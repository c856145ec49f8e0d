"""HubSpot's developer webhook-settings API (webhooks-v3.json, ``hapikey`` auth).

Each handler is called as ``handler(hub, request, app_id, secret)`` under the fake's lock,
once `HubSpotCrmApi` has checked the key and the app id; `secret` signs a new app's events.
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from sandbox.hubspot.errors import fail
from sandbox.hubspot.handlers import routes
from sandbox.hubspot.webhooks import WebhookHub, parse_subscription
from sandbox.kit.jsonio import json_response, read_object


def get_settings(hub: WebhookHub, request: Request, app_id: int, secret: str) -> Response:
    app = hub.find_app(app_id)
    if app is None or not app.target_url:
        fail(404, "OBJECT_NOT_FOUND", f"No webhook settings for app {app_id}")
    return json_response(app.render_settings())


def put_settings(hub: WebhookHub, request: Request, app_id: int, secret: str) -> Response:
    body = read_object(request)
    target, throttling = body.get("targetUrl"), body.get("throttling")
    if not isinstance(target, str) or not target.startswith(("https://", "http://")):
        fail(400, "VALIDATION_ERROR", "targetUrl must be an absolute URL")
    if not isinstance(throttling, dict) or not isinstance(
            throttling.get("maxConcurrentRequests"), int):
        fail(400, "VALIDATION_ERROR", "throttling.maxConcurrentRequests is required")
    app = hub.app(app_id, secret)
    app.target_url = target
    app.max_concurrent_requests = throttling["maxConcurrentRequests"]
    app.updated_ms = int(hub.clock.now() * 1000)
    return json_response(app.render_settings())


def get_subscriptions(hub: WebhookHub, request: Request, app_id: int, secret: str) -> Response:
    app = hub.find_app(app_id)
    subs = app.subscriptions if app is not None else []
    return json_response({"results": [s.render() for s in subs]})


def create_subscription(hub: WebhookHub, request: Request, app_id: int, secret: str) -> Response:
    body = read_object(request)
    event_type, property_name = body.get("eventType"), body.get("propertyName")
    if not isinstance(event_type, str):
        fail(400, "VALIDATION_ERROR", "eventType is required")
    spec = f"{event_type}:{property_name}" if property_name else event_type
    try:
        parsed_type, parsed_property = parse_subscription(spec)
    except ValueError as exc:
        fail(400, "VALIDATION_ERROR", str(exc))
    app = hub.app(app_id, secret)
    sub = hub.add_subscription(app, parsed_type, parsed_property, bool(body.get("active", False)))
    return json_response(sub.render(), status=201)


DEVELOPER = "developer"  # the route policy of the hapikey endpoints
ROUTES = [
    *routes("/webhooks/v3/<app_id>/settings", DEVELOPER, GET=get_settings, PUT=put_settings),
    *routes("/webhooks/v3/<app_id>/subscriptions", DEVELOPER, GET=get_subscriptions,
            POST=create_subscription),
]
