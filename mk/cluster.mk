# The local control plane: kube-apiserver, etcd, scheduler, controller-manager and kwok (tools/cluster.sh),
# with simulated GPU node pools that mirror a stack's pools (python -m infra cluster-nodes) and the CRDs
# the bundle can render (ServiceMonitor, PrometheusRule, ScaledObject, HTTPRoute, Argo CD Application,
# Flux Kustomization and GitRepository: tools/cluster.sh crds).
CLUSTER_ENV ?= local

.PHONY: cluster-up cluster-down

cluster-up: venv ## start the local cluster with node pools mirroring the `local` stack (CLUSTER_ENV=...)
	$(TOOLS_ENV) && tools/bootstrap.sh kubernetes etcd kwok metrics-server crds \
	  && nodes="$$BUNDLE_TOOLS_DIR/nodes-$(CLUSTER_ENV).yaml" \
	  && $(PY) -m infra cluster-nodes --env $(CLUSTER_ENV) > "$$nodes" \
	  && tools/cluster.sh up "$$nodes" \
	  && tools/cluster.sh crds \
	  && kubectl get nodes -L nvidia.com/gpu.product,amd.com/gpu.product-name

cluster-down: ## stop and delete the local cluster (no process left behind)
	$(TOOLS_ENV) && tools/cluster.sh down
