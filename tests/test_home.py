"""`/`: where a visitor lands - the sandbox console when `paydeck run` started one."""

from __future__ import annotations


def test_home_sends_a_visitor_to_the_sandbox_console_when_one_runs(app_factory):
    client = app_factory.create(sandbox_url="http://127.0.0.1:5001").test_client()

    response = client.get("/")

    assert response.status_code == 302 and response.headers["Location"] == "http://127.0.0.1:5001"


def test_home_without_a_sandbox_says_how_to_install(app_factory):
    client = app_factory.create().test_client()

    response = client.get("/")

    assert response.status_code == 200
    assert b"/install/hubspot" in response.data and b"/install/pipedrive" in response.data
