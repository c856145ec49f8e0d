"""Issue #14 points 3 and 7: a person never meets Werkzeug's bare error page. Pages' errors
are styled Paydeck pages that keep their status and headers; machine callers (webhooks,
HubSpot's signed card fetch, health checks) keep their plain answers."""

from __future__ import annotations


def test_an_expired_page_token_gets_the_styled_expired_page(app):
    client = app.test_client()
    response = client.get("/ui/deal/42?t=" + "x" * 22)
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "<title>This view has expired · Paydeck</title>" in page
    assert "This view has expired, reopen the card." in page
    assert "pages.css" in page  # styled like every page
    assert "Unauthorized" not in page  # not Werkzeug's page


def test_bad_input_on_a_page_says_what_was_wrong_in_a_styled_page(app):
    client = app.test_client()
    response = client.get("/ui/review/1?t=bogus&status=bogus")
    assert response.status_code == 401  # the token is checked before the filters
    assert "pages.css" in response.get_data(as_text=True)


def test_unknown_pages_and_wrong_methods_are_styled_and_keep_allow(app):
    client = app.test_client()
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.get_data(as_text=True)
    wrong = client.get("/ui/deal/42/push")
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["Allow"]
    assert "<h1>Not available this way</h1>" in wrong.get_data(as_text=True)


def test_machine_callers_keep_their_plain_answers(app):
    client = app.test_client()
    forged = client.post("/webhooks/xero", data=b"{}", headers={"x-xero-signature": "forged"})
    assert forged.status_code == 401 and forged.data == b""  # Xero's intent-to-receive check
    card = client.get("/hubspot/card?portalId=1&objectId=2")
    assert card.status_code == 401 and card.is_json


def test_the_favicon_is_served(app):
    client = app.test_client()
    assert client.get("/static/favicon.svg").status_code == 200
    assert client.get("/favicon.ico", follow_redirects=True).status_code == 200
