# CI's own timing (docs/development.md, "How long CI takes"): what `.ci/run` (= `make test`) costs, per step.
# CI_TIME_ARGS: --warm-only (the checkout with the machine's caches), --machine-caches (a clean clone with them),
# --toolchain-only, --serial (bootstrap one component at a time), --tiers unit,e2e, --json FILE, --keep.
CI_TIME_ARGS ?=

.PHONY: ci-time

ci-time: ## time CI cold (clean clone, empty caches) then its tiers; CI_TIME_ARGS=--warm-only for the warm part
	$(PYTHON) tools/ci_time.py $(CI_TIME_ARGS)
