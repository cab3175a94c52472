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

# Apache Kafka (the local broker) runs on Java 17+ (Debian's default runtime: 17 on Debian 12,
# newer after), and Maven fetches its pinned jars (deploy/local/kafka/pom.xml) from Maven Central
JAVA_PACKAGES := default-jre-headless maven

# $(call apt_install,PACKAGES,WHY): install Debian packages as root (or with sudo), or say how
define apt_install
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else \
		echo "cannot install $(1): not root and no sudo; run as root:" \
			"apt-get update && apt-get install -y --no-install-recommends $(1)" >&2; exit 1; fi; \
	echo "$(2): installing Debian's $(1)"; \
	$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends $(1) || { \
		echo "could not install $(1) with apt-get; install them" \
			"(apt-get install -y --no-install-recommends $(1)) and run make again" >&2; exit 1; }
endef

.PHONY: help install browser java redis promtool crds run stop status test test-unit test-integration test-e2e lint fmt \
	schemas dashboards image-venv sbom audit clean

help:
	@echo "make run    install what is missing, start the local stack and all services"
	@echo "            (make run BROKERS=3 REPLICAS=2: a 3-node Kafka cluster, 2 replicas of each service;"
	@echo "            PROMETHEUS=0: without the Prometheus beside it)"
	@echo "make stop   stop everything 'make run' started"
	@echo "make status each process of the stack (lemma stack status --json for scripts)"
	@echo "make test   install what is missing, lint, run the whole suite"
	@echo "make lint   ruff, mypy and the import contracts"
	@echo "make sbom   the CycloneDX SBOM of the image's Python packages (var/sbom.cdx.json)"
	@echo "make audit  pip-audit of the image's Python packages against OSV (OSV_URL=... for a mirror)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || { echo "uv not found: installing it with pip"; python3 -m pip install --quiet uv==0.13.8; }
	$(UV) sync --frozen
	@touch $@

# Chromium from Debian's packages, for the browser tests only (`make run` does not need it)
browser: $(CHROMIUM)

$(CHROMIUM):
	@$(call apt_install,chromium,Chromium is missing (the browser tests drive it))
	@test -x $@ || { echo "chromium was installed but $@ is not there" >&2; exit 1; }

# Java and Maven for the Kafka broker (`make run` and the tests start one)
java:
	@if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then \
		$(call apt_install,$(JAVA_PACKAGES),java or mvn is missing (Apache Kafka runs on Java 17+; Maven fetches its jars)); \
	fi

# Redis for the tests of request limits shared by replicas (production counts them in Redis or
# MongoDB; the local stack counts in each process)
REDIS := /usr/bin/redis-server
redis: $(REDIS)

$(REDIS):
	@$(call apt_install,redis-server,redis-server is missing (the shared request-limit tests start one))
	@test -x $@ || { echo "redis-server was installed but $@ is not there" >&2; exit 1; }

# Debian's prometheus: promtool for the tests of the alert rules we ship (deploy/prometheus),
# and the Prometheus `make run` starts beside the stack
PROMTOOL := /usr/bin/promtool
promtool: $(PROMTOOL)

$(PROMTOOL):
	@$(call apt_install,prometheus,promtool is missing (the alert-rule tests run it))
	@test -x $@ || { echo "prometheus was installed but $@ is not there" >&2; exit 1; }

# The operators' CRDs the Kubernetes manifests use (deploy/k8s), from the Go module proxy at
# pinned versions, into $(CRDS); tests/unit/test_k8s_schemas.py validates the custom
# resources against them and never downloads
CRDS := .cache/crds
MONGODB_OPERATOR := github.com/mongodb/mongodb-kubernetes-operator@v0.13.0
PROMETHEUS_OPERATOR := github.com/prometheus-operator/prometheus-operator@v0.85.0
crds: $(CRDS)/.fetched

$(CRDS)/.fetched: Makefile
	@command -v go >/dev/null 2>&1 || { $(call apt_install,golang-go,go is missing (the CRDs come from the Go module proxy)); }
	@mkdir -p $(CRDS)/mod
	@dir() { cd $(CRDS) && GOMODCACHE=$(abspath $(CRDS))/mod GOFLAGS=-modcacherw go mod download -json "$$1" \
		| python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d.get("Error")) if d.get("Error") else print(d["Dir"])'; }; \
	mongo=$$(dir $(MONGODB_OPERATOR)) && prom=$$(dir $(PROMETHEUS_OPERATOR)) && \
	cp "$$mongo/config/crd/bases/mongodbcommunity.mongodb.com_mongodbcommunity.yaml" $(CRDS)/ && \
	cp "$$prom/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" $(CRDS)/ && \
	echo "$(MONGODB_OPERATOR) $(PROMETHEUS_OPERATOR)" > $@ && echo "CRDs in $(CRDS)"

# The stack's shape, e.g. `make run BROKERS=3 REPLICAS=2`: Kafka nodes (1, or 3 for a KRaft
# cluster with topics replicated 3x, min ISR 2) and processes of every service behind the
# gateway. Unset: as the last `make run` in var/ (var/stack.json), else 1 and 1.
# PROMETHEUS=0: without the Prometheus that otherwise runs beside the stack (on 127.0.0.1:9190,
# scraping every replica with deploy/prometheus/alerts.yml).
BROKERS ?=
REPLICAS ?=
PROMETHEUS ?= 1
STACK_SHAPE := $(if $(BROKERS),--brokers $(BROKERS)) $(if $(REPLICAS),--replicas $(REPLICAS)) \
	$(if $(filter 0,$(PROMETHEUS)),--no-prometheus,--prometheus)

run: install java $(if $(filter 0,$(PROMETHEUS)),,promtool)
	$(LEMMA) stack up $(STACK_SHAPE)

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

test: lint browser java redis promtool crds
	$(VENV)/bin/pytest -q

test-unit: install promtool crds
	$(VENV)/bin/pytest -q tests/unit

test-integration: install java redis
	$(VENV)/bin/pytest -q tests/integration

test-e2e: install browser java promtool
	$(VENV)/bin/pytest -q tests/e2e

schemas: install
	$(VENV)/bin/python -c "from shared.events.schemas import export; print(len(export()), 'schemas written')"

# Grafana's dashboards: write deploy/grafana/dashboards/*.json from deploy/grafana/dashboards.py
dashboards: install
	$(VENV)/bin/python -m deploy.grafana

# The image's Python packages (deploy/Dockerfile installs the lock without the dev group): the
# same set synced into a venv of its own on the image's Python minor, for their SBOM (with the
# project as its root component) and their audit. `make audit` fails on
# a known vulnerability, and also when the advisory service (OSV, or OSV_URL) cannot be
# reached, unless AUDIT_IF_UNREACHABLE=warn (then it says so loudly and passes).
IMAGE_VENV := var/image-venv
SBOM := var/sbom.cdx.json
AUDIT_REPORT := var/audit.json
OSV_URL := https://api.osv.dev/v1/query
AUDIT_IF_UNREACHABLE := fail

image-venv: install
	@UV_PROJECT_ENVIRONMENT=$(IMAGE_VENV) $(UV) sync --frozen --no-dev --no-install-project --python 3.11 --quiet
	@$(UV) pip freeze --python $(IMAGE_VENV) --quiet > $(IMAGE_VENV)/requirements.txt

sbom: image-venv
	@mkdir -p $(dir $(SBOM))
	$(VENV)/bin/cyclonedx-py environment $(IMAGE_VENV) --pyproject pyproject.toml --output-reproducible -o $(SBOM)

audit: image-venv
	@mkdir -p $(dir $(AUDIT_REPORT))
	$(VENV)/bin/python -m deploy.audit $(IMAGE_VENV)/requirements.txt --report $(AUDIT_REPORT) \
		--osv-url $(OSV_URL) --if-unreachable $(AUDIT_IF_UNREACHABLE)

clean: stop
	rm -rf var
