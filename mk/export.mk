# GitOps export: manifests/<env>/ for every stack (README.md, "GitOps export").
# EXPORT_DIR lets the tests write elsewhere; the committed tree is manifests/.
EXPORT_DIR ?= manifests

.PHONY: export export-check

export: venv ## write manifests/<env>/ for every stack (objects, kustomization.yaml, Helm values, Argo CD/Flux)
	$(TOOLS_ENV) && tools/bootstrap.sh helm && $(PY) -m infra export --all --manifests-dir $(EXPORT_DIR)

export-check: venv ## fail with a unified diff when manifests/ is stale (make test runs this check too)
	$(TOOLS_ENV) && tools/bootstrap.sh helm && $(PY) -m infra export --all --check --manifests-dir $(EXPORT_DIR)
