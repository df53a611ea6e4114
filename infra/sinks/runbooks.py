"""Runbook pages, one per alert and environment: `python -m infra runbooks [--check]`.

docs/runbooks/<env>/<AlertName>.md is rendered with jinja2 from infra/runbook_templates/<AlertName>.md.j2
and the stack's plan, so every command names that environment's real namespace, Deployments, Services,
autoscalers, model names and node selectors. Thresholds and rule expressions are read from the rules the
chart renders (`helm template`), the same ones Prometheus loads. Only stacks with
`monitoring.prometheusRule` get pages. The pages are committed; `--check` (and a test) fails when they
are stale, the way the GitOps export is checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2

from infra.core.catalog import VARIANTS
from infra.core.names import KEDA_HPA_PREFIX, object_filename
from infra.core.paths import REPO_ROOT
from infra.core.plan import Plan, PlannedRelease, build_for_env
from infra.core.stackfile import stack_names
from infra.core.thresholds import (
    ALERT_NAMES,
    BACKLOG_TARGET_MULTIPLE,
    parse_duration,
    rule_groups,
)
from infra.sinks.export import gitops_objects, object_directory
from infra.sinks.helm import effective_values

RUNBOOKS_DIR = REPO_ROOT / "docs" / "runbooks"
TEMPLATES_DIR = Path(__file__).resolve().parent / "runbook_templates"
# The fence every command block of a page uses, and the marker on the line before one that the e2e tier
# does not run (with its reason): tests/e2e/test_runbooks_run.py runs every other block of the `local` pages.
SKIP_MARKER = "<!-- runbook: not run in e2e: "
_BLOCK = re.compile(
    r"(?:^" + re.escape(SKIP_MARKER) + r"(?P<skip>.*?) -->\n)?^```bash\n(?P<code>.*?)^```$", re.M | re.S
)
LOCAL_PORT_BASE = 18000  # port-forward targets: one local port per variant, so the commands can run side by side


@dataclass(frozen=True)
class VariantFacts:
    """What a runbook's commands say about one release, all from the plan and its rendered objects."""

    variant: str
    deployment: str
    service: str
    selector: str  # the pods' selector labels, `-l` form
    model: str  # served model name = vLLM's model_name label
    pool: str
    resource: str  # GPU extended resource
    resource_jsonpath: str  # the same, escaped for kubectl's jsonpath/custom-columns
    node_selector: str  # the pool's nodeSelector, `-l` form
    autoscaled: bool
    metric: str  # cpu | queue | keda
    hpa: str | None  # the HPA's name (KEDA's own for keda)
    scaledobject: str | None
    pdb: str | None
    min_replicas: int
    max_replicas: int
    local_port: int
    query_prefix: str
    startup_estimate: int
    startup_budget: int
    api_key_secret: str
    rule: dict[str, Any] | None  # this alert's rendered rule (set per page)
    thresholds: dict[str, Any]


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def variant_facts(release: PlannedRelease, objects: list[dict[str, Any]], index: int) -> VariantFacts:
    kinds = {o["kind"]: o for o in objects}
    deployment = kinds["Deployment"]
    v = effective_values(release.spec)
    scaledobject = kinds.get("ScaledObject")
    hpa = kinds.get("HorizontalPodAutoscaler")
    return VariantFacts(
        variant=release.variant,
        deployment=deployment["metadata"]["name"],
        service=kinds["Service"]["metadata"]["name"],
        selector=_selector(deployment["spec"]["selector"]["matchLabels"]),
        model=release.served_model_name,
        pool=release.pool.name,
        resource=v["gpu"]["resourceName"],
        resource_jsonpath=v["gpu"]["resourceName"].replace(".", "\\."),
        node_selector=_selector(deployment["spec"]["template"]["spec"].get("nodeSelector", {})),
        autoscaled=v["autoscaling"]["enabled"],
        metric=v["autoscaling"]["metric"],
        hpa=(
            f"{KEDA_HPA_PREFIX}{scaledobject['metadata']['name']}"
            if scaledobject
            else hpa["metadata"]["name"]
            if hpa
            else None
        ),
        scaledobject=scaledobject["metadata"]["name"] if scaledobject else None,
        pdb=kinds["PodDisruptionBudget"]["metadata"]["name"] if "PodDisruptionBudget" in kinds else None,
        min_replicas=v["autoscaling"]["minReplicas"] if v["autoscaling"]["enabled"] else v["replicaCount"],
        max_replicas=v["autoscaling"]["maxReplicas"] if v["autoscaling"]["enabled"] else v["replicaCount"],
        local_port=LOCAL_PORT_BASE + index,
        query_prefix=VARIANTS[release.variant].query_prefix,
        startup_estimate=release.sizing.startup_seconds_estimate,
        startup_budget=release.spec.startup_window_seconds,
        api_key_secret=v["vllm"]["apiKey"]["existingSecret"],
        rule=None,
        thresholds=v["prometheusRule"]["thresholds"],
    )


@dataclass(frozen=True)
class CommandBlock:
    code: str  # the block's text, as bash runs it
    skip: str  # why the e2e tier does not run it; empty: it runs


def command_blocks(page: str) -> list[CommandBlock]:
    """The command blocks of a rendered page, in order. Any other fence (```sh, ```promql) is not a command."""
    blocks = [CommandBlock(m["code"], m["skip"] or "") for m in _BLOCK.finditer(page)]
    if page.count("```bash") != len(blocks):
        raise ValueError(f"{page.count('```bash')} ```bash fences, but {len(blocks)} read as command blocks")
    return blocks


def gitops_facts(plan: Plan) -> dict[str, Any]:
    """Who deploys the stack (`managedBy`) and the names of its GitOps objects, for the pause and rollback."""
    objects = gitops_objects(plan)
    application = objects["gitops/argocd-application.yaml"]
    repository = objects["gitops/flux-gitrepository.yaml"]
    # one Flux Kustomization per directory (platform, weights, each variant), chained by dependsOn, in that order
    kustomizations = [o for o in objects.values() if o["kind"] == "Kustomization"]
    return {
        "manager": plan.config.managed_by,
        "app": application["metadata"]["name"],
        "argocd_namespace": application["metadata"]["namespace"],
        "flux_namespace": repository["metadata"]["namespace"],
        "repository": repository["metadata"]["name"],
        "kustomizations": [k["metadata"]["name"] for k in kustomizations],
        "interval": kustomizations[0]["spec"]["interval"],
    }


def weights_job_facts(plan: Plan) -> dict[str, Any] | None:
    """The weights Job (weights.source: pvc): its name, its file in the export and its deadline."""
    job = next((o for o in plan.platform if o["kind"] == "Job"), None)
    if job is None:
        return None
    return {
        "name": job["metadata"]["name"],
        "file": f"manifests/{plan.env}/{object_directory(job)}/{object_filename(job)}",
        "deadline": job["spec"]["activeDeadlineSeconds"],
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["seconds"] = parse_duration
    return env


def render_pages(plan: Plan, rendered: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Relative path under docs/runbooks/ -> page text, for one stack. `rendered`: variant -> objects."""
    if not plan.config.monitoring.prometheus_rule:
        return {}
    templates = _environment()
    facts = [variant_facts(r, rendered[r.variant], i) for i, r in enumerate(plan.releases)]
    rules: dict[str, dict[str, dict[str, Any]]] = {}  # alert -> variant -> rule
    for release in plan.releases:
        for group in rule_groups(rendered[release.variant]):
            for rule in group["rules"]:
                rules.setdefault(rule["alert"], {})[release.variant] = rule
    common = {
        "env": plan.env,
        "namespace": plan.namespace,
        "prometheus_namespace": plan.config.network.prometheus_namespace,
        "stack_file": f"Pulumi.{plan.env}.yaml",
        "gitops": gitops_facts(plan),
        "weights_job": weights_job_facts(plan),
        "backlog_multiple": BACKLOG_TARGET_MULTIPLE,
        # the NetworkPolicy that admits clients and Prometheus to the serving port (infra.core.platform_objects)
        "serving_policy": next(
            o["metadata"]["name"] for o in plan.platform if o["kind"] == "NetworkPolicy" and o["spec"].get("ingress")
        ),
    }
    pages: dict[str, str] = {}
    summaries = []
    for alert in ALERT_NAMES:
        if alert not in rules:
            continue
        variants = [replace(f, rule=rules[alert][f.variant]) for f in facts if f.variant in rules[alert]]
        first = rules[alert][variants[0].variant]  # variants[0].rule, as the dict it is here
        page = templates.get_template(f"{alert}.md.j2").render(
            **common,
            alert=alert,
            variants=variants,
            severity=first["labels"]["severity"],
            thresholds=variants[0].thresholds,
        )
        pages[f"{plan.env}/{alert}.md"] = re.sub(r"\n{3,}", "\n\n", page)  # the macros' blank lines, once
        summaries.append(
            {"alert": alert, "severity": first["labels"]["severity"], "variants": [v.variant for v in variants]}
        )
    pages[f"{plan.env}/README.md"] = templates.get_template("_env_index.md.j2").render(
        **common, alerts=summaries, variants=facts
    )
    return pages


def render_all(
    envs: list[str] | None = None, rendered: dict[tuple[str, str], list[dict[str, Any]]] | None = None
) -> dict[str, str]:
    """Every stack's pages plus the top index (docs/runbooks/README.md). `rendered`: (env, variant) ->
    objects `helm template` rendered, when the caller has them already (the tests do)."""
    from infra.sinks.helm import render_release

    pages: dict[str, str] = {}
    alerts_of: dict[str, list[str]] = {}  # env -> its alerts, in ALERT_NAMES order
    for env in envs or stack_names():
        plan = build_for_env(env)
        if not plan.config.monitoring.prometheus_rule:
            continue
        objects = {r.variant: rendered[(env, r.variant)] if rendered else render_release(r) for r in plan.releases}
        env_pages = render_pages(plan, objects)
        pages.update(env_pages)
        alerts_of[env] = [a for a in ALERT_NAMES if f"{env}/{a}.md" in env_pages]
    pages["README.md"] = (
        _environment()
        .get_template("_index.md.j2")
        .render(alerts_of=alerts_of, without=[e for e in (envs or stack_names()) if e not in alerts_of])
    )
    return pages


def stale_files(pages: dict[str, str], root: Path = RUNBOOKS_DIR) -> list[str]:
    """Generated files that are missing, changed or extra under `root` (templates excepted)."""
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*.md")} if root.exists() else set()
    stale = sorted(set(pages) ^ on_disk)
    stale += sorted(p for p in set(pages) & on_disk if (root / p).read_text() != pages[p])
    return stale
