"""The stack's Grafana dashboard: a ConfigMap for Grafana's sidecar, only where the stack asks for it,
with panels over the real vLLM and kube-state-metrics series of this stack."""

from __future__ import annotations

import json
import re

from infra.core.config import load
from infra.core.plan import build, measured_constants
from infra.sinks.helm import helm_values
from tests.conftest import STACKS

VLLM_METRICS = {
    "vllm:request_success_total",
    "vllm:prompt_tokens_total",
    "vllm:e2e_request_latency_seconds_bucket",
    "vllm:request_queue_time_seconds_bucket",
    "vllm:request_inference_time_seconds_bucket",
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
}


def dashboards(plan):
    """The ConfigMaps the stack's dashboard sidecar label selects."""
    wanted = dict(plan.config.monitoring.dashboard_labels).items()
    return [o for o in plan.platform if o["kind"] == "ConfigMap" and wanted <= o["metadata"]["labels"].items()]


def test_only_stacks_that_ask_get_a_dashboard(stack_plans):
    for env in STACKS:
        plan = stack_plans[env]
        assert len(dashboards(plan)) == (1 if plan.config.monitoring.grafana_dashboard else 0), env
    assert any(dashboards(p) for p in stack_plans.values())


def test_dashboard_json_covers_throughput_latency_queue_replicas_and_gpus(stack_plans):
    for env, plan in stack_plans.items():
        for cm in dashboards(plan):
            assert (
                cm["metadata"]["namespace"] == plan.namespace
                and dict(plan.config.monitoring.dashboard_labels).items() <= cm["metadata"]["labels"].items()
            )
            [(name, text)] = cm["data"].items()
            board = json.loads(text)
            assert name.endswith(".json") and board["uid"] and env in board["title"]
            exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
            used = {m for e in exprs for m in re.findall(r"(vllm:[a-z0-9_:]+)", e)}
            assert used == VLLM_METRICS, f"{env}: {used ^ VLLM_METRICS}"
            assert all(f'namespace="{plan.namespace}"' in e for e in exprs if "vllm:" in e)
            for release in plan.releases:  # replicas vs autoscaler name every Deployment
                assert any(release.name in e and "kube_deployment_status_replicas_available" in e for e in exprs)
            for pool in plan.config.pools.values():  # GPU allocation per pool resource, as kube-state-metrics names it
                resource = re.sub(r"[^a-zA-Z0-9]", "_", pool.slice.resource_name)
                assert any(resource in e and "kube_node_status_allocatable" in e for e in exprs), f"{env}: {resource}"
            variant = next(v for v in board["templating"]["list"] if v["name"] == "variant")
            assert set(variant["query"].split(",")) == {r.served_model_name for r in plan.releases}
            assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
            assert text == json.dumps(board, indent=2, sort_keys=True) + "\n"  # deterministic


def test_monitoring_objects_carry_the_labels_a_prometheus_and_grafana_select():
    """kube-prometheus-stack selects ServiceMonitors and PrometheusRules by `release: <its release>` and dashboards
    by the sidecar's label; the stack sets both (monitoring.labels, monitoring.dashboardLabels/dashboardFolder)."""
    raw = {
        "jina-embeddings:pools": {"gpu": {"vendor": "nvidia", "gpu": "nvidia-h100-80gb", "slice": "whole", "nodes": 2}},
        "jina-embeddings:variants": {"retrieval": {"pool": "gpu"}},
        "jina-embeddings:monitoring": {
            "serviceMonitor": True,
            "prometheusRule": True,
            "grafanaDashboard": True,
            "labels": {"release": "prom"},
            "dashboardLabels": {"dashboards": "on"},
            "dashboardFolder": "Embeddings",
        },
    }
    plan = build(load(raw, "t"), measured_constants())
    values = helm_values(plan.releases[0].spec)
    assert values["serviceMonitor"]["labels"] == values["prometheusRule"]["labels"] == {"release": "prom"}
    [cm] = dashboards(plan)
    assert cm["metadata"]["labels"]["dashboards"] == "on" and "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"]["grafana_folder"] == "Embeddings"
    default = build(
        load({**raw, "jina-embeddings:monitoring": {"serviceMonitor": True, "grafanaDashboard": True}}, "t"),
        measured_constants(),
    )
    assert helm_values(default.releases[0].spec)["serviceMonitor"]["labels"] == {"release": "kube-prometheus-stack"}
    assert dashboards(default)[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
