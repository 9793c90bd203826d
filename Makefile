# ai-app: one entry point for people and for the pipeline. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := $(CURDIR)/.tools
BUILD := $(CURDIR)/build
REPORTS := $(CURDIR)/reports
DEMO_PORT ?= 8080
export PATH := $(TOOLS)/bin:$(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export HELM_V3 := $(TOOLS)/helm-v3/helm
export HELM_V4 := $(TOOLS)/helm-v4/helm
# podman here runs with runc and no default ulimits (see README "Running locally").
export CONTAINERS_CONF := $(TOOLS)/containers.conf

APT_PACKAGES := podman buildah runc debootstrap prometheus wrk hey uidmap
PYTEST := $(PY) -m pytest

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- setup
.PHONY: setup
setup: venv node helm containers-conf system-packages ## Install everything: .venv, npm tools, helm, podman & co.

.PHONY: venv
venv: $(VENV)/.installed ## Python venv with the app, loader and dev dependency groups
$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[loader,app,dev]'
	touch $@

.PHONY: node
node: node_modules/.installed ## npm tools in ./node_modules (azurite, pipeline validator)
node_modules/.installed: package.json
	command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	npm install --no-audit --no-fund --silent
	touch $@

.PHONY: helm
helm: $(TOOLS)/helm-v4/helm ## helm v4 (and v3 for the compatibility test) into .tools
$(TOOLS)/helm-v4/helm:
	PYTHON=$(PYTHON) tests/support/install_helm.sh $(TOOLS)

.PHONY: containers-conf
containers-conf: $(CONTAINERS_CONF)
$(CONTAINERS_CONF):
	mkdir -p $(@D)
	printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' > $@

.PHONY: system-packages
system-packages: ## apt packages (podman, prometheus, wrk, ...) when root and missing
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing:$$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "not root or no apt: tests that need$$missing will skip"; fi

# ---------------------------------------------------------------- checks
.PHONY: lint
lint: venv ## ruff lint and format check
	$(PY) -m ruff check app model_loader tests
	$(PY) -m ruff format --check app model_loader tests

.PHONY: test
test: setup ## Lint, then every test but benchmarks (e2e included where podman runs)
	$(MAKE) --no-print-directory lint
	mkdir -p $(REPORTS)
	$(PYTEST) -m "not bench" --junitxml=$(REPORTS)/junit.xml

.PHONY: bench
bench: setup ## Benchmarks (tests/benchmarks), figures printed side by side
	$(PYTEST) tests/benchmarks -m bench -s -p no:cacheprovider

# ---------------------------------------------------------------- model
.PHONY: sample-model
sample-model: venv ## Train the digits classifier and export it to build/sample-model
	$(PY) -m tests.support.sample_model --out $(BUILD)/sample-model

.PHONY: clean
clean: ## Remove build outputs and reports (keeps .venv, .tools, node_modules)
	rm -rf $(BUILD) $(REPORTS)

# ---------------------------------------------------------------- chart & release
VALUES ?= chart/values.yaml

.PHONY: chart-lint
chart-lint: helm ## helm lint --strict the chart (with the CI values it needs)
	$(HELM_V4) lint --strict chart --values chart/ci/workload-identity-values.yaml

.PHONY: preflight
preflight: venv ## Release pre-flight: the model pinned in VALUES (and its digest) exists in Blob
	$(PY) -m model_loader check $$($(PY) -c 'import sys, yaml; \
	  m = yaml.safe_load(open(sys.argv[1]))["model"]; \
	  print("--name", m["name"], "--version", m["version"], \
	        *(["--digest", m["digest"]] if m.get("digest") else []))' $(VALUES))
