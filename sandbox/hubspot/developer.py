"""HubSpot's developer webhook-settings API (webhooks-v3.json, ``hapikey`` auth).

Each handler is called as ``handler(api, request, app_id)`` under the fake's lock, once
`HubSpotCrmApi` has checked the key and the app id.
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from sandbox.hubspot.errors import fail
from sandbox.hubspot.context import CrmHost, routes
from sandbox.hubspot.webhooks import parse_subscription
from sandbox.kit.jsonio import json_response, read_object


def get_settings(api: CrmHost, request: Request, app_id: int) -> Response:
    app = api.webhooks.find_app(app_id)
    if app is None or not app.target_url:
        fail(404, "OBJECT_NOT_FOUND", f"No webhook settings for app {app_id}")
    return json_response(app.render_settings())


def put_settings(api: CrmHost, request: Request, app_id: int) -> Response:
    body = read_object(request)
    target, throttling = body.get("targetUrl"), body.get("throttling")
    if not isinstance(target, str) or not target.startswith(("https://", "http://")):
        fail(400, "VALIDATION_ERROR", "targetUrl must be an absolute URL")
    if not isinstance(throttling, dict) or not isinstance(
            throttling.get("maxConcurrentRequests"), int):
        fail(400, "VALIDATION_ERROR", "throttling.maxConcurrentRequests is required")
    app = api.webhooks.app(app_id, api.secret_for(app_id))
    app.target_url = target
    app.max_concurrent_requests = throttling["maxConcurrentRequests"]
    app.updated_ms = int(api.clock.now() * 1000)
    return json_response(app.render_settings())


def get_subscriptions(api: CrmHost, request: Request, app_id: int) -> Response:
    app = api.webhooks.find_app(app_id)
    subs = app.subscriptions if app is not None else []
    return json_response({"results": [s.render() for s in subs]})


def create_subscription(api: CrmHost, request: Request, app_id: int) -> Response:
    body = read_object(request)
    event_type, property_name = body.get("eventType"), body.get("propertyName")
    if not isinstance(event_type, str):
        fail(400, "VALIDATION_ERROR", "eventType is required")
    spec = f"{event_type}:{property_name}" if property_name else event_type
    try:
        parsed_type, parsed_property = parse_subscription(spec)
    except ValueError as exc:
        fail(400, "VALIDATION_ERROR", str(exc))
    app = api.webhooks.app(app_id, api.secret_for(app_id))
    sub = api.webhooks.add_subscription(app, parsed_type, parsed_property,
                                        bool(body.get("active", False)))
    return json_response(sub.render(), status=201)


DEVELOPER = "developer"  # the route policy of the hapikey endpoints
ROUTES = [
    *routes("/webhooks/v3/<app_id>/settings", DEVELOPER, GET=get_settings, PUT=put_settings),
    *routes("/webhooks/v3/<app_id>/subscriptions", DEVELOPER, GET=get_subscriptions,
            POST=create_subscription),
]
