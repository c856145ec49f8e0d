"""The marketplace manifests (app_manifest/): well-formed, in step with the code's scopes and
webhook handling, and every URL on Paydeck's placeholder host is a real route of the app."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, RequestRedirect

from app.factory import create_app
from app.settings import HUBSPOT_SCOPES, PIPEDRIVE_SCOPES, Settings
from app.wiring import hubspot_config, pipedrive_config
from domain.crm import WebhookRequest
from crm_adapters.hubspot import COMPANY_PROPERTIES, parse_webhook
from crm_adapters.pipedrive import PipedriveCrm
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "app_manifest"
HUBSPOT = MANIFESTS / "hubspot"
SRC = HUBSPOT / "src"
CARDS = SRC / "app" / "cards"
HOST = "paydeck.example.com"
ORIGIN = f"https://{HOST}"
URL_RE = re.compile(r"https?://[^\s\"'`]+")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def manifest_files(pattern: str) -> list[Path]:
    """Checked-in files under app_manifest/ (not an npm install's node_modules)."""
    return sorted(p for p in MANIFESTS.rglob(pattern)
                  if p.is_file() and "node_modules" not in p.relative_to(MANIFESTS).parts)


def card_sources() -> list[Path]:
    """The card's own TypeScript (what HubSpot bundles), not its tests."""
    return [p for p in manifest_files("*.ts*") if p.suffix in (".ts", ".tsx")
            and not p.name.endswith((".test.ts", ".test.tsx"))]


@pytest.fixture(scope="module")
def hsproject() -> dict[str, Any]:
    return load(HUBSPOT / "hsproject.json")


@pytest.fixture(scope="module")
def app_config() -> dict[str, Any]:
    return load(SRC / "app" / "app-hsmeta.json")


@pytest.fixture(scope="module")
def cards() -> dict[str, dict[str, Any]]:
    return {p.name: load(p) for p in CARDS.glob("*-hsmeta.json")}


@pytest.fixture(scope="module")
def webhooks() -> dict[str, Any]:
    return load(SRC / "app" / "webhooks" / "webhooks-hsmeta.json")


@pytest.fixture(scope="module")
def pipedrive() -> dict[str, Any]:
    return load(MANIFESTS / "pipedrive" / "app.json")


# --- well-formed -------------------------------------------------------------------------------

def test_every_json_file_parses() -> None:
    files = manifest_files("*.json")
    assert len(files) >= 9
    for path in files:
        assert isinstance(load(path), dict), path


def test_hubspot_project(hsproject: dict[str, Any]) -> None:
    assert hsproject == {"name": hsproject["name"], "srcDir": "src", "platformVersion": "2026.03"}
    assert isinstance(hsproject["name"], str) and hsproject["name"]


def test_hubspot_app(app_config: dict[str, Any]) -> None:
    assert app_config["type"] == "app" and app_config["uid"]
    config = app_config["config"]
    assert isinstance(config["name"], str) and isinstance(config["description"], str)
    assert config["distribution"] == "marketplace"
    auth = config["auth"]
    assert auth["type"] == "oauth"
    assert auth["redirectUrls"] == [f"{ORIGIN}/oauth/hubspot/callback"]
    permitted = config["permittedUrls"]
    assert set(permitted) == {"fetch", "iframe", "img"}
    assert all(isinstance(v, list) for v in permitted.values())
    assert permitted["fetch"] and permitted["iframe"]
    support = config["support"]
    assert "@" in support["supportEmail"]
    assert support["documentationUrl"].startswith("https://")
    assert support["supportUrl"].startswith("https://")


def test_hubspot_required_scopes_are_the_apps(app_config: dict[str, Any]) -> None:
    assert app_config["config"]["auth"]["requiredScopes"] == HUBSPOT_SCOPES.split()


def test_hubspot_cards(cards: dict[str, dict[str, Any]]) -> None:
    assert set(cards) == {"deal-card-hsmeta.json", "company-card-hsmeta.json"}
    expected = {"deal-card-hsmeta.json": ["deals"], "company-card-hsmeta.json": ["companies"]}
    uids = set()
    for name, card in cards.items():
        assert card["type"] == "card"
        uids.add(card["uid"])
        config = card["config"]
        assert isinstance(config["name"], str) and isinstance(config["description"], str)
        assert config["location"] == "crm.record.sidebar"
        assert config["objectTypes"] == expected[name]
        # entrypoint is relative to srcDir
        assert config["entrypoint"] == "/app/cards/PaydeckCard.tsx"
        assert (SRC / config["entrypoint"].lstrip("/")).is_file()
    assert len(uids) == 2


def test_hubspot_cards_package_is_pinned_locked_and_checked() -> None:
    """Exact versions, a lock file in step with them, and the scripts `make card-check` runs."""
    package = load(CARDS / "package.json")
    deps = {**package["dependencies"], **package["devDependencies"]}
    assert {"@hubspot/ui-extensions", "react", "typescript", "eslint",
            "@hubspot/eslint-config-ui-extensions", "vitest"} <= set(deps)
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in deps.values()), deps
    # @hubspot/ui-extensions 0.17.0 declares peer react 18.3.1 exactly (its package.json).
    assert package["dependencies"]["react"] == "18.3.1"
    lock = load(CARDS / "package-lock.json")
    root = lock["packages"][""]
    assert (root["dependencies"], root["devDependencies"]) == (package["dependencies"],
                                                              package["devDependencies"])
    for name, version in deps.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
    scripts = package["scripts"]
    assert scripts["typecheck"] == "tsc --noEmit"
    assert scripts["lint"].startswith("eslint .") and "--max-warnings 0" in scripts["lint"]
    assert scripts["test"] == "vitest run"
    assert "@hubspot/eslint-config-ui-extensions" in (CARDS / "eslint.config.js").read_text()
    assert load(CARDS / "tsconfig.json")["compilerOptions"]["strict"] is True


def test_make_test_runs_the_card_check() -> None:
    """CI (`.ci/run`: make test, make test-embedded) type-checks, lints and renders the card."""
    makefile = (ROOT / "Makefile").read_text()
    for target in ("test", "test-embedded"):
        line = re.search(rf"^{re.escape(target)}:(.*)$", makefile, re.M)
        assert line and "card-check" in line.group(1).split(), target
    recipe = re.search(r"^card-check:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None
    for script in ("typecheck", "lint", "test"):
        assert re.search(rf"\$\(NPM\) (run --silent )?{script}\b", recipe.group(1)), script
    assert "$(NPM) ci" in makefile


def test_hubspot_webhook_subscription_is_the_one_paydeck_handles(webhooks: dict[str, Any]) -> None:
    assert webhooks["type"] == "webhooks" and webhooks["uid"]
    config = webhooks["config"]
    assert config["settings"] == {"targetUrl": f"{ORIGIN}/webhooks/hubspot",
                                  "maxConcurrentRequests": 10}
    # Classic "deal.propertyChange" events, which the adapter acts on; a crmObjects
    # "object.propertyChange" subscription would deliver events it ignores. Two-way contact
    # sync: company creations and changes of the company properties it maps by default, and
    # (CRM-side merges and deletes) company deletions, restores and merges.
    assert set(config["subscriptions"]) == {"legacyCrmObjects"}
    subs = config["subscriptions"]["legacyCrmObjects"]
    assert subs[0] == {"subscriptionType": "deal.propertyChange", "propertyName": "dealstage",
                       "active": True}
    assert {"subscriptionType": "company.creation", "active": True} in subs
    for kind in ("deletion", "restore", "merge"):  # webhooks-v3.json eventType enum
        assert {"subscriptionType": f"company.{kind}", "active": True} in subs
    watched = {s["propertyName"] for s in subs if s["subscriptionType"] == "company.propertyChange"}
    assert watched == set(COMPANY_PROPERTIES) - {"domain", "website"}  # both Xero-read-only
    assert all(s["active"] for s in subs)
    sub = subs[0]
    event = {"subscriptionType": sub["subscriptionType"], "propertyName": sub["propertyName"],
             "objectId": 101, "portalId": 62515, "eventId": 7, "propertyValue": "closedwon",
             "changeSource": "CRM_UI", "occurredAt": 1, "attemptNumber": 0}
    parsed = parse_webhook(WebhookRequest("POST", config["settings"]["targetUrl"], {},
                                          json.dumps([event]).encode()),
                           hubspot_config(Settings(_env_file=None)).app_id)  # type: ignore[call-arg]
    assert [(e.deal_id, e.stage_id) for e in parsed.events] == [("101", "closedwon")]


def test_pipedrive_app(pipedrive: dict[str, Any]) -> None:
    assert isinstance(pipedrive["name"], str) and pipedrive["name"]
    assert pipedrive["callback_url"] == f"{ORIGIN}/oauth/pipedrive/callback"
    assert pipedrive["installation_url"] == f"{ORIGIN}/install/pipedrive"
    panels = {p["view"]: p for p in pipedrive["app_extensions"]["custom_panels"]}
    assert set(panels) == {"deal", "organization"}
    for view, panel in panels.items():
        assert panel["url"] == f"{ORIGIN}/pipedrive/panel/{view}"
        assert isinstance(panel["title"], str) and 0 < len(panel["title"]) <= 30
        assert panel["jwt_secret"] == "defaults to the client secret"
    app_settings = pipedrive["app_extensions"]["app_settings"]
    assert app_settings["url"] == f"{ORIGIN}/pipedrive/settings"
    assert app_settings["jwt_secret"] == "defaults to the client secret"


def test_pipedrive_review_queue_is_a_custom_modal_the_deal_page_opens(pipedrive: dict[str, Any]) -> None:
    """pipedrive.readme.io/docs/custom-ui-extensions-modals: an iframe modal opened from menus or
    by the SDK's OPEN_MODAL, whose action_id is the modal's "id or name" (SDK README)."""
    from app.views.common import PIPEDRIVE_REVIEW_MODAL

    [modal] = pipedrive["app_extensions"]["custom_modals"]
    assert modal["url"] == f"{ORIGIN}/pipedrive/modal/review"
    assert modal["name"] == PIPEDRIVE_REVIEW_MODAL and len(modal["name"]) <= 30
    assert modal["jwt_secret"] == "defaults to the client secret"
    template = (ROOT / "app" / "templates" / "deal.html").read_text()
    assert 'data-pipedrive-modal="{{ review_modal }}"' in template


def test_pipedrive_scopes_are_the_apps(pipedrive: dict[str, Any]) -> None:
    assert pipedrive["scopes"] == PIPEDRIVE_SCOPES.split()


def test_pipedrive_webhooks_note_matches_what_paydeck_registers(pipedrive: dict[str, Any]) -> None:
    note = pipedrive["webhooks"]
    url = note["subscription_url"].replace("{installation_id}", "7")
    calls: list[tuple[str, str, Any]] = []

    def fake_request(installation: Any, method: str, path: str, cost: int = 1,
                     **kwargs: Any) -> Any:
        calls.append((method, path, kwargs.get("json")))
        return []

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    crm = PipedriveCrm(lambda i: "", lambda i: None, lambda: pipedrive_config(settings))  # type: ignore[arg-type]
    crm._request = fake_request  # type: ignore[method-assign]
    crm.register_webhooks(SimpleNamespace(webhook_user="u", webhook_password="p"), url)
    posted = [body for method, path, body in calls if method == "POST"]
    assert [[b["event_object"], b["event_action"]] for b in posted] == note["events"]
    for body in posted:
        assert body["subscription_url"] == url
        assert body["version"] == note["version"]


def test_card_fetches_a_permitted_url_and_opens_the_modal(app_config: dict[str, Any]) -> None:
    sources = {p.name: p.read_text() for p in card_sources()}
    assert set(sources) == {"PaydeckCard.tsx", "Card.tsx", "card-data.ts"}
    code = "\n".join(sources.values())
    assert "hubspot.extend<'crm.record.sidebar'>(" in sources["PaydeckCard.tsx"]
    assert "hubspot.fetch(" in code
    assert "openIframeModal" in code
    assert "@hubspot/ui-extensions" in code
    fetch_permitted = app_config["config"]["permittedUrls"]["fetch"]
    urls = URL_RE.findall(code)
    assert f"{ORIGIN}/hubspot/card" in urls
    for url in urls:
        assert any(url.startswith(prefix) for prefix in fetch_permitted), url


# --- every URL on Paydeck's host is a route ------------------------------------------------------

def _checked_urls(app_config: dict[str, Any], webhooks: dict[str, Any],
                  pipedrive: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(url, methods the platform calls it with); permittedUrls.iframe is checked as a prefix."""
    config = app_config["config"]
    urls: list[tuple[str, tuple[str, ...]]] = [(u, ("GET",)) for u in config["auth"]["redirectUrls"]]
    urls += [(u, ("GET",)) for u in config["permittedUrls"]["fetch"]]
    urls.append((webhooks["config"]["settings"]["targetUrl"], ("POST",)))
    urls.append((pipedrive["callback_url"], ("GET", "DELETE")))
    urls.append((pipedrive["installation_url"], ("GET",)))
    urls += [(p["url"], ("GET",)) for p in pipedrive["app_extensions"]["custom_panels"]]
    urls += [(m["url"], ("GET",)) for m in pipedrive["app_extensions"]["custom_modals"]]
    urls.append((pipedrive["app_extensions"]["app_settings"]["url"], ("GET",)))
    urls.append((pipedrive["webhooks"]["subscription_url"], ("POST",)))
    return urls


def _all_paydeck_urls() -> set[str]:
    found = set()
    for path in manifest_files("*.json") + card_sources():
        found |= {u for u in URL_RE.findall(path.read_text()) if urlsplit(u).hostname == HOST}
    return found


@pytest.fixture(scope="module")
def url_map(tmp_path_factory: pytest.TempPathFactory) -> Map:
    tmp = tmp_path_factory.mktemp("manifest-app")
    # No database or Redis is touched: only the routes are read.
    app = create_app(make_settings(tmp, f"sqlite:///{tmp / 'unused.db'}", "redis://unused"))
    return app.url_map


def test_every_manifest_url_on_paydecks_host_is_checked(app_config: dict[str, Any],
                                                        webhooks: dict[str, Any],
                                                        pipedrive: dict[str, Any]) -> None:
    checked = {u for u, _ in _checked_urls(app_config, webhooks, pipedrive)}
    checked |= set(app_config["config"]["permittedUrls"]["iframe"])
    found = _all_paydeck_urls()
    assert found - checked == set(), "URLs on Paydeck's host that no route check covers"
    assert all(urlsplit(u).scheme == "https" for u in found)


def test_manifest_routes_exist(url_map: Map, app_config: dict[str, Any],
                               webhooks: dict[str, Any], pipedrive: dict[str, Any]) -> None:
    adapter = url_map.bind(HOST, url_scheme="https")
    missing = []
    for url, methods in _checked_urls(app_config, webhooks, pipedrive):
        parts = urlsplit(url)
        assert parts.hostname == HOST, url
        path = re.sub(r"\{[a-z_]+\}", "1", parts.path)
        for method in methods:
            try:
                adapter.match(path, method=method)
            except RequestRedirect:
                missing.append(f"{method} {path} (redirects: trailing slash?)")
            except HTTPException:
                missing.append(f"{method} {path}")
    rules = [rule.rule for rule in url_map.iter_rules()]
    for prefix in app_config["config"]["permittedUrls"]["iframe"]:
        base = urlsplit(prefix).path.rstrip("/")
        if not any(r == base or r.startswith(f"{base}/") for r in rules):
            missing.append(f"any route under {base}/")
    assert not missing, f"manifest URLs with no route: {missing}"
