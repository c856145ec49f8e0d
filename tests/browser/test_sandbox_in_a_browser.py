"""What a newcomer does in the sandbox, in a real browser: the mock CRM record embeds
Paydeck's real card pages; every step goes through the fakes' webhooks, the worker and the
API clients. Screenshots: test-artifacts/browser/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import shot

pytestmark = pytest.mark.browser
SLOW = 30_000  # ms: a webhook, a job and a writeback (about a second here) with room to spare


def open_deal(page: Page, console: str, title: str) -> None:
    page.goto(console)
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible()


def move(page: Page, stage: str) -> None:
    page.get_by_label(re.compile("stage", re.I)).select_option(label=stage)
    page.get_by_role("button", name="Move deal").click()
    expect(page.get_by_role("status")).to_contain_text("moved")


def test_a_hubspot_deal_is_invoiced_by_stage_and_turns_paid_after_a_payment_in_xero(page, sandbox):
    open_deal(page, sandbox.console, "Initech website rebuild")
    card = page.frame_locator("#paydeck-frame")
    # Before the first push: a preview of what would be sent.
    expect(card.get_by_role("cell", name="Website design")).to_be_visible()
    expect(card.get_by_role("button", name="Push to Xero")).to_be_visible()

    move(page, "Contract Sent")
    expect(page.locator("#card-status")).to_have_text("Draft", timeout=SLOW)
    move(page, "Closed Won")
    expect(page.locator("#card-status")).to_have_text("Awaiting payment", timeout=SLOW)
    number = page.locator("#card-invoice").inner_text()
    expect(card.get_by_role("heading", name=re.compile(number))).to_be_visible()
    expect(page.locator("#prop-invoice-number")).to_have_text(number)  # written onto the deal
    shot(page, "hubspot-deal-awaiting-payment")

    page.get_by_role("link", name="Xero", exact=True).click()
    row = page.locator(f'tr[data-invoice="{number}"]')
    expect(row.locator(".invoice-status")).to_have_text("AUTHORISED")
    row.get_by_role("button", name="Record payment").click()
    expect(page.get_by_role("status")).to_contain_text("webhook to Paydeck: HTTP 200")
    expect(page.locator(f'tr[data-invoice="{number}"] .invoice-status')).to_have_text("PAID")
    shot(page, "xero-payment-recorded")

    open_deal(page, sandbox.console, "Initech website rebuild")
    expect(page.locator("#card-status")).to_have_text("Paid", timeout=SLOW)
    expect(page.frame_locator("#paydeck-frame").get_by_text("Paid").first).to_be_visible()
    expect(page.locator("#prop-invoice-status")).to_have_text("Paid")
    shot(page, "hubspot-deal-paid")


def test_the_push_button_in_the_pipedrive_panel_invoices_the_existing_xero_contact(page, sandbox):
    open_deal(page, sandbox.console, "Globex hosting renewal")
    panel = page.frame_locator("#paydeck-frame")
    questions: list[str] = []
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))

    panel.get_by_role("button", name="Push to Xero").click()

    # The deal's stage has no rule: a manual push makes a draft, and the question says so.
    assert questions and questions[0].startswith("Create a draft invoice in Xero?"), questions
    expect(panel.get_by_role("status")).to_contain_text("Creating a draft invoice in Xero")
    # Paydeck writes the invoice onto the Pipedrive deal; the mock record re-renders.
    expect(page.frame_locator("#paydeck-frame").get_by_text("Draft", exact=True).first).to_be_visible(
        timeout=SLOW)
    shot(page, "pipedrive-deal-pushed")
    page.get_by_role("link", name="Xero", exact=True).click()
    books = page.get_by_role("region", name="Demo Agency (Pipedrive books)")
    expect(books.get_by_role("row", name=re.compile("Globex Corporation"))).to_have_count(1)
    expect(books.get_by_role("row", name=re.compile(r"Pipedrive \S+ deal \S+"))).to_have_count(1)


def test_settings_are_saved_from_the_settings_page(page, sandbox):
    page.goto(sandbox.console)
    page.get_by_role("link", name="Pipedrive settings").click()
    settings = page.frame_locator("#paydeck-frame")
    expect(settings.get_by_role("heading", name="When a deal enters a stage")).to_be_visible()
    # Pipelines and stages come from the CRM, accounts and tax rates from Xero.
    expect(settings.get_by_label(re.compile(r": Won$"))).to_have_value("authorise")
    settings.get_by_label("Days").fill("30")
    settings.get_by_label("Payment terms", exact=True).select_option(label="days after the invoice date")
    settings.get_by_role("button", name="Save settings").click()

    expect(settings.get_by_role("status")).to_have_text("Saved.")
    page.reload()  # what was saved is what the page now shows
    expect(page.frame_locator("#paydeck-frame").get_by_label("Days")).to_have_value("30")
    shot(page, "pipedrive-settings-saved")


def test_a_deal_in_the_review_queue_is_fixed_in_settings_and_retried_from_the_card(page, sandbox):
    open_deal(page, sandbox.console, "Hooli emergency call-out")
    move(page, "Closed Won")
    # The job files a review item; the card (re-rendered when the deal changes) lists it.
    item = page.frame_locator("#paydeck-frame").get_by_role("listitem").filter(
        has_text="the deal has no line items")
    expect(item.get_by_role("button", name="Retry")).to_be_visible(timeout=SLOW)
    shot(page, "hubspot-deal-needs-attention")

    page.get_by_role("link", name="HubSpot settings").click()
    settings = page.frame_locator("#paydeck-frame")
    settings.get_by_label("A deal with no line items becomes a one-line invoice").check()
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_role("status")).to_have_text("Saved.")

    page.get_by_role("link", name="Review queue").click()
    queue = page.frame_locator("#paydeck-frame")
    expect(queue.get_by_text("the deal has no line items")).to_have_count(1)
    open_deal(page, sandbox.console, "Hooli emergency call-out")
    page.frame_locator("#paydeck-frame").get_by_role("button", name="Retry").click()
    expect(page.locator("#card-status")).to_have_text("Awaiting payment", timeout=SLOW)
    expect(page.frame_locator("#paydeck-frame").get_by_text("Needs attention")).to_have_count(0)
    shot(page, "hubspot-review-item-retried")


def test_a_company_is_found_in_xero_by_search_and_linked_from_its_card(page, sandbox):
    page.goto(sandbox.console)
    page.get_by_role("link", name="Initech Pty Ltd").last.click()  # the Pipedrive organization
    card = page.frame_locator("#paydeck-frame")
    expect(card.get_by_role("heading", name="Not linked to Xero yet")).to_be_visible()

    card.get_by_label("Find a Xero contact").fill("globex")
    card.get_by_role("button", name="Search").click()
    result = card.get_by_role("listitem").filter(has_text="Globex Corporation")
    expect(result).to_be_visible()
    questions: list[str] = []  # issue #14: linking asks first
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    result.get_by_role("button", name="Link").click()

    expect(card.get_by_role("heading", name="Linked to Globex Corporation")).to_be_visible()
    assert questions and questions[0].startswith("Link this company to the Xero contact Globex Corporation?")
    expect(card.get_by_role("status")).to_contain_text("Linked")
    shot(page, "pipedrive-organization-linked")


def test_the_pipedrive_panel_runs_paydecks_own_sdk_copy_and_opens_the_review_queue_modal(page, sandbox):
    """The SDK comes from Paydeck (no CDN: every request off loopback is refused here) and
    really talks to its host: the fake Pipedrive answers INITIALIZE and OPEN_MODAL."""
    outside: list[str] = []
    page.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"),
               lambda route: (outside.append(route.request.url), route.abort()))
    open_deal(page, sandbox.console, "Globex hosting renewal")
    commands = page.get_by_role("list", name="Pipedrive SDK commands")
    expect(commands).to_contain_text("initialize")

    page.frame_locator("#paydeck-frame").get_by_role("link", name="Open the review queue").click()

    expect(commands).to_contain_text("open_modal: Paydeck review queue")
    modal = page.frame_locator("#pipedrive-modal-frame")
    expect(modal.get_by_role("heading", name="Needs attention")).to_be_visible()
    expect(commands.get_by_role("listitem").filter(has_text="initialize")).to_have_count(2)
    shot(page, "pipedrive-review-queue-modal")
    assert outside == []


def test_paydecks_pages_run_under_their_csp_with_no_violation(page, sandbox):
    """Issue #12: script-src and style-src 'self' with nothing inline. Chromium reports every
    blocked script, style or frame on the console: none may appear, and the stylesheet (a
    file now, not a <style> block) must have applied."""
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    open_deal(page, sandbox.console, "Initech website rebuild")
    card = page.frame_locator("#paydeck-frame")
    # Paid by an earlier test of the session or not: a paid invoice offers no push, so wait
    # for the page's heading, not its button.
    expect(card.get_by_role("heading", level=1)).to_be_visible()
    expect(card.locator("main")).to_have_css("max-width", "896px")  # 56rem from pages.css
    page.get_by_role("link", name="HubSpot settings").click()
    settings = page.frame_locator("#paydeck-frame")
    expect(settings.get_by_role("button", name="Save settings")).to_be_visible()
    expect(settings.locator("input[name=terms_days]")).to_have_css("width", "80px")  # .narrow
    page.get_by_role("link", name="Review queue").click()
    expect(page.frame_locator("#paydeck-frame").get_by_role("heading", name="Needs attention")).to_be_visible()

    assert refused == []
