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

# .venv is a link to the virtualenv of requirements.lock in the tool cache (tools/bootstrap.sh venv), built once per
# lock and Python: a clean clone links it instead of installing it again.
$(VENV)/.installed: requirements.lock
	PYTHON=$(PYTHON) tools/bootstrap.sh venv
	touch $@

venv: $(VENV)/.installed ## the project's Python environment (.venv -> the tool cache), pinned by requirements.lock

tools: ## build or reuse the pinned toolchain (tools/bootstrap.sh)
	tools/bootstrap.sh

# TEST_JOBS: parallel pytest workers (pytest-xdist). Whole test modules go to a worker, the vllm tier as one group,
# longest first (tests/conftest.py). 4 on 2 cores: the e2e and vllm modules spend most of their time waiting on
# their cluster, the Pulumi engine and vLLM's start-up. TEST_JOBS=1: one process, in collection order.
TEST_JOBS ?= 4
XDIST_ARGS := $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --no-loadscope-reorder)

test: venv tools ## every test tier: unit, chart, policy, alerts, e2e, vllm (what CI runs; TEST_JOBS=4 workers)
	$(TOOLS_ENV) && $(PY) -m pytest $(XDIST_ARGS)

test-fast: venv ## the tiers that need no cluster and no vLLM (unit, chart, policy, alerts)
	$(TOOLS_ENV) && tools/bootstrap.sh helm promtool kube-score kubernetes etcd crds checkov && $(PY) -m pytest -m "not e2e and not vllm"

plan: venv ## print a stack's plan: make plan ENV=prod
	$(if $(ENV),,$(error usage: make plan ENV=<stack>, e.g. make plan ENV=prod))
	$(PY) -m infra plan --env $(ENV)

# Per-topic targets (export, cluster, demo, ...) live in mk/*.mk.
-include mk/*.mk
