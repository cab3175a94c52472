# Lemma backend. Two commands do everything: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv from PATH, else as a module of the system Python (installed there on first use)
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
VENV := .venv
LEMMA := $(VENV)/bin/lemma
# the browser tests drive Debian's chromium through Playwright, which must never download one
CHROMIUM := /usr/bin/chromium
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: help install browser run stop status test test-unit test-integration test-e2e lint fmt schemas clean

help:
	@echo "make run    install what is missing, start the local stack and all services"
	@echo "make stop   stop everything 'make run' started"
	@echo "make test   install what is missing, lint, run the whole suite"
	@echo "make lint   ruff, mypy and the import contracts"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || { echo "uv not found: installing it with pip"; python3 -m pip install --quiet uv==0.13.8; }
	$(UV) sync --frozen
	@touch $@

# Chromium from Debian's packages, for the browser tests only (`make run` does not need it)
browser: $(CHROMIUM)

$(CHROMIUM):
	@echo "Chromium is missing (the browser tests drive it): installing Debian's chromium package"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else \
		echo "cannot install chromium: not root and no sudo; run as root:" \
			"apt-get update && apt-get install -y --no-install-recommends chromium" >&2; exit 1; fi; \
	$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends chromium || { \
		echo "could not install chromium with apt-get; install Debian's chromium package" \
			"(apt-get install -y --no-install-recommends chromium) and run make test again" >&2; exit 1; }
	@test -x $@ || { echo "chromium was installed but $@ is not there" >&2; exit 1; }

run: install
	$(LEMMA) stack up

stop:
	@if [ -x $(LEMMA) ]; then $(LEMMA) stack down; else echo "nothing to stop"; fi

status: install
	$(LEMMA) stack status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint browser
	$(VENV)/bin/pytest -q

test-unit: install
	$(VENV)/bin/pytest -q tests/unit

test-integration: install
	$(VENV)/bin/pytest -q tests/integration

test-e2e: install browser
	$(VENV)/bin/pytest -q tests/e2e

schemas: install
	$(VENV)/bin/python -c "from shared.events.schemas import export; print(len(export()), 'schemas written')"

clean: stop
	rm -rf var
