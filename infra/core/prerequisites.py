"""What a cluster must have before the first sync or `pulumi up` of a stack, derived from the stack itself.

Pure: a list of findings, each naming the component, why this stack needs it and where it comes from. The
export's `manifests/<env>/README.md` prints them ("Before the first sync"); they are not written by hand, so a
stack that turns on KEDA or MIG gets the matching line, and one that does not never does.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.core.config import StackConfig


@dataclass(frozen=True)
class Prerequisite:
    component: str
    why: str


def prerequisites(cfg: StackConfig) -> list[Prerequisite]:
    needs: list[Prerequisite] = []
    for pool in cfg.pools.values():  # what the pool's GPU platform needs (infra.core.platforms)
        needs += [Prerequisite(p.component, p.why) for p in pool.platform.prerequisites(pool)]
    autoscaled = any(v.autoscaled for v in cfg.variants.values())
    metric = cfg.autoscaling.metric
    if autoscaled and metric == "cpu":
        needs.append(Prerequisite("metrics-server", "the HorizontalPodAutoscalers scale on CPU (metrics.k8s.io)"))
    if autoscaled and metric == "queue":
        needs.append(
            Prerequisite(
                "prometheus-adapter with the bundle's rule (charts/jina-embeddings/files/prometheus-adapter-rules.yaml)",
                "the HorizontalPodAutoscalers scale on vllm:num_requests_waiting per pod (custom.metrics.k8s.io)",
            )
        )
    if autoscaled and metric == "keda":
        needs.append(
            Prerequisite("KEDA", f"ScaledObjects query Prometheus at {cfg.autoscaling.keda_prometheus_address}")
        )
    if cfg.monitoring.service_monitor or cfg.monitoring.prometheus_rule:
        labels = ", ".join(f"{k}: {v}" for k, v in cfg.monitoring.labels)
        needs.append(
            Prerequisite(
                "Prometheus Operator (kube-prometheus-stack)",
                f"ServiceMonitor{' and PrometheusRule' if cfg.monitoring.prometheus_rule else ''} labelled `{labels}`: "
                "its serviceMonitorSelector and ruleSelector must match",
            )
        )
    if cfg.monitoring.grafana_dashboard:
        labels = ", ".join(f"{k}: {v}" for k, v in cfg.monitoring.dashboard_labels)
        needs.append(
            Prerequisite(
                "Grafana's dashboard sidecar",
                f"the dashboard ConfigMap labelled `{labels}` in `{cfg.namespace}`: the sidecar must watch that namespace",
            )
        )
    if cfg.gateway.enabled:
        needs.append(
            Prerequisite(
                "Gateway API CRDs and a Gateway controller",
                f"the HTTPRoutes attach to Gateway `{cfg.gateway.parent_namespace}/{cfg.gateway.parent_name}`",
            )
        )
    if cfg.weights.source == "pvc":
        storage = (
            f"StorageClass `{cfg.weights.pvc_storage_class}`"
            if cfg.weights.pvc_storage_class
            else "the default StorageClass"
        )
        needs.append(
            Prerequisite(
                storage,
                f"the weights PersistentVolumeClaim ({cfg.weights.pvc_size}, {cfg.weights.pvc_access_mode}) binds through it",
            )
        )
    if not cfg.priority_class.create:
        needs.append(
            Prerequisite(
                f"PriorityClass `{cfg.priority_class.name}`", "the pods name it and the stack does not create it"
            )
        )
    return needs
