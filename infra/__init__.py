"""jina-embeddings-v5-text-small on vLLM pooling servers, on Kubernetes GPU pools.

Layers (imports point down only; `lint-imports` enforces it, pyproject.toml [tool.importlinter]):

- `infra.core`: what is deployed, pure (catalog, accelerators, config, sizing, values, platform objects, plan);
- `infra.sinks`: how it reaches a cluster (helm rendering, the GitOps export, runbook pages, the Pulumi program);
- `infra.checks`: gates over what the sinks render (policy rules, promtool cases);
- `infra.ops`: day-2 against a live cluster or server (status, smoke);
- `infra.cli`: `python -m infra ...`, on top of everything.

`infra/__main__.py` is both the command line's entry point and the Pulumi program's (Pulumi.yaml `main: infra/`).
"""
