# `make demo`, the README's first command: the pinned toolchain, the local cluster (simulated NVIDIA and
# AMD GPU pools), then the real Pulumi engine on the `local` stack with the policy pack, its outputs and
# `python -m infra status`. `make demo-down` removes all of it. README.md, "Pulumi engine: local demo and
# real clusters". Honours BUNDLE_CLUSTER_NAME (cluster name, default jina-local) and PULUMI_BACKEND_URL
# (state, default file://$BUNDLE_TOOLS_DIR/pulumi-state), like tools/env.sh.
DEMO_STACK := local
POLICY_PACK := policy/pulumi-analyzer-jina-embeddings
ENGINE := $(PY) -m infra engine

.PHONY: demo demo-down

demo: venv tools ## bootstrap, start the local cluster, `pulumi up` the local stack (policy pack on), print outputs and status
	$(MAKE) --no-print-directory cluster-up CLUSTER_ENV=$(DEMO_STACK)
	@# --refresh: the state may still hold objects of an earlier cluster that `make cluster-down` removed
	$(TOOLS_ENV) && $(ENGINE) up --stack $(DEMO_STACK) --yes --refresh --policy-pack $(POLICY_PACK)
	$(TOOLS_ENV) && $(ENGINE) outputs --stack $(DEMO_STACK)
	@# `up` returns once every Deployment is available; the autoscalers then raise the autoscaled
	@# variants to their minReplicas within a few sync periods (15 s each): wait for that, up to 2 minutes.
	$(TOOLS_ENV) && for _ in $$(seq 40); do $(PY) -m infra status --env $(DEMO_STACK) >/dev/null 2>&1 && break; sleep 3; done; \
	  $(PY) -m infra status --env $(DEMO_STACK)

demo-down: ## destroy the demo stack (and forget it in the state backend), then stop and delete the local cluster
	@# exit 2 = no such stack (never deployed, or already removed): nothing to destroy, still stop the cluster
	$(TOOLS_ENV) && { $(ENGINE) destroy --stack $(DEMO_STACK) --yes --remove-stack || rc=$$?; \
	  $(MAKE) --no-print-directory cluster-down; [ "$${rc:-0}" = 0 ] || [ "$${rc:-0}" = 2 ]; }
