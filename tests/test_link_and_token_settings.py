"""Two settings issue #14 section 7 adds: where "Open in Xero" leads (XERO_APP_BASE: Xero's
web app, or the sandbox's mock Xero) and how long a card page's token lives
(PAGE_TOKEN_SECONDS: the sandbox's browser test renews a Pipedrive page with a short one)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from pydantic import ValidationError

from app.invoice_results import apply_invoice_result
from app.models import InvoiceLink
from app.ui_auth import View, issue_view_token, read_view_token
from xero.client import InvoiceResult

INVOICE_ID = "0f8e2a5c-1b3d-4e6f-8a9b-0c1d2e3f4a5b"


def result() -> InvoiceResult:
    return InvoiceResult("HubSpot 1 deal 2", INVOICE_ID, "INV-0007", "AUTHORISED", "AUD",
                         Decimal("396.00"), Decimal("396.00"), Decimal("0"), None, None)


@pytest.mark.parametrize("base, expected", [
    (None, "https://go.xero.com"),  # Xero's deep link to an invoice
    ("http://127.0.0.1:5001/xero/", "http://127.0.0.1:5001/xero"),  # the sandbox console
])
def test_open_in_xero_follows_xero_app_base(app_factory, base, expected) -> None:
    app = app_factory.create(**({"xero_app_base": base} if base else {}))
    link = InvoiceLink()
    with app.app_context():
        apply_invoice_result(link, result())
    assert link.online_url == f"{expected}/AccountsReceivable/View.aspx?InvoiceID={INVOICE_ID}"


def test_a_card_page_token_lives_page_token_seconds(app_factory) -> None:
    app = app_factory.create(page_token_seconds=75)
    view = View(1, "u@example.com", "deal", "42")
    with app.test_request_context("/ui/deal/42"):
        before = time.time()
        token = issue_view_token(view)
        expires = read_view_token(token, "deal", "42").not_after
    assert before + 74 <= expires <= before + 76


def test_page_token_seconds_outlives_pipedrives_renewal_margin(app_factory) -> None:
    # Pipedrive's pages renew 60 s before the end (app/static/js/pipedrive.js RENEW_EARLY_S).
    with pytest.raises(ValidationError):
        app_factory.settings(page_token_seconds=60)
