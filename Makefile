# Paydeck: `make run` starts everything; `make test` runs the whole suite.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The browser tests drive Debian's chromium (Playwright's own browser download cannot work here).
CHROMIUM ?= /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-embedded install migrate clean

run: $(STAMP)
	$(BIN)/paydeck run

test: $(STAMP) $(CHROMIUM)
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite with no DATABASE_URL/REDIS_URL: SQLite file and embedded Redis.
test-embedded: $(STAMP) $(CHROMIUM)
	env -u DATABASE_URL -u REDIS_URL CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/paydeck migrate

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
	rm -rf $(VENV) *.egg-info
