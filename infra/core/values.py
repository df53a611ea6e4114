"""Helm values of one release (one task variant) from the stack config and the sizing.

Pure: the Pulumi program and the GitOps export both call `release_values` through `infra.core.plan`, so
`pulumi up` and `manifests/<env>/` install the chart with the same values.

One owner per fact: the chart's values.yaml owns every static default (probes other than the start-up
budget, lifecycle, HPA behaviour, security IDs, scrape intervals, alert thresholds); `release_values` emits
only what the plan computes from the stack, the pool, the variant and the sizing. `merged_values` gives the
values the chart renders with, for code that reads a static default (`PlannedRelease.effective_values`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from infra.core.accelerators import MIB, VENDORS
from infra.core.catalog import MATRYOSHKA_DIMENSIONS, VARIANTS, served_model
from infra.core.config import SecretsConfig, StackConfig, VariantConfig
from infra.core.names import (
    KEDA_HPA_PREFIX,
    PROJECT,
    SERVICE_ACCOUNT,
    SERVICE_PORT,
    WEIGHTS_CLAIM,
    release_name,
)
from infra.core.paths import CHART_PATH
from infra.core.sizing import Sizing, SizingConstants, size, sizing_request
from infra.core.thresholds import prometheus_rule_values

DEFAULT_AWAIT_SECONDS = 600  # the Kubernetes provider's own default wait for a Deployment

_ROLLOUTS = {
    # No spare GPU needed: one pod goes, then its replacement comes (research: LLMKube#192).
    "gpu-constrained": {"maxSurge": 0, "maxUnavailable": 1},
    # A node autoscaler can add a GPU for the surge pod; capacity never dips.
    "surge": {"maxSurge": 1, "maxUnavailable": 0},
}


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


def release_values(
    cfg: StackConfig, variant: VariantConfig, constants: SizingConstants
) -> tuple[dict[str, Any], Sizing]:
    pool = cfg.pool_of(variant)
    vendor = VENDORS[pool.vendor]
    gpu_slice = pool.slice
    model = served_model(VARIANTS[variant.name], variant.serving_mode, variant.revision)
    sizing = size(sizing_request(variant, gpu_slice, cfg.weights), constants)
    secrets = {ref.config_key: ref for ref in secret_refs(cfg.secrets)}

    def resources(cpu_millicores: int) -> dict[str, str]:
        # Memory request = limit: the pod's page cache and /dev/shm must never be reclaimed under it.
        return {
            "cpu": cpu_quantity(cpu_millicores),
            "memory": quantity_mib(sizing.memory_bytes),
            "ephemeral-storage": quantity_mib(sizing.ephemeral_storage_bytes),
        }

    values: dict[str, Any] = {
        "fullnameOverride": release_name(variant.name),
        # The chart's own labels already carry app.kubernetes.io/part-of (the schema refuses a repeat).
        "commonLabels": {f"{PROJECT}/stack": cfg.env},
        "model": {
            "variant": variant.name,
            "servingMode": variant.serving_mode,
            "repository": model.repository,
            "revision": model.revision,
            "jinaTask": model.jina_task or "",
            "servedModelName": variant.served_model_name,
            "maxModelLen": variant.max_model_len,
            "matryoshkaDimensions": list(MATRYOSHKA_DIMENSIONS),
        },
        "image": {
            "repository": vendor.image_repository,
            "tag": pool.image_tag,
        },
        "vllm": {
            "port": SERVICE_PORT,
            "gpuMemoryUtilization": sizing.gpu_memory_utilization,
            "maxNumBatchedTokens": sizing.max_num_batched_tokens,
            "maxNumSeqs": sizing.max_num_seqs,
            "apiKey": {"existingSecret": secrets["apiKey"].name, "key": secrets["apiKey"].data_key},
        },
        "gpu": {"vendor": pool.vendor, "resourceName": gpu_slice.resource_name},
        "resources": {
            "requests": resources(sizing.cpu_request_millicores),
            "limits": resources(sizing.cpu_limit_millicores),
        },
        "sharedMemory": {"sizeLimit": quantity_mib(sizing.shm_bytes)},
        "weights": {
            "source": cfg.weights.source,
            "offline": cfg.weights.offline,
            "cacheSizeLimit": quantity_mib(max(sizing.model_cache_bytes, 256 * MIB)),
            "existingClaim": WEIGHTS_CLAIM if cfg.weights.source == "pvc" else "",
            "hfToken": {"existingSecret": secrets["hfToken"].name, "key": secrets["hfToken"].data_key},
        },
        # Readiness, liveness, the probe path and timeouts are static: the chart's values.yaml owns them.
        "probes": {
            "startup": {
                "periodSeconds": sizing.startup_period_seconds,
                "failureThreshold": sizing.startup_failure_threshold,
            },
        },
        # A fixed count is also the variant's minReplicas (infra.core.config): min = max = replicas.
        "replicaCount": variant.min_replicas,
        "autoscaling": {
            "enabled": variant.autoscaled,
            "minReplicas": variant.min_replicas,
            "maxReplicas": variant.max_replicas,
            "metric": cfg.autoscaling.metric,
            "targetCpuUtilization": cfg.autoscaling.target_cpu_utilization,
            "targetWaitingPerPod": cfg.autoscaling.target_waiting_per_pod,
            "keda": {"serverAddress": cfg.autoscaling.keda_prometheus_address},
        },
        # A rollout may take two start-ups back to back before it is reported stuck.
        "rollout": {
            **_ROLLOUTS[cfg.rollout],
            "progressDeadlineSeconds": max(600, 2 * sizing.startup_budget_seconds + 300),
        },
        "nodeSelector": pool.full_node_selector,
        "tolerations": [t.manifest() for t in pool.full_tolerations],
        "priorityClassName": cfg.priority_class.name,
        "podSecurityContext": {"supplementalGroups": list(pool.supplemental_groups)},
        "serviceAccount": {"create": False, "name": SERVICE_ACCOUNT},
        "service": {"port": SERVICE_PORT},
        "httpRoute": http_route_values(cfg, variant),
        "serviceMonitor": {"enabled": cfg.monitoring.service_monitor},
        # Alert rules (templates/prometheusrule.yaml); thresholds and runbook links from infra.core.thresholds.
        "prometheusRule": prometheus_rule_values(cfg, sizing),
    }
    return values, sizing


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


def startup_window_seconds(values: Mapping[str, Any]) -> int:
    """How long a pod of the release may take to start: the startup probe's window."""
    return probe_window_seconds(values["probes"]["startup"])


def rollout_await_seconds(values: Mapping[str, Any]) -> int:
    """How long `pulumi up` may wait for this release's Deployment to finish rolling out.

    A rollout replaces the pods a few at a time (maxSurge + maxUnavailable per step) and each step
    waits for the new pods' model load (the startup probe's window), so a large autoscaled
    Deployment legitimately takes longer than the provider's 10-minute default. A rollout that
    truly hangs still fails early: Kubernetes marks it ProgressDeadlineExceeded after
    rollout.progressDeadlineSeconds, and the provider reports that at once.
    """
    replicas = values["autoscaling"]["maxReplicas"] if values["autoscaling"]["enabled"] else values["replicaCount"]
    per_step = max(1, values["rollout"]["maxSurge"] + values["rollout"]["maxUnavailable"])
    steps = -(-replicas // per_step)
    return max(DEFAULT_AWAIT_SECONDS, steps * startup_window_seconds(values) + 300)


def autoscaler_name(values: Mapping[str, Any]) -> str | None:
    """The HorizontalPodAutoscaler that scales the release (KEDA's own for metric keda); None for a fixed count."""
    autoscaling = values["autoscaling"]
    if not autoscaling["enabled"]:
        return None
    return (
        f"{KEDA_HPA_PREFIX}{values['fullnameOverride']}"
        if autoscaling["metric"] == "keda"
        else values["fullnameOverride"]
    )


def http_route_values(cfg: StackConfig, variant: VariantConfig) -> dict[str, Any]:
    """The chart's HTTPRoute (stack config `gateway`): every variant on the one host, under /<variant>."""
    gw = cfg.gateway
    if not gw.enabled:
        return {"enabled": False, "host": "", "pathPrefix": "", "parentRefs": []}
    parent = {"name": gw.parent_name, "namespace": gw.parent_namespace}
    if gw.parent_section:
        parent["sectionName"] = gw.parent_section
    return {"enabled": True, "host": gw.host, "pathPrefix": f"/{variant.name}", "parentRefs": [parent]}


def vllm_args(values: dict[str, Any]) -> list[str]:
    """The `vllm serve` arguments the chart renders from these values (templates/deployment.yaml).

    `python -m infra plan` prints them; tests/chart asserts the rendered Deployment carries exactly
    these, so this function and the template cannot drift apart.
    """
    m, v = values["model"], values["vllm"]
    overrides: dict[str, Any] = {"matryoshka_dimensions": m["matryoshkaDimensions"]}
    if m["servingMode"] == "base":
        overrides["jina_task"] = m["jinaTask"]
    return [
        m["repository"],
        f"--revision={m['revision']}",
        f"--tokenizer-revision={m['revision']}",
        f"--served-model-name={m['servedModelName']}",
        "--runner=pooling",
        "--trust-remote-code",
        f"--dtype={m['dtype']}",
        f"--max-model-len={m['maxModelLen']}",
        f"--gpu-memory-utilization={v['gpuMemoryUtilization']}",
        f"--max-num-batched-tokens={v['maxNumBatchedTokens']}",
        f"--max-num-seqs={v['maxNumSeqs']}",
        '--pooler-config={"use_activation":true}',
        "--hf-overrides=" + json.dumps(overrides, separators=(",", ":"), sort_keys=True),
        "--host=0.0.0.0",
        f"--port={v['port']}",
        f"--shutdown-timeout={v['shutdownTimeoutSeconds']}",
        "--disable-access-log-for-endpoints=/health,/metrics,/ping",
        *v["extraArgs"],
    ]
