"""The typed release spec: what one Helm release (one task variant on one pool) deploys, as the plan decides it.

Pure. `release_spec` turns the stack config and the sizing into a frozen `ReleaseSpec`; it becomes the chart's
Helm values dict only at the sink edge (`infra.sinks.helm.helm_values`), so every other reader (the CLI, the
runbooks, status, the alert cases, the Pulumi program) reads typed fields.

One owner per fact: the chart's values.yaml owns every static default (probes other than the start-up budget,
lifecycle, HPA behaviour, security IDs, scrape intervals, the static alert thresholds); the spec holds only
what the plan computes from the stack, the pool, the variant and the sizing. `chart_defaults` reads values.yaml
(at call time) for the code that needs a static default, and `merged_values` merges as Helm does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from infra.core.accelerators import MIB, VENDORS, Toleration
from infra.core.catalog import MATRYOSHKA_DIMENSIONS, VARIANTS, served_model
from infra.core.config import SecretsConfig, StackConfig, VariantConfig
from infra.core.names import (
    KEDA_HPA_PREFIX,
    SERVICE_ACCOUNT,
    SERVICE_PORT,
    WEIGHTS_CLAIM,
    release_name,
    weights_ready_marker,
)
from infra.core.paths import CHART_PATH
from infra.core.sizing import Sizing, SizingConstants, size, sizing_request
from infra.core.thresholds import thresholds_for

DEFAULT_AWAIT_SECONDS = 600  # the Kubernetes provider's own default wait for a Deployment

# (maxSurge, maxUnavailable) of each stack `rollout`.
ROLLOUTS = {
    # No spare GPU needed: one pod goes, then its replacement comes (research: LLMKube#192).
    "gpu-constrained": (0, 1),
    # A node autoscaler can add a GPU for the surge pod; capacity never dips.
    "surge": (1, 0),
}
# The emptyDir the weights are downloaded into is never smaller than this, even with weights on a volume.
MIN_MODEL_CACHE_BYTES = 256 * MIB


class SecretRef(NamedTuple):
    """A Secret the releases can reference by name and key; its value never reaches the values."""

    config_key: str  # the stack config key set with --secret, e.g. "hfToken"
    name: str  # the Kubernetes Secret (stack config `secrets.*SecretName`); "" when the stack references none
    data_key: str  # the key inside the Secret the chart reads, e.g. "token"
    purpose: str


def secret_refs(secrets: SecretsConfig) -> tuple[SecretRef, ...]:
    """Every Secret a release can reference: the Helm values, the Secrets `pulumi up` creates
    (infra.sinks.pulumi.program) and the export's list of Secrets to create (infra.sinks.export) all read this table."""
    return (
        SecretRef(
            "hfToken", secrets.hf_token_secret_name, "token", "Hugging Face token, mounted as a file (HF_TOKEN_PATH)"
        ),
        SecretRef("apiKey", secrets.api_key_secret_name, "api-key", "API key clients must send (VLLM_API_KEY)"),
    )


def quantity_mib(n_bytes: int) -> str:
    """Bytes, rounded up to whole MiB, as a quantity in Kubernetes' canonical form: the largest binary
    suffix with an integer mantissa (3072Mi -> "3Gi", 1536Mi stays "1536Mi"). The API server stores
    quantities that way, so a manifest in any other form differs from its live object; server-side
    apply then reports a conflict with the field's other manager (`pulumi up` vs `kubectl apply` of
    the export)."""
    mib = -(-n_bytes // MIB)
    for suffix, factor in (("Ti", 1024 * 1024), ("Gi", 1024)):
        if mib and mib % factor == 0:
            return f"{mib // factor}{suffix}"
    return f"{mib}Mi" if mib else "0"


def cpu_quantity(millicores: int) -> str:
    return f"{millicores // 1000}" if millicores % 1000 == 0 else f"{millicores}m"


@dataclass(frozen=True)
class ModelSpec:
    variant: str
    serving_mode: str  # merged | base
    repository: str
    revision: str
    jina_task: str  # base mode only; "" otherwise
    served_model_name: str
    max_model_len: int
    matryoshka_dimensions: tuple[int, ...]


@dataclass(frozen=True)
class EngineSpec:
    """The vLLM flags the sizing decides."""

    gpu_memory_utilization: float
    max_num_batched_tokens: int
    max_num_seqs: int
    kv_cache_memory_bytes: int | None  # set only on slices whose memory co-tenants share (see sizing.Sizing)


@dataclass(frozen=True)
class PodResources:
    """Quantities in Kubernetes' canonical form; memory request = limit (page cache and /dev/shm are never
    reclaimed under it)."""

    cpu_request: str
    cpu_limit: str
    memory: str
    ephemeral_storage: str
    shared_memory: str
    home_size_limit: str  # emptyDir sizeLimits the ephemeral-storage figure covers
    tmp_size_limit: str


@dataclass(frozen=True)
class WeightsSpec:
    source: str  # download | pvc
    offline: bool
    cache_size_limit: str
    existing_claim: str  # "" unless source is pvc
    ready_marker: str  # with source pvc: the file the weights Job writes when this model is complete; "" otherwise


@dataclass(frozen=True)
class ScalingSpec:
    autoscaled: bool
    min_replicas: int  # = the fixed count when not autoscaled
    max_replicas: int
    metric: str  # cpu | queue | keda
    target_cpu_utilization: int
    target_waiting_per_pod: int
    keda_server_address: str


@dataclass(frozen=True)
class RolloutSpec:
    max_surge: int
    max_unavailable: int
    progress_deadline_seconds: int


@dataclass(frozen=True)
class HttpRouteSpec:
    host: str
    path_prefix: str
    parent_name: str
    parent_namespace: str
    parent_section: str  # "" for every listener that admits the route


@dataclass(frozen=True)
class MonitoringSpec:
    service_monitor: bool
    prometheus_rule: bool
    runbook_base_url: str
    labels: Mapping[str, str]  # on the ServiceMonitor and the PrometheusRule, for a Prometheus' selectors
    derived_thresholds: Mapping[str, Any]  # the thresholds the plan derives (infra.core.thresholds)


@dataclass(frozen=True)
class ReleaseSpec:
    """Everything the plan decides about one release. Field names are Python's; the sink maps them to the
    chart's values (infra.sinks.helm.helm_values)."""

    name: str  # the release, its Service and Deployment (never `vllm`)
    stack: str
    model: ModelSpec
    image_repository: str
    image_tag: str
    engine: EngineSpec
    port: int
    api_key: SecretRef
    hf_token: SecretRef
    gpu_vendor: str
    gpu_resource: str
    resources: PodResources
    weights: WeightsSpec
    startup_period_seconds: int
    startup_failure_threshold: int
    scaling: ScalingSpec
    rollout: RolloutSpec
    node_selector: Mapping[str, str]
    tolerations: tuple[Toleration, ...]
    priority_class: str
    supplemental_groups: tuple[int, ...]
    read_only_root_filesystem: bool
    service_account: str
    http_route: HttpRouteSpec | None
    monitoring: MonitoringSpec

    @property
    def startup_window_seconds(self) -> int:
        """How long a pod of the release may take to start: the startup probe's window."""
        return probe_window_seconds(
            {"periodSeconds": self.startup_period_seconds, "failureThreshold": self.startup_failure_threshold}
        )

    @property
    def rollout_await_seconds(self) -> int:
        """How long `pulumi up` may wait for this release's Deployment to finish rolling out.

        A rollout replaces the pods a few at a time (maxSurge + maxUnavailable per step) and each step
        waits for the new pods' model load (the startup probe's window), so a large autoscaled
        Deployment legitimately takes longer than the provider's 10-minute default. A rollout that
        truly hangs still fails early: Kubernetes marks it ProgressDeadlineExceeded after
        rollout.progressDeadlineSeconds, and the provider reports that at once.
        """
        replicas = self.scaling.max_replicas
        per_step = max(1, self.rollout.max_surge + self.rollout.max_unavailable)
        steps = -(-replicas // per_step)
        return max(DEFAULT_AWAIT_SECONDS, steps * self.startup_window_seconds + 300)

    @property
    def autoscaler_name(self) -> str | None:
        """The HorizontalPodAutoscaler that scales the release (KEDA's own for metric keda); None for a fixed count."""
        if not self.scaling.autoscaled:
            return None
        return f"{KEDA_HPA_PREFIX}{self.name}" if self.scaling.metric == "keda" else self.name

    @property
    def effective_thresholds(self) -> dict[str, Any]:
        """Every alert threshold the release's rules use: the chart's static ones and the plan's derived ones."""
        return {**chart_defaults()["prometheusRule"]["thresholds"], **self.monitoring.derived_thresholds}


def release_spec(cfg: StackConfig, variant: VariantConfig, constants: SizingConstants) -> tuple[ReleaseSpec, Sizing]:
    pool = cfg.pool_of(variant)
    model = served_model(VARIANTS[variant.name], variant.serving_mode, variant.revision)
    sizing = size(sizing_request(variant, pool.slice, cfg.weights), constants)
    secrets = {ref.config_key: ref for ref in secret_refs(cfg.secrets)}
    surge, unavailable = ROLLOUTS[cfg.rollout]
    gw = cfg.gateway
    spec = ReleaseSpec(
        name=release_name(variant.name),
        stack=cfg.env,
        model=ModelSpec(
            variant=variant.name,
            serving_mode=variant.serving_mode,
            repository=model.repository,
            revision=model.revision,
            jina_task=model.jina_task or "",
            served_model_name=variant.served_model_name,
            max_model_len=variant.max_model_len,
            matryoshka_dimensions=tuple(MATRYOSHKA_DIMENSIONS),
        ),
        image_repository=VENDORS[pool.vendor].image_repository,
        image_tag=pool.image_tag,
        engine=EngineSpec(
            sizing.gpu_memory_utilization,
            sizing.max_num_batched_tokens,
            sizing.max_num_seqs,
            sizing.kv_cache_memory_bytes,
        ),
        port=SERVICE_PORT,
        api_key=secrets["apiKey"],
        hf_token=secrets["hfToken"],
        gpu_vendor=pool.vendor,
        gpu_resource=pool.slice.resource_name,
        resources=PodResources(
            cpu_request=cpu_quantity(sizing.cpu_request_millicores),
            cpu_limit=cpu_quantity(sizing.cpu_limit_millicores),
            memory=quantity_mib(sizing.memory_bytes),
            ephemeral_storage=quantity_mib(sizing.ephemeral_storage_bytes),
            shared_memory=quantity_mib(sizing.shm_bytes),
            home_size_limit=quantity_mib(sizing.home_bytes),
            tmp_size_limit=quantity_mib(sizing.tmp_bytes),
        ),
        weights=WeightsSpec(
            source=cfg.weights.source,
            offline=cfg.weights.offline,
            cache_size_limit=quantity_mib(max(sizing.model_cache_bytes, MIN_MODEL_CACHE_BYTES)),
            existing_claim=WEIGHTS_CLAIM if cfg.weights.source == "pvc" else "",
            ready_marker=weights_ready_marker(model.repository, model.revision) if cfg.weights.source == "pvc" else "",
        ),
        startup_period_seconds=sizing.startup_period_seconds,
        startup_failure_threshold=sizing.startup_failure_threshold,
        # A fixed count is also the variant's minReplicas (infra.core.config): min = max = replicas.
        scaling=ScalingSpec(
            autoscaled=variant.autoscaled,
            min_replicas=variant.min_replicas,
            max_replicas=variant.max_replicas,
            metric=cfg.autoscaling.metric,
            target_cpu_utilization=cfg.autoscaling.target_cpu_utilization,
            target_waiting_per_pod=cfg.autoscaling.target_waiting_per_pod,
            keda_server_address=cfg.autoscaling.keda_prometheus_address,
        ),
        # A rollout may take two start-ups back to back before it is reported stuck.
        rollout=RolloutSpec(surge, unavailable, max(600, 2 * sizing.startup_budget_seconds + 300)),
        node_selector=pool.full_node_selector,
        tolerations=pool.full_tolerations,
        priority_class=cfg.priority_class.name,
        supplemental_groups=pool.supplemental_groups,
        read_only_root_filesystem=pool.read_only_root_filesystem,
        service_account=SERVICE_ACCOUNT,
        # The stack's HTTPRoute (config `gateway`): every variant on the one host, under /<variant>.
        http_route=HttpRouteSpec(gw.host, f"/{variant.name}", gw.parent_name, gw.parent_namespace, gw.parent_section)
        if gw.enabled
        else None,
        monitoring=MonitoringSpec(
            service_monitor=cfg.monitoring.service_monitor,
            prometheus_rule=cfg.monitoring.prometheus_rule,
            runbook_base_url=f"{cfg.monitoring.runbook_base_url}/{cfg.env}",
            labels=dict(cfg.monitoring.labels),
            derived_thresholds=thresholds_for(cfg, sizing),
        ),
    )
    return spec, sizing


@lru_cache(maxsize=1)
def chart_defaults(path: Path = CHART_PATH / "values.yaml") -> Mapping[str, Any]:
    """The chart's values.yaml: the one owner of every static default (read at call time, once)."""
    return yaml.safe_load(path.read_text())


def merged_values(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a release's values over the chart's defaults: maps merge key by key, anything
    else (lists included) is replaced, and a null removes the default (helm.sh/helm/v4 pkg/chart/common/util
    coalesce.go)."""
    out = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def probe_window_seconds(probe: Mapping[str, Any]) -> int:
    """How long a probe tolerates failure: periodSeconds x failureThreshold (Kubernetes' defaults 10 and 3).
    The one place this formula lives in Python; the chart's `jina-embeddings.probeWindow` is its twin."""
    return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))
