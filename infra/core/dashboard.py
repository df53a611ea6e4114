"""The stack's Grafana dashboard, as a ConfigMap Grafana's dashboard sidecar loads (stack config
monitoring.dashboardLabels, default grafana_dashboard: "1", and monitoring.dashboardFolder).

One dashboard per stack, not per release: it compares the variants side by side (a `variant` variable
picks them by vLLM's `model_name`) and shows the GPU pools they share, which no single release knows.
That is why it is a platform object (infra.core.platform_objects, gated on `monitoring.grafanaDashboard`) and not part
of the chart. Grafana's sidecar watches its own namespace unless `sidecar.dashboards.searchNamespace` is
`ALL` or names this stack's namespace (kube-prometheus-stack's grafana values).

Panels: throughput (inputs/s, prompt tokens/s, HTTP requests/s), latency percentiles, queue, KV cache,
replicas against the autoscaler, and GPU slices allocatable vs requested per pool resource. Pure data:
the JSON is deterministic (sorted keys, fixed ids), committed in the export and checked for drift there.
"""

from __future__ import annotations

import json
from typing import Any

from infra.core.config import StackConfig
from infra.core.names import KEDA_HPA_PREFIX, PROJECT, release_name

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _kube_resource(resource: str) -> str:
    """kube-state-metrics' label value for an extended resource: nvidia.com/mig-1g.10gb -> nvidia_com_mig_1g_10gb."""
    return "".join(c if c.isalnum() else "_" for c in resource)


def _panel(
    panel_id: int,
    title: str,
    targets: list[tuple[str, str]],
    grid: tuple[int, int, int, int],
    unit: str = "short",
    description: str = "",
) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(cfg: StackConfig) -> dict[str, Any]:
    ns = cfg.namespace
    vllm = f'namespace="{ns}", model_name=~"$variant"'
    deployments = "|".join(release_name(v.name) for v in cfg.variants.values())
    hpas = "|".join(f"{KEDA_HPA_PREFIX}{release_name(v.name)}|{release_name(v.name)}" for v in cfg.variants.values())
    resources = sorted({_kube_resource(p.slice.resource_name) for p in cfg.pools.values()})
    panels = [
        _panel(
            1,
            "Inputs embedded / s",
            [(f"sum by (model_name) (rate(vllm:request_success_total{{{vllm}}}[5m]))", "{{model_name}}")],
            (0, 0, 8, 8),
            "reqps",
            "One engine request per input: a /v1/embeddings call with a list counts once per item.",
        ),
        _panel(
            2,
            "Prompt tokens / s",
            [(f"sum by (model_name) (rate(vllm:prompt_tokens_total{{{vllm}}}[5m]))", "{{model_name}}")],
            (8, 0, 8, 8),
            "short",
        ),
        _panel(
            3,
            "HTTP requests / s (/v1/embeddings)",
            [
                (
                    f'sum by (job, status) (rate(http_requests_total{{namespace="{ns}", job=~"{deployments}", handler="/v1/embeddings"}}[5m]))',
                    "{{job}} {{status}}",
                )
            ],
            (16, 0, 8, 8),
            "reqps",
        ),
        _panel(
            4,
            "End-to-end latency p50 / p95 / p99",
            [
                (
                    f"histogram_quantile({q}, sum by (model_name, le) (rate(vllm:e2e_request_latency_seconds_bucket{{{vllm}}}[5m])))",
                    f"p{int(q * 100)} {{{{model_name}}}}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            (0, 8, 12, 8),
            "s",
            "Queue time included; the LatencyHigh alert watches p95.",
        ),
        _panel(
            5,
            "Queue time p95 vs inference time p95",
            [
                (
                    f"histogram_quantile(0.95, sum by (model_name, le) (rate(vllm:request_queue_time_seconds_bucket{{{vllm}}}[5m])))",
                    "queue {{model_name}}",
                ),
                (
                    f"histogram_quantile(0.95, sum by (model_name, le) (rate(vllm:request_inference_time_seconds_bucket{{{vllm}}}[5m])))",
                    "inference {{model_name}}",
                ),
            ],
            (12, 8, 12, 8),
            "s",
        ),
        _panel(
            6,
            "Requests waiting / running",
            [
                (f"sum by (model_name) (vllm:num_requests_waiting{{{vllm}}})", "waiting {{model_name}}"),
                (f"sum by (model_name) (vllm:num_requests_running{{{vllm}}})", "running {{model_name}}"),
            ],
            (0, 16, 12, 8),
            "short",
            "The queue autoscaling and the RequestBacklog alert read.",
        ),
        _panel(
            7,
            "KV cache used (max over pods)",
            [(f"max by (model_name) (vllm:kv_cache_usage_perc{{{vllm}}})", "{{model_name}}")],
            (12, 16, 12, 8),
            "percentunit",
        ),
        _panel(
            8,
            "Replicas vs autoscaler",
            [
                (
                    f'kube_deployment_status_replicas_available{{namespace="{ns}", deployment=~"{deployments}"}}',
                    "available {{deployment}}",
                ),
                (
                    f'kube_deployment_spec_replicas{{namespace="{ns}", deployment=~"{deployments}"}}',
                    "desired {{deployment}}",
                ),
                (
                    f'kube_horizontalpodautoscaler_status_desired_replicas{{namespace="{ns}", horizontalpodautoscaler=~"{hpas}"}}',
                    "HPA wants {{horizontalpodautoscaler}}",
                ),
                (
                    f'kube_horizontalpodautoscaler_spec_max_replicas{{namespace="{ns}", horizontalpodautoscaler=~"{hpas}"}}',
                    "HPA max {{horizontalpodautoscaler}}",
                ),
            ],
            (0, 24, 12, 8),
            "short",
        ),
        _panel(
            9,
            "Autoscaler metric: current vs target",
            [
                (
                    f'kube_horizontalpodautoscaler_status_target_metric{{namespace="{ns}", horizontalpodautoscaler=~"{hpas}"}}',
                    "current {{horizontalpodautoscaler}} {{metric_name}}",
                ),
                (
                    f'kube_horizontalpodautoscaler_spec_target_metric{{namespace="{ns}", horizontalpodautoscaler=~"{hpas}"}}',
                    "target {{horizontalpodautoscaler}} {{metric_name}}",
                ),
            ],
            (12, 24, 12, 8),
            "short",
        ),
        _panel(
            10,
            "GPU pool allocation: allocatable vs requested",
            [
                (
                    f'sum by (resource) (kube_node_status_allocatable{{resource=~"{"|".join(resources)}"}})',
                    "allocatable {{resource}}",
                ),
                (
                    f'sum by (resource) (kube_pod_container_resource_requests{{resource=~"{"|".join(resources)}", node!=""}})',
                    "requested (all namespaces) {{resource}}",
                ),
                (
                    f'sum by (resource) (kube_pod_container_resource_requests{{namespace="{ns}", resource=~"{"|".join(resources)}", node!=""}})',
                    "requested by this stack {{resource}}",
                ),
            ],
            (0, 32, 24, 8),
            "short",
            "Per GPU resource of the stack's pools ("
            + ", ".join(sorted({p.slice.resource_name for p in cfg.pools.values()}))
            + ").",
        ),
    ]
    models = [v.served_model_name for v in cfg.variants.values()]
    return {
        "uid": f"jina-emb-{cfg.env}"[:40],
        "title": f"jina-embeddings-v5 / {cfg.env}",
        "tags": ["jina-embeddings", "vllm", cfg.env],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
                {
                    "name": "variant",
                    "label": "variant (model_name)",
                    "type": "custom",
                    "multi": True,
                    "includeAll": True,
                    "allValue": "|".join(models),
                    "query": ",".join(models),
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "annotations": {"list": []},
    }


def dashboard_configmap(cfg: StackConfig, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{PROJECT}-dashboard",
            "namespace": cfg.namespace,
            "labels": {**labels, **dict(cfg.monitoring.dashboard_labels)},
            **(
                {"annotations": {"grafana_folder": cfg.monitoring.dashboard_folder}}
                if cfg.monitoring.dashboard_folder
                else {}
            ),
        },
        "data": {f"jina-embeddings-{cfg.env}.json": json.dumps(dashboard(cfg), indent=2, sort_keys=True) + "\n"},
    }
