"""Issue #14 point 8: every Paydeck page at the sizes the CRMs give it, screenshotted, and
audited with axe-core: no serious or critical accessibility violation anywhere.

The frame sizes:
- HubSpot's iframe modal: the sizes Paydeck's card asks `openIframeModal` for (Card.tsx:
  DEAL_MODAL 900x700, WIDE_MODAL 960x800). HubSpot's sidebar (the record's right column,
  where the app card sits) has no documented width; 320 px is the narrowest we design for.
- Pipedrive's custom panel: "The width is fixed for custom panels, while the height can be
  customized. The panel's height must be between 100px and 750px" (pipedrive.readme.io,
  Custom panels). The fixed width is not given in the docs: 320 px, like the sidebar.

Screenshots: test-artifacts/browser/look-<page>-<size>.png. The audit runs axe-core (pinned
in tests/browser/axe/package.json) in a context that lets its script in past the pages'
CSP; the CSP itself is checked by test_sandbox_in_a_browser.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import ARTIFACTS, ROOT
from tests.browser.test_sandbox_in_a_browser import SLOW, move, open_deal
from tests.browser.test_sandbox_playground import new_hubspot_deal

pytestmark = pytest.mark.browser
AXE = ROOT / "tests" / "browser" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"sidebar-320": (320, 700), "modal-900": (900, 700), "modal-960": (960, 800),
         "panel-320x100": (320, 100), "panel-320x750": (320, 750)}
SERIOUS = {"serious", "critical"}


@pytest.fixture
def audit_page(chromium: Browser) -> Iterator[Page]:
    if not AXE.exists():
        pytest.fail("axe-core is missing: `make test` installs it (npm ci in tests/browser/axe)")
    context = chromium.new_context(bypass_csp=True, viewport={"width": 900, "height": 700})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def frame_url(page: Page) -> str:
    src = page.locator("#paydeck-frame").get_attribute("src")
    assert src, "the mock CRM record embeds no Paydeck page"
    return src


def serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in SERIOUS]


def look(page: Page, url: str, name: str, sizes: tuple[str, ...] = tuple(SIZES)) -> list[Path]:
    """Open `url` at each size, keep a screenshot, and fail on a serious violation or a
    page wider than its frame (a horizontal scrollbar inside a CRM iframe)."""
    shots = []
    for size in sizes:
        width, height = SIZES[size]
        page.set_viewport_size({"width": width, "height": height})
        page.goto(url)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"look-{name}-{size}.png"
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} at {size}: {overflow} px wider than its frame"
        assert serious_violations(page) == [], f"{name} at {size}"
    return shots


def test_deal_pages_in_each_state_look_right_and_pass_axe(page, audit_page, sandbox):
    """The deal card before invoicing, as a draft, part-paid, paid and voided. The deals are
    this test's own (made in the console), so the demo deals stay as other tests expect."""
    rebuild, audit = "Look: Initech rebuild", "Look: Globex audit"
    new_hubspot_deal(page, sandbox.console, rebuild, "Initech Pty Ltd",
                     "Website design · 2400.00", "1")
    page.get_by_role("form", name="Add a line item").get_by_label("Product").select_option(
        label="Hosting (12 months) · 360.00")
    page.get_by_role("button", name="Add line item").click()
    expect(page.get_by_role("status")).to_have_text("Line item added.")
    # 2400.00 + 360.00 = 2760.00, + GST 10% = 3036.00: "1,000.00" is a part payment.
    look(audit_page, frame_url(page), "deal-preview")
    move(page, "Contract Sent")
    expect(page.locator("#card-status")).to_have_text("Draft", timeout=SLOW)
    look(audit_page, frame_url(page), "deal-draft")

    move(page, "Closed Won")
    expect(page.locator("#card-status")).to_have_text("Awaiting payment", timeout=SLOW)
    number = page.locator("#card-invoice").inner_text()
    page.get_by_role("link", name="Xero", exact=True).click()
    row = page.locator(f'tr[data-invoice="{number}"]')
    row.get_by_label("Amount").fill("1,000.00")
    row.get_by_role("button", name="Record payment").click()
    expect(page.get_by_role("status")).to_contain_text("webhook to Paydeck: HTTP 200")
    open_deal(page, sandbox.console, rebuild)
    # xero/status.py LABELS: what the card calls an invoice with some of it paid.
    expect(page.locator("#card-status")).to_have_text("Partially paid", timeout=SLOW)
    look(audit_page, frame_url(page), "deal-part-paid")

    page.get_by_role("link", name="Xero", exact=True).click()
    page.locator(f'tr[data-invoice="{number}"]').get_by_role("button", name="Record payment").click()
    expect(page.get_by_role("status")).to_contain_text("webhook to Paydeck: HTTP 200")
    open_deal(page, sandbox.console, rebuild)
    expect(page.locator("#card-status")).to_have_text("Paid", timeout=SLOW)
    look(audit_page, frame_url(page), "deal-paid")

    new_hubspot_deal(page, sandbox.console, audit, "Globex Corporation", "SEO audit · 900.00",
                     "2")
    move(page, "Closed Won")
    expect(page.locator("#card-status")).to_have_text("Awaiting payment", timeout=SLOW)
    voided = page.locator("#card-invoice").inner_text()
    page.get_by_role("link", name="Xero", exact=True).click()
    page.locator(f'tr[data-invoice="{voided}"]').get_by_role("button", name="Void").click()
    expect(page.get_by_role("status")).to_contain_text("webhook to Paydeck: HTTP 200")
    open_deal(page, sandbox.console, audit)
    expect(page.locator("#card-status")).to_have_text("Voided", timeout=SLOW)
    look(audit_page, frame_url(page), "deal-voided")


def test_company_settings_and_review_pages_look_right_and_pass_axe(page, audit_page, sandbox):
    page.goto(sandbox.console)
    page.get_by_role("link", name="Initech Pty Ltd").first.click()
    look(audit_page, frame_url(page), "company")
    page.goto(sandbox.console)
    page.get_by_role("link", name="HubSpot settings").click()
    look(audit_page, frame_url(page), "settings", ("modal-900", "modal-960"))  # modal / settings surface
    page.get_by_role("link", name="Review queue").click()
    look(audit_page, frame_url(page), "review", ("modal-900", "modal-960"))  # modal in both CRMs


def test_the_expired_view_page_looks_right_and_passes_axe(audit_page, sandbox):
    look(audit_page, f"{sandbox.paydeck}/ui/deal/1?t={'x' * 22}", "expired", ("sidebar-320", "modal-900"))
    expect(audit_page.get_by_role("heading", name="This view has expired")).to_be_visible()


def test_the_sandbox_console_passes_axe(audit_page, sandbox):
    """The newcomer's playground is a page too."""
    for name, path in (("console-start", "/"), ("console-xero", "/xero"),
                       ("console-not-found", "/no/such/page")):
        audit_page.set_viewport_size({"width": 1280, "height": 900})
        audit_page.goto(sandbox.console + path)
        audit_page.screenshot(path=str(ARTIFACTS / f"look-{name}.png"), full_page=True)
        assert serious_violations(audit_page) == [], name


def test_the_xero_connect_pages_pass_axe(audit_page, app_factory, fake_hubspot, fake_xero):
    """The pages outside the CRM frames: the organisation chooser (a Xero sign-in with two
    organisations) and the connect confirmation that a settings page's "Switch organisation"
    opens in a new window. Paydeck is served on loopback against the fakes (tests/conftest.py)."""
    from tests.conftest import fake_settings

    fake, _ = fake_xero
    fake.add_tenant("Acme Pty Ltd")
    fake.add_tenant("Acme NZ Ltd")
    _, url = app_factory.serve(**fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    page = audit_page
    page.set_viewport_size({"width": 900, "height": 700})
    page.goto(f"{url}/install/hubspot")
    page.goto(f"{url}/connect/xero")
    expect(page).to_have_url(f"{url}/connect/xero/organisation")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "look-choose-organisation.png"), full_page=True)
    assert serious_violations(page) == [], "organisation chooser"

    page.get_by_label("Acme NZ Ltd").check()
    page.get_by_role("button", name="Use this organisation").click()
    expect(page.get_by_role("button", name="Switch organisation")).to_be_visible()
    assert serious_violations(page) == [], "settings after connecting"
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Switch organisation").click()
    confirmation = opened.value
    confirmation.wait_for_load_state()
    confirmation.screenshot(path=str(ARTIFACTS / "look-connect-xero.png"), full_page=True)
    expect(confirmation.get_by_role("heading", level=1)).to_contain_text("to Xero?")
    assert serious_violations(confirmation) == [], "connect confirmation"
