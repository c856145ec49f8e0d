"""Issue #14 section 7 in a real browser: the sandbox is a playground, not a replay.

A newcomer makes their own companies and deals (names with HTML and non-ASCII characters),
invoices them, pays more than is due in the mock Xero reached through Paydeck's own "Open in
Xero" link, meets the console's styled error pages, and a Pipedrive page renews its token
through the SDK's GET_SIGNED_TOKEN instead of expiring. Screenshots: test-artifacts/browser/."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Frame, Page, expect

from tests.browser.conftest import RunningSandbox, run_sandbox, shot
from tests.browser.test_sandbox_in_a_browser import SLOW, move, open_deal

pytestmark = pytest.mark.browser
# An HTML injection probe and non-ASCII text: shown as typed, never run.
COMPANY = '<img src=x onerror=alert(1)> Café "Ünïcode" & Co 東京'
DEAL = "<i>Été</i> retainer Ωmega 東京"


def new_hubspot_company(page: Page, console: str, name: str) -> None:
    page.goto(console)
    page.get_by_text("New HubSpot deal, company or product").click()
    form = page.get_by_role("form", name="New HubSpot company")
    form.get_by_label("Company name").fill(name)
    form.get_by_role("button", name="Create company").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def new_hubspot_deal(page: Page, console: str, name: str, company: str, product: str,
                     quantity: str, discount: str = "") -> None:
    page.goto(console)
    page.get_by_text("New HubSpot deal, company or product").click()
    form = page.get_by_role("form", name="New HubSpot deal")
    form.get_by_label("Deal name").fill(name)
    form.get_by_label("Company").select_option(label=company)
    form.get_by_label("Product").select_option(label=product)
    form.get_by_label("Quantity").fill(quantity)
    form.get_by_label("Discount %").fill(discount)
    form.get_by_role("button", name="Create deal").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def test_a_newcomers_own_deal_with_html_and_non_ascii_names_is_edited_and_invoiced(page, sandbox):
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    new_hubspot_company(page, sandbox.console, COMPANY)
    new_hubspot_deal(page, sandbox.console, DEAL, COMPANY, "SEO audit · 900.00", "3", "10")
    expect(page.get_by_role("status")).to_have_text("Deal created.")
    lines = page.get_by_role("form", name="Line item SEO audit")
    # SEO audit 900.00 x 3 less 10% = 2430.00; then 2 of them: 1800.00 less 10% = 1620.00.
    expect(page.get_by_role("row").filter(has=lines)).to_contain_text("2430")
    lines.get_by_label("Quantity").fill("2")
    lines.get_by_role("button", name="Save line").click()
    expect(page.get_by_role("status")).to_have_text("Line item saved.")
    expect(page.get_by_role("row").filter(has=lines)).to_contain_text("1620")
    card = page.frame_locator("#paydeck-frame")
    expect(card.get_by_role("cell", name="SEO audit")).to_be_visible()  # Paydeck's preview

    move(page, "Closed Won")
    expect(page.locator("#card-status")).to_have_text("Awaiting payment", timeout=SLOW)
    number = page.locator("#card-invoice").inner_text()
    shot(page, "playground-own-deal-invoiced")
    page.get_by_role("link", name="Xero", exact=True).click()
    row = page.locator(f'tr[data-invoice="{number}"]')
    expect(row.get_by_role("cell").nth(1)).to_have_text(COMPANY)  # the Xero contact, as typed
    # 1620.00 + GST on Income 10% (162.00) = 1782.00.
    expect(row.get_by_role("cell").nth(4)).to_have_text("AUD 1782.00")
    assert alerts == []  # the <img onerror> in the names never ran, here or in Paydeck


def test_open_in_xero_leads_to_the_mock_xero_which_takes_an_overpayment(page, sandbox):
    new_hubspot_deal(page, sandbox.console, "Hosting for Zoë", "Hooli Pty Ltd",
                     "Hosting (12 months) · 360.00", "1")
    move(page, "Closed Won")
    expect(page.locator("#card-status")).to_have_text("Awaiting payment", timeout=SLOW)
    card = page.frame_locator("#paydeck-frame")
    with page.expect_popup() as opened:
        card.get_by_role("link", name="Open in Xero").click()
    xero = opened.value
    expect(xero).to_have_url(re.compile(
        re.escape(sandbox.console) + r"/xero/AccountsReceivable/View\.aspx\?InvoiceID=[0-9a-f-]{36}$"))
    number = page.locator("#card-invoice").inner_text()
    expect(xero.get_by_role("heading", level=1)).to_contain_text(f"Invoice {number}")
    # 360.00 + 10% GST = 396.00 due; the customer sent 1,000.00.
    expect(xero.locator("#amount-due")).to_have_text("396.00")
    xero.get_by_label("Amount").fill("1,000.00")
    xero.get_by_role("button", name="Record payment").click()
    expect(xero.get_by_role("status")).to_contain_text(
        f"Payment of 396.00 recorded and 604.00 kept as an overpayment (a credit for the "
        f"contact) on {number}; webhook to Paydeck: HTTP 200.")
    expect(xero.get_by_role("heading", level=1)).to_contain_text("PAID")
    expect(xero.locator("#amount-due")).to_have_text("0.00")
    expect(xero.get_by_text(re.compile(r"Overpaid by AUD 604\.00"))).to_be_visible()
    shot(xero, "playground-xero-overpayment")
    expect(page.locator("#card-status")).to_have_text("Paid", timeout=SLOW)  # the card re-renders
    page.get_by_role("link", name="Xero", exact=True).click()
    credits = page.get_by_role("region", name="Demo Agency (HubSpot books)").get_by_role(
        "row").filter(has_text=number).filter(has_text="604.00")
    expect(credits).to_have_count(1)  # listed among the organisation's overpayments


def test_the_console_answers_with_its_own_pages_and_has_its_favicon(page, sandbox):
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.url.startswith(sandbox.console) else None)
    for path in ("/", "/xero"):
        page.goto(sandbox.console + path)
    open_deal(page, sandbox.console, "Initech intranet")
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert icon and page.request.get(sandbox.console + icon).status == 200
    assert page.request.get(sandbox.console + "/favicon.ico").headers["content-type"].startswith(
        "image/svg+xml")
    assert failed == []

    # A form sent with a value the page never offered: a styled 400, not Werkzeug's.
    page.locator("#stage").evaluate("s => { s.options[0].value = 'nope'; s.selectedIndex = 0; }")
    page.get_by_role("button", name="Move deal").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bad Request")
    expect(page.get_by_text("Choose a stage of the deal's pipeline.")).to_be_visible()
    expect(page.get_by_role("link", name="Back to the page you came from")).to_be_visible()
    expect(page.get_by_role("link", name="Xero", exact=True)).to_be_visible()  # the console's header
    shot(page, "playground-styled-400")

    page.goto(sandbox.console + "/no/such/page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not Found")
    expect(page.get_by_role("link", name="Back to the start page")).to_be_visible()


def paydeck_frame(page: Page) -> Frame:
    frame = page.locator("#paydeck-frame").element_handle().content_frame()
    assert frame is not None
    return frame


def test_an_expired_pipedrive_page_renews_itself_at_once(page, sandbox):
    """A page whose token is dead asks the SDK for a signed token and reopens its view."""
    open_deal(page, sandbox.console, "Initech intranet")
    deal_id = page.url.rsplit("/", 1)[1]
    commands = page.get_by_role("list", name="Pipedrive SDK commands")
    expect(commands).to_contain_text("initialize")
    dead = f"{sandbox.paydeck}/ui/deal/{deal_id}?t={'x' * 22}&pd=1"
    page.locator("#paydeck-frame").evaluate("(frame, url) => { frame.src = url; }", dead)

    expect(commands).to_contain_text("get_signed_token", timeout=SLOW)
    panel = page.frame_locator("#paydeck-frame")
    expect(panel.get_by_role("heading", level=1)).to_have_text(
        re.compile(r"^(Not invoiced yet|Invoice )"), timeout=SLOW)
    assert re.search(rf"/ui/deal/{deal_id}\?t=(?!x{{22}})", paydeck_frame(page).url)


@pytest.fixture(scope="module")
def short_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A sandbox whose card pages' tokens live 70 s (the least PAGE_TOKEN_SECONDS allows):
    Pipedrive's pages renew a minute before the end, so 10 s after opening."""
    with run_sandbox(tmp_path_factory.mktemp("sandbox-short-tokens"),
                     {"PAGE_TOKEN_SECONDS": "70"}) as running:
        yield running


def test_a_pipedrive_page_renews_its_token_before_it_expires(page, short_tokens):
    open_deal(page, short_tokens.console, "Globex hosting renewal")
    panel = page.frame_locator("#paydeck-frame")
    expect(panel.get_by_role("heading", level=1)).to_be_visible()
    first_url = paydeck_frame(page).url
    first_expiry = int(paydeck_frame(page).locator("body").get_attribute("data-expires-at") or 0)
    assert "/ui/deal/" in first_url and first_expiry > 0
    commands = page.get_by_role("list", name="Pipedrive SDK commands")

    expect(commands).to_contain_text("get_signed_token", timeout=40_000)
    renewed = paydeck_frame(page)
    for _ in range(120):  # the frame is Paydeck's origin: watch it from Playwright, not the page
        if renewed.url != first_url and "/ui/deal/" in renewed.url:
            break
        page.wait_for_timeout(250)
    renewed.wait_for_load_state()
    renewed = paydeck_frame(page)
    assert "/ui/deal/" in renewed.url and renewed.url != first_url
    assert int(renewed.locator("body").get_attribute("data-expires-at") or 0) > first_expiry
    expect(panel.get_by_role("heading", name="This view has expired")).to_have_count(0)
    expect(panel.get_by_role("heading", level=1)).to_be_visible()
    shot(page, "playground-pipedrive-token-renewed")
