"""Issue #12: bad input never gives a 500. Every route of the app, called with garbage in its
path, query and form, answers 4xx (or a page), never a server error."""

from __future__ import annotations

import pytest

GARBAGE_QUERY = {"t": "garbage", "token": "x.y.z", "status": "bogus", "since": "²",
                 "deal": "\u0000", "q": "' OR 1=1 --", "code": "c", "state": "s" * 300,
                 "portalId": "²", "objectId": "-1", "objectType": "<script>", "id": "²",
                 "userId": "1", "companyId": "1", "tenant": "x"}
PATH_VALUES = {"int": "424242", "default": "²"}


def _routes(flask_app):
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        values = {arg: PATH_VALUES["int"] if rule._converters[arg].__class__.__name__ == "IntegerConverter"
                  else (sorted(rule._converters[arg].items)[0]  # any(...) converter
                        if hasattr(rule._converters[arg], "items") else PATH_VALUES["default"])
                  for arg in rule.arguments}
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_every_route_answers_garbage_without_a_server_error(app_factory):
    flask_app = app_factory.create(hubspot_client_id="id", hubspot_client_secret="secret",
                                   pipedrive_client_id="id", pipedrive_client_secret="secret",
                                   xero_client_id="id", xero_client_secret="secret",
                                   xero_webhook_key="key")
    client = flask_app.test_client()
    routes = list(_routes(flask_app))
    assert len(routes) > 20  # every blueprint is registered
    failures = []
    for method, path in routes:
        if method == "GET":
            response = client.get(path, query_string=GARBAGE_QUERY)
        else:
            response = client.open(path, method=method, query_string=GARBAGE_QUERY,
                                   data={**GARBAGE_QUERY, "csrf_token": "x"},
                                   headers={"Authorization": "Basic Z2FyYmFnZQ=="})
        if response.status_code >= 500:
            failures.append((method, path, response.status_code))
    assert failures == []


@pytest.mark.parametrize("body", [b"\xff\xfe", b"{" * 10, b'{"events": "x"}', b"null"])
def test_webhooks_with_garbage_bodies_are_4xx(app_factory, body):
    flask_app = app_factory.create(hubspot_client_secret="secret", xero_webhook_key="key")
    client = flask_app.test_client()
    for path in ("/webhooks/hubspot", "/webhooks/xero", "/webhooks/pipedrive/1"):
        response = client.post(path, data=body, content_type="application/json")
        assert 400 <= response.status_code < 500, path
