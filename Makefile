# Paydeck: `make run` starts everything; `make test` runs the whole suite.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The browser tests drive Debian's chromium (Playwright's own browser download cannot work here).
CHROMIUM ?= /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The HubSpot app card (TypeScript): type-checked, linted with HubSpot's ESLint config and
# rendered with HubSpot's test renderer, against the pinned @hubspot/ui-extensions.
CARD_DIR   := app_manifest/hubspot/src/app/cards
CARD_STAMP := $(CARD_DIR)/node_modules/.installed
NPM ?= npm

# axe-core for the browser tests' accessibility audit (tests/browser/axe/package-lock.json).
AXE_DIR   := tests/browser/axe
AXE_STAMP := $(AXE_DIR)/node_modules/.installed

.PHONY: run test test-embedded install migrate clean card-check

run: $(STAMP)
	$(BIN)/paydeck run

test: $(STAMP) $(CHROMIUM) $(AXE_STAMP) card-check
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite with no DATABASE_URL/REDIS_URL: SQLite file and embedded Redis.
test-embedded: $(STAMP) $(CHROMIUM) $(AXE_STAMP) card-check
	env -u DATABASE_URL -u REDIS_URL CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/paydeck migrate

card-check: $(CARD_STAMP)
	cd $(CARD_DIR) && $(NPM) run --silent typecheck && $(NPM) run --silent lint && $(NPM) test --silent

# npm ci (exactly package-lock.json) again whenever the lock file changes.
$(CARD_STAMP): $(CARD_DIR)/package-lock.json
	@command -v $(NPM) >/dev/null || { echo "card-check: no npm. Install Node.js 20.19+ or 22.12+ (with npm): the HubSpot card is checked with it."; exit 1; }
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a > 22 ? 0 : 1)' \
		|| { echo "card-check: Node.js $$(node --version) is too old: the card's tools (Vitest, Vite) need 20.19+ or 22.12+."; exit 1; }
	cd $(CARD_DIR) && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $@

$(AXE_STAMP): $(AXE_DIR)/package-lock.json
	@command -v $(NPM) >/dev/null || { echo "no npm: the browser tests' accessibility audit needs axe-core from npm (Node.js 20.19+)"; exit 1; }
	cd $(AXE_DIR) && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "No $(CHROMIUM): install Chromium and run make test CHROMIUM=/path/to/chromium"; exit 1; }
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Paydeck needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info $(CARD_DIR)/node_modules $(AXE_DIR)/node_modules
