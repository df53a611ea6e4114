"""The chart's sink edge: a release spec becomes Helm values here, and the pinned helm renders them.

`helm_values` is the one place the typed `ReleaseSpec` (infra.core.release) turns into the chart's values
dict; the Pulumi program, the export and `helm template` all pass exactly that dict. `vllm_args` mirrors the
chart's container args (templates/deployment.yaml) for `python -m infra plan`; tests keep the two equal.
The helm binary is the one tools/bootstrap.sh builds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from infra.core.names import PROJECT
from infra.core.paths import TOOLS_DIR
from infra.core.plan import PlannedRelease
from infra.core.release import ReleaseSpec, chart_defaults, merged_values


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""


def helm_binary() -> str:
    """The pinned helm: $HELM, else the tool cache's bin/helm, else helm on PATH."""
    for candidate in (os.environ.get("HELM"), str(TOOLS_DIR / "bin" / "helm"), shutil.which("helm")):
        if candidate and Path(candidate).exists():
            return candidate
    raise HelmError("helm not found: run `make tools` (tools/bootstrap.sh helm) to build the pinned helm")


# `helm template` is a short-lived process that allocates ~50 MB at most: with Go's garbage collector off
# (GOGC=off, https://pkg.go.dev/runtime#hdr-Environment_Variables) it spends ~20 % less CPU (64 -> 52 ms a call).
_TEMPLATE_ENV = {"GOGC": "off"}
# Rendered output keyed by a digest of every input of `helm template` (the helm binary, the chart's files, the
# release, the namespace, the values, HELM_* settings): `export --all --check` and the tiers render the same
# releases again and again, and each helm start costs ~50 ms of CPU. BUNDLE_HELM_CACHE=off renders every time.
HELM_CACHE_DIR = TOOLS_DIR / "cache" / "helm-template"
_HELM_CACHE_MAX = 2000  # entries; the least recently used ones go first


def run_helm(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, env={**os.environ, **env} if env else None
    )
    if proc.returncode != 0:
        raise HelmError(f"helm {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def _template_key(helm: str, chart: Path, release_name: str, namespace: str, values_text: str) -> str:
    h = hashlib.sha256()
    binary = Path(helm).resolve()
    st = binary.stat()
    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith("HELM_"))
    h.update(json.dumps([str(binary), st.st_size, st.st_mtime_ns, release_name, namespace, settings]).encode())
    for f in sorted(p for p in chart.rglob("*") if p.is_file()):
        h.update(b"\0" + str(f.relative_to(chart)).encode() + b"\0" + f.read_bytes())
    h.update(b"\0values\0" + values_text.encode())
    return h.hexdigest()


def _cache_put(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
        entries = list(path.parent.glob("*.yaml"))
        if len(entries) > _HELM_CACHE_MAX:
            for old in sorted(entries, key=lambda p: p.stat().st_mtime)[: len(entries) - _HELM_CACHE_MAX // 2]:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a cache that cannot be written only costs the next call a helm run


def template(chart: Path, release_name: str, namespace: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """`helm template` with the given values; returns the rendered objects (from the digest cache when the
    same inputs were rendered before: only successful renders are kept)."""
    values_text = yaml.dump(values, Dumper=yaml.CSafeDumper, sort_keys=True)
    helm = helm_binary()
    cached = None
    if os.environ.get("BUNDLE_HELM_CACHE", "on") != "off":
        cached = HELM_CACHE_DIR / f"{_template_key(helm, chart, release_name, namespace, values_text)}.yaml"
    if cached is not None and cached.is_file():
        out = cached.read_text()
        os.utime(cached)
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(values_text)
            values_path = f.name
        try:
            args = ("template", release_name, str(chart), "--namespace", namespace, "--values", values_path)
            out = run_helm(*args, env=_TEMPLATE_ENV)
        finally:
            os.unlink(values_path)
        if cached is not None:
            _cache_put(cached, out)
    # LibYAML's parser (PyYAML's C binding): the same documents, several times faster than the pure-Python one.
    return [doc for doc in yaml.load_all(out, Loader=yaml.CSafeLoader) if doc]


def render_release(release: PlannedRelease) -> list[dict[str, Any]]:
    return template(release.chart_path, release.name, release.namespace, helm_values(release.spec))


def helm_values(spec: ReleaseSpec) -> dict[str, Any]:
    """The chart's values for one release: only what the plan computes (values.yaml owns the static defaults)."""
    route: dict[str, Any] = {"enabled": False, "host": "", "pathPrefix": "", "parentRefs": []}
    if spec.http_route is not None:
        parent = {"name": spec.http_route.parent_name, "namespace": spec.http_route.parent_namespace}
        if spec.http_route.parent_section:
            parent["sectionName"] = spec.http_route.parent_section
        route = {
            "enabled": True,
            "host": spec.http_route.host,
            "pathPrefix": spec.http_route.path_prefix,
            "parentRefs": [parent],
        }
    m, r = spec.model, spec.resources

    def resources(cpu: str) -> dict[str, str]:
        return {"cpu": cpu, "memory": r.memory, "ephemeral-storage": r.ephemeral_storage}

    return {
        "fullnameOverride": spec.name,
        # The chart's own labels already carry app.kubernetes.io/part-of (the schema refuses a repeat).
        "commonLabels": {f"{PROJECT}/stack": spec.stack},
        "model": {
            "variant": m.variant,
            "servingMode": m.serving_mode,
            "repository": m.repository,
            "revision": m.revision,
            "jinaTask": m.jina_task,
            "servedModelName": m.served_model_name,
            "maxModelLen": m.max_model_len,
            "matryoshkaDimensions": list(m.matryoshka_dimensions),
        },
        "image": {"repository": spec.image_repository, "tag": spec.image_tag},
        "vllm": {
            "port": spec.port,
            "gpuMemoryUtilization": spec.engine.gpu_memory_utilization,
            "maxNumBatchedTokens": spec.engine.max_num_batched_tokens,
            "maxNumSeqs": spec.engine.max_num_seqs,
            **({"kvCacheMemoryBytes": spec.engine.kv_cache_memory_bytes} if spec.engine.kv_cache_memory_bytes else {}),
            "apiKey": {"existingSecret": spec.api_key.name, "key": spec.api_key.data_key},
        },
        "gpu": {"vendor": spec.gpu_vendor, "resourceName": spec.gpu_resource},
        "resources": {"requests": resources(r.cpu_request), "limits": resources(r.cpu_limit)},
        "sharedMemory": {"sizeLimit": r.shared_memory},
        "scratch": {"homeSizeLimit": r.home_size_limit, "tmpSizeLimit": r.tmp_size_limit},
        "weights": {
            "source": spec.weights.source,
            "offline": spec.weights.offline,
            "cacheSizeLimit": spec.weights.cache_size_limit,
            "existingClaim": spec.weights.existing_claim,
            "readyMarker": spec.weights.ready_marker,
            "hfToken": {"existingSecret": spec.hf_token.name, "key": spec.hf_token.data_key},
        },
        "probes": {
            "startup": {
                "periodSeconds": spec.startup_period_seconds,
                "failureThreshold": spec.startup_failure_threshold,
            },
        },
        "replicaCount": spec.scaling.min_replicas,
        "autoscaling": {
            "enabled": spec.scaling.autoscaled,
            "minReplicas": spec.scaling.min_replicas,
            "maxReplicas": spec.scaling.max_replicas,
            "metric": spec.scaling.metric,
            "targetCpuUtilization": spec.scaling.target_cpu_utilization,
            "targetWaitingPerPod": spec.scaling.target_waiting_per_pod,
            "keda": {"serverAddress": spec.scaling.keda_server_address},
        },
        "rollout": {
            "maxSurge": spec.rollout.max_surge,
            "maxUnavailable": spec.rollout.max_unavailable,
            "progressDeadlineSeconds": spec.rollout.progress_deadline_seconds,
        },
        "nodeSelector": dict(spec.node_selector),
        "tolerations": [t.manifest() for t in spec.tolerations],
        "priorityClassName": spec.priority_class,
        "podSecurityContext": {"supplementalGroups": list(spec.supplemental_groups)},
        "securityContext": {"readOnlyRootFilesystem": spec.read_only_root_filesystem},
        "serviceAccount": {"create": False, "name": spec.service_account},
        "service": {"port": spec.port},
        "httpRoute": route,
        "serviceMonitor": {"enabled": spec.monitoring.service_monitor, "labels": dict(spec.monitoring.labels)},
        # Alert rules (templates/prometheusrule.yaml): the runbook links and the two derived thresholds.
        "prometheusRule": {
            "enabled": spec.monitoring.prometheus_rule,
            "runbookBaseUrl": spec.monitoring.runbook_base_url,
            "labels": dict(spec.monitoring.labels),
            "thresholds": dict(spec.monitoring.derived_thresholds),
        },
    }


def effective_values(spec: ReleaseSpec) -> dict[str, Any]:
    """The values the chart renders with: values.yaml's defaults under `helm_values`, merged as Helm merges."""
    return merged_values(chart_defaults(), helm_values(spec))


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
        *([f"--kv-cache-memory-bytes={v['kvCacheMemoryBytes']}"] if v.get("kvCacheMemoryBytes") else []),
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
