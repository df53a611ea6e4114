# jina-embeddings-v5 on vLLM: the bundle's entry points. `make help` lists them.
# Every target installs what it needs: a fresh machine needs only Python 3.11+, Go and make.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Pinned toolchain (helm, kube-apiserver, etcd, kwok, pulumi, ...) built into a cache outside the repo.
TOOLS_ENV := source tools/env.sh

.PHONY: help venv tools test test-fast plan

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --requirement requirements.lock
	touch $@

venv: $(VENV)/.installed ## the project's Python environment (.venv), pinned by requirements.lock

tools: ## build or reuse the pinned toolchain (tools/bootstrap.sh)
	tools/bootstrap.sh

# TEST_JOBS=2: the e2e tier (mostly waiting on its cluster and the Pulumi engine) runs as a second pytest process
# beside the other tiers; its output follows theirs. Default 1: one process, as CI runs it.
TEST_JOBS ?= 1
E2E_LOG := build/test-e2e.log

test: venv tools ## every test tier: unit, chart, policy, alerts, e2e, vllm (what CI runs; TEST_JOBS=2: e2e beside)
ifeq ($(TEST_JOBS),1)
	$(TOOLS_ENV) && $(PY) -m pytest
else
	mkdir -p build
	$(TOOLS_ENV) && { $(PY) -m pytest -p no:cacheprovider -m e2e >$(E2E_LOG) 2>&1 & e2e=$$!; rc=0; \
	  $(PY) -m pytest -p no:cacheprovider -m "not e2e" || rc=$$?; wait $$e2e || rc=$$?; \
	  echo "--- e2e tier ($(E2E_LOG)):"; cat $(E2E_LOG); exit $$rc; }
endif

test-fast: venv ## the tiers that need no cluster and no vLLM (unit, chart, policy, alerts)
	$(TOOLS_ENV) && tools/bootstrap.sh helm promtool kube-score kubernetes etcd crds && $(PY) -m pytest -m "not e2e and not vllm"

plan: venv ## print a stack's plan: make plan ENV=prod
	$(if $(ENV),,$(error usage: make plan ENV=<stack>, e.g. make plan ENV=prod))
	$(PY) -m infra plan --env $(ENV)

# Per-topic targets (export, cluster, demo, ...) live in mk/*.mk.
-include mk/*.mk
