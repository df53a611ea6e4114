"""What the gates run over, as named bundles of manifests.

- `stack:<env>`: a stack's plan as it is installed: the platform objects plus `helm template` of every
  release, each namespaced object placed in the stack's namespace (what `helm install --namespace`,
  Pulumi's helm.v4.Chart and the GitOps export all do).
- `chart:<scenario>`: one charts/jina-embeddings/ci/<scenario>-values.yaml rendered on its own.
- `export:<env>`: the committed manifests/<env>/ tree (objects listed by its kustomization.yaml), when
  it exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from infra.core.names import with_namespace
from infra.core.paths import CHART_PATH
from infra.core.plan import Plan, build_for_env
from infra.core.stackfile import stack_names
from infra.sinks.export import MANIFESTS_DIR
from infra.sinks.helm import render_release, template

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SCENARIO_DIR = CHART_PATH / "ci"
SCENARIO_RELEASE = "jina-embeddings-ci"
SCENARIO_NAMESPACE = "jina-embeddings"


def plan_objects(plan: Plan) -> list[dict[str, Any]]:
    objects = [dict(o) for o in plan.platform]
    for release in plan.releases:
        objects += render_release(release)
    return [with_namespace(o, plan.namespace) for o in objects]


def stack_bundle(env: str) -> list[dict[str, Any]]:
    return plan_objects(build_for_env(env))


def scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*-values.yaml"))


def scenario_bundle(path: Path) -> list[dict[str, Any]]:
    values = yaml.safe_load(path.read_text()) or {}
    objects = template(CHART_PATH, SCENARIO_RELEASE, SCENARIO_NAMESPACE, values)
    return [with_namespace(o, SCENARIO_NAMESPACE) for o in objects]


def exported_envs(root: Path = MANIFESTS_DIR) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/kustomization.yaml"))


def export_bundle(env: str, root: Path = MANIFESTS_DIR) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize manifests/<env>` applies (the files its kustomization lists)."""
    directory = root / env
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    objects = []
    for rel in kustomization.get("resources") or ():
        objects += [doc for doc in yaml.load_all((directory / rel).read_text(), Loader=_YAML_LOADER) if doc]
    return objects


def bundles(
    envs: Iterable[str] | None = None, *, with_scenarios: bool = True, with_exports: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Every bundle the gates cover, by name (`stack:dev`, `chart:nvidia-whole-gpu`, `export:prod`)."""
    envs = list(stack_names() if envs is None else envs)
    out = {f"stack:{env}": stack_bundle(env) for env in envs}
    if with_scenarios:
        out.update({f"chart:{p.name.removesuffix('-values.yaml')}": scenario_bundle(p) for p in scenarios()})
    if with_exports:
        out.update({f"export:{env}": export_bundle(env) for env in exported_envs() if env in envs})
    return out
