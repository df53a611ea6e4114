"""Stack configuration: `Pulumi.<env>.yaml` parsed once into frozen, validated objects.

`load()` is the only reader of stack config. It collects every problem before it fails, and each
problem names the config key (`jina-embeddings:<path>`), the bad value, what is allowed and the
`pulumi config set` command that fixes it. Nothing is planned, rendered or registered from an invalid
config. Defaults live in this module and nowhere else.

Who owns which rule (each rule lives in the layer that owns the data it reads):

- this module: stack-level rules over the stack's own keys: types, ranges, enums, references between
  pools and variants, minimum replicas against the pool's capacity, and prerequisites between stack
  features (alerts and queue/KEDA autoscaling need the ServiceMonitor; offline needs the volume; the
  Gateway route needs its namespace);
- infra.core.sizing (`fit_problems`, raised by `infra.core.plan.build`): a slice that cannot hold the model;
- the chart (values.schema.json, templates/validate.yaml): chart-level rules over any values, e.g. probe
  windows, the termination grace against preStop + drain, the GPU resource against the vendor. The chart's
  rules also run on the values Python emits: every export, plan test and `pulumi up` renders through it.

Why a small hand-written reader (`_Reader`) and not pydantic or jsonschema, both of which are locked: each
problem must carry a `pulumi config set --path` that fixes it, with a value that passes; values arrive
string-typed from `pulumi config set` without --path and must be coerced the way Pulumi stores them; secret
values must never be echoed; and problems in one section must not hide or invent problems in another
(a variant on an invalid pool). A schema library reports a location and a message; the fix and the
redaction would still be written here, around it.

The raw input is the stack file's `config:` mapping (the GitOps export reads the YAML file; the
Pulumi program passes the engine's config). Secret values arrive as `SecretValue` markers: the plan
only needs to know that a secret was given, never its plaintext.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, overload

from infra.core.accelerators import (
    GPU_MODELS,
    SLICE_KINDS,
    VENDORS,
    VIDEO_GROUP_ID,
    GpuModel,
    GpuSlice,
    SliceError,
    gpu_slice,
)
from infra.core.catalog import (
    SERVING_MODES,
    SHAPE,
    VARIANT_NAMES,
    VARIANTS,
    default_served_model_name,
)
from infra.core.names import PROJECT
from infra.core.platforms import DEFAULT_PLATFORM, MACHINE_TYPES, PLATFORMS, PlatformProfile, Toleration
from infra.core.sensitive import is_secret_key, looks_like_secret, redact_text

AUTOSCALING_METRICS = ("cpu", "queue", "keda")
WEIGHT_SOURCES = ("download", "pvc")
ROLLOUTS = ("gpu-constrained", "surge")
# Who applies the stack to the cluster, and so who puts back a change made by hand: `pulumi up` only when
# it runs next; Argo CD within seconds when its Application has `syncPolicy.automated.selfHeal`; Flux at its
# Kustomization's next `interval`. The runbooks print the rollback and the pause that fit it.
MANAGERS = ("pulumi", "argocd", "flux")
PVC_ACCESS_MODES = ("ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce")
TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MIN_MAX_MODEL_LEN, MAX_MAX_MODEL_LEN = 512, SHAPE.max_position_embeddings
# Images older than this serve pooling requests of exactly max_model_len forever (vllm#55427).
MIN_VLLM_VERSION = (0, 32, 0)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# A precise host name (Gateway API Hostname without the wildcard form): one host, one route.
_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$")
_IMAGE_TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_SERVED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,252}$")  # the chart schema's servedModelName pattern


def path_join(path: str, key: Any) -> str:
    """`path.key` in `pulumi config --path` syntax: keys with dots or brackets (label keys) as ["key"]."""
    key = str(key)
    if key and not re.search(r'[.\[\]"\s]', key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


@dataclass(frozen=True)
class SecretValue:
    """A config value stored with `pulumi config set --secret`. The plan never sees its plaintext."""

    def __repr__(self) -> str:  # never print a secret, even by accident
        return "SecretValue(<redacted>)"


# ---------------------------------------------------------------------------------------------
# Typed configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolConfig:
    name: str
    vendor: str
    gpu: str
    slice_kind: str
    mig_profile: str
    shared_replicas: int
    node_selector: tuple[tuple[str, str], ...]  # extra labels (cloud, node pool), beyond the profile's
    tolerations: tuple[Toleration, ...]  # extra tolerations, beyond the vendor's GPU taint
    nodes: int  # nodes in the pool: capacity planning and the simulated cluster use it
    gpus_per_node: int
    render_group_id: int | None  # AMD only: the host's `render` group id
    image_tag: str
    read_only_root_filesystem: bool  # default: the vendor's (infra.core.accelerators VendorProfile)
    platform_name: str = ""  # infra.core.platforms; "" = the vendor's operator (DEFAULT_PLATFORM)
    machine_type: str = ""  # a MACHINE_TYPES name: selected on, and the pods' requests checked against it

    @property
    def platform(self) -> PlatformProfile:
        return PLATFORMS[self.platform_name or DEFAULT_PLATFORM[self.vendor]]

    @property
    def gpu_model(self) -> GpuModel:
        return GPU_MODELS[self.gpu]

    @property
    def slice(self) -> GpuSlice:
        return gpu_slice(
            self.gpu_model,
            self.slice_kind,
            mig_profile=self.mig_profile,
            shared_replicas=self.shared_replicas,
            platform=self.platform.name,
        )

    @property
    def full_node_selector(self) -> dict[str, str]:
        """The platform's labels for the GPU and slice, the machine type, then the stack's extras."""
        labels = dict(self.slice.node_labels)
        if self.machine_type:
            labels["node.kubernetes.io/instance-type"] = self.machine_type
        labels.update(dict(self.node_selector))
        return labels

    @property
    def full_tolerations(self) -> tuple[Toleration, ...]:
        platform = self.platform.tolerations()
        return platform + tuple(t for t in self.tolerations if t not in platform)

    @property
    def supplemental_groups(self) -> tuple[int, ...]:
        if not VENDORS[self.vendor].needs_render_groups:
            return ()
        return (VIDEO_GROUP_ID, self.render_group_id) if self.render_group_id is not None else (VIDEO_GROUP_ID,)

    @property
    def capacity_slices(self) -> int:
        return self.nodes * self.gpus_per_node * self.slice.per_gpu


@dataclass(frozen=True)
class VariantConfig:
    name: str
    pool: str
    serving_mode: str
    revision: str | None  # overrides the catalog's pinned commit
    served_model_name: str
    max_model_len: int
    max_num_batched_tokens: int | None
    replicas: int | None  # fixed replica count (no autoscaling)
    min_replicas: int
    max_replicas: int

    @property
    def autoscaled(self) -> bool:
        return self.replicas is None


@dataclass(frozen=True)
class AutoscalingConfig:
    metric: str = "cpu"  # cpu works with metrics-server alone; queue and keda need Prometheus
    target_cpu_utilization: int = 70
    target_waiting_per_pod: int = 5
    keda_prometheus_address: str = "http://prometheus-operated.monitoring.svc:9090"


@dataclass(frozen=True)
class WeightsConfig:
    source: str = "download"
    offline: bool = False
    pvc_size: str = "20Gi"
    pvc_storage_class: str = ""
    pvc_access_mode: str = "ReadWriteMany"
    # Download rate from the model hub the startup budget assumes (MB/s), unless the stack says otherwise.
    download_mbps: float = 25.0


@dataclass(frozen=True)
class NetworkConfig:
    client_namespaces: tuple[str, ...] = ()
    # Only client pods with these labels may connect (in the client namespaces; in the stack's own
    # namespace when no client namespace is named). Empty: every pod of the client namespaces.
    client_pod_labels: tuple[tuple[str, str], ...] = ()
    prometheus_namespace: str = "monitoring"
    # Labels of the Prometheus pods (Prometheus Operator and kube-prometheus-stack set this one).
    prometheus_pod_labels: tuple[tuple[str, str], ...] = (("app.kubernetes.io/name", "prometheus"),)
    gateway_namespace: str = ""


@dataclass(frozen=True)
class GatewayConfig:
    """Optional Gateway API HTTPRoute: one host, a path per variant, only /v1/embeddings and /v1/models."""

    enabled: bool = False
    host: str = ""
    parent_name: str = ""  # the Gateway the route attaches to
    parent_namespace: str = ""
    parent_section: str = ""  # a listener of that Gateway; empty: every listener that admits the route


@dataclass(frozen=True)
class PriorityClassConfig:
    name: str = "jina-embeddings-serving"
    create: bool = True
    value: int = 100000


@dataclass(frozen=True)
class MonitoringConfig:
    service_monitor: bool = False
    prometheus_rule: bool = False
    grafana_dashboard: bool = False
    # Each alert's runbook_url is <runbook_base_url>/<env>/<AlertName>.md. The default is the pages'
    # path in this repository; set your repository's web view (https://.../blob/main/docs/runbooks).
    runbook_base_url: str = "docs/runbooks"
    # Labels on the ServiceMonitor and the PrometheusRule, so that a Prometheus selects them. kube-prometheus-stack's
    # default serviceMonitorSelector and ruleSelector match `release: <its Helm release name>`
    # (prometheusSpec.serviceMonitorSelectorNilUsesHelmValues, ruleSelectorNilUsesHelmValues: true); the default
    # assumes it was installed as `kube-prometheus-stack`.
    labels: tuple[tuple[str, str], ...] = (("release", "kube-prometheus-stack"),)
    # The label Grafana's dashboard sidecar watches (kube-prometheus-stack: grafana.sidecar.dashboards.label
    # grafana_dashboard, labelValue "1"), and the folder it files the dashboard under (the sidecar's
    # folderAnnotation, grafana_folder; empty: the sidecar's default folder).
    dashboard_labels: tuple[tuple[str, str], ...] = (("grafana_dashboard", "1"),)
    dashboard_folder: str = ""


@dataclass(frozen=True)
class SecretsConfig:
    hf_token_secret_name: str = ""
    api_key_secret_name: str = ""
    hf_token_given: bool = False  # `hfToken` was set with --secret: Pulumi creates the Secret
    api_key_given: bool = False


@dataclass(frozen=True)
class StackConfig:
    env: str
    namespace: str
    pools: Mapping[str, PoolConfig]
    variants: Mapping[str, VariantConfig]  # enabled variants only, in catalog order
    autoscaling: AutoscalingConfig
    weights: WeightsConfig
    network: NetworkConfig
    priority_class: PriorityClassConfig
    monitoring: MonitoringConfig
    secrets: SecretsConfig
    rollout: str
    gateway: GatewayConfig = GatewayConfig()
    managed_by: str = "pulumi"  # one of MANAGERS

    def pool_of(self, variant: VariantConfig) -> PoolConfig:
        return self.pools[variant.pool]


# ---------------------------------------------------------------------------------------------
# Problems: every error at once
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    path: str  # e.g. "variants.retrieval.pool"
    value: Any
    message: str
    fix: str

    def __str__(self) -> str:
        return redact_text(f"{PROJECT}:{self.path} = {self.shown_value}: {self.message}\n    fix: {self.fix}")

    @property
    def shown_value(self) -> str:
        """The bad value as the message prints it. A value under a secret-looking key (hfToken,
        secrets.apiKey, weights.password, ...) is never printed, whatever the key's nesting: errors
        end up in terminals, CI logs and Pulumi's console. Secret *names* (hfTokenSecretName) are shown."""
        if isinstance(self.value, SecretValue):
            return "<secret>"
        key = re.split(r"[.\[]", self.path)[-1].strip('"]') if self.path else ""
        if self.value is not None and is_secret_key(key):
            return "<redacted>"
        shown = redact_text(repr(self.value))
        return shown if len(shown) <= 200 else shown[:197] + "..."


class ConfigError(ValueError):
    """Raised with every problem of a stack's config; nothing may be planned from it."""

    def __init__(self, env: str, problems: list[Problem]):
        self.env = env
        self.problems = problems
        header = f"stack '{env}' has {len(problems)} invalid config value(s); nothing was planned or applied:"
        super().__init__(redact_text("\n".join([header] + [f"  - {p}" for p in problems])))


def set_fix(path: str, example: Any) -> str:
    """The `pulumi config set --path` that stores `example` with its type. Pulumi types a --path value: true/false
    become booleans and integers numbers, so a string that reads as one gets `--type string`."""
    if isinstance(example, bool):
        shown, typ = str(example).lower(), ""
    elif isinstance(example, (int, float)):
        shown, typ = json.dumps(example), ""
    else:
        example = str(example)
        retyped = example in ("true", "false") or re.fullmatch(r"-?(0|[1-9][0-9]*)", example)
        shown, typ = shlex.quote(example), " --type string" if retyped and ("." in path or "[" in path) else ""
    return f"pulumi config set{typ} --path '{PROJECT}:{path}' {shown}"


def rm_fix(path: str) -> str:
    return f"pulumi config rm --path '{PROJECT}:{path}'"


class _Reader:
    """Reads one mapping of raw config, recording problems instead of raising."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems

    def problem(self, path: str, value: Any, message: str, fix: str) -> None:
        self.problems.append(Problem(path, value, message, fix))

    def mapping(self, raw: Any, path: str, known: tuple[str, ...] | None = None) -> dict:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.problem(path, raw, "must be a mapping (set its keys with --path)", rm_fix(path))
            return {}
        if known is not None:
            for key in raw:
                if key not in known:
                    self.problem(
                        path_join(path, key),
                        raw[key],
                        f"unknown key; allowed keys: {', '.join(known)}",
                        rm_fix(path_join(path, key)),
                    )
        return dict(raw)

    def string(
        self,
        raw: Mapping,
        key: str,
        path: str,
        default: str,
        *,
        allowed: tuple[str, ...] = (),
        pattern: re.Pattern | None = None,
        what: str = "",
    ) -> str:
        value = raw.get(key, default)
        full = f"{path}.{key}" if path else key
        if isinstance(value, SecretValue):
            self.problem(full, value, "must not be a secret", set_fix(full, default) if default else rm_fix(full))
            return default
        if not isinstance(value, str):
            self.problem(full, value, "must be a string", set_fix(full, default) if default else rm_fix(full))
            return default
        if allowed and value not in allowed:
            self.problem(full, value, f"allowed values: {', '.join(allowed)}", set_fix(full, allowed[0]))
            return default
        if pattern is not None and value and not pattern.match(value):
            self.problem(full, value, f"must be {what}", set_fix(full, default) if default else rm_fix(full))
            return default
        return value

    @overload
    def integer(self, raw: Mapping, key: str, path: str, default: int, *, low: int, high: int) -> int: ...
    @overload
    def integer(self, raw: Mapping, key: str, path: str, default: None, *, low: int, high: int) -> int | None: ...
    def integer(self, raw: Mapping, key: str, path: str, default: int | None, *, low: int, high: int) -> int | None:
        value = raw.get(key, default)
        full = f"{path}.{key}" if path else key
        if value is None:  # absent, or an explicit null: the default (None only where the key is optional)
            return default
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)  # `pulumi config set` without --path stores numbers as strings
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(
                full,
                value,
                f"must be a whole number from {low} to {high}",
                set_fix(full, default if default is not None else low),
            )
            return default
        if not low <= value <= high:
            self.problem(full, value, f"must be from {low} to {high}", set_fix(full, min(max(value, low), high)))
            return default
        return value

    def number(self, raw: Mapping, key: str, path: str, default: float, *, low: float, high: float) -> float:
        value = raw.get(key, default)
        full = f"{path}.{key}" if path else key
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            self.problem(full, value, f"must be a number from {low} to {high}", set_fix(full, default))
            return default
        return float(value)

    def boolean(self, raw: Mapping, key: str, path: str, default: bool) -> bool:
        value = raw.get(key, default)
        full = f"{path}.{key}" if path else key
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.problem(full, value, "must be true or false", set_fix(full, default))
            return default
        return value

    def string_list(self, raw: Mapping, key: str, path: str, *, pattern: re.Pattern, what: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        full = f"{path}.{key}" if path else key
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(full, value, "must be a list of strings", rm_fix(full))
            return ()
        bad = [v for v in value if not pattern.match(v)]
        if bad:
            self.problem(
                full,
                value,
                f"each item must be {what}; bad: {', '.join(bad)}",
                " && ".join(
                    [rm_fix(full)]
                    + [set_fix(f"{full}[{i}]", v) for i, v in enumerate(x for x in value if x not in bad)]
                ),
            )
            return ()
        return tuple(value)


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------

POOL_KEYS = (
    "vendor",
    "platform",
    "machineType",
    "gpu",
    "slice",
    "migProfile",
    "sharedReplicas",
    "nodeSelector",
    "tolerations",
    "nodes",
    "gpusPerNode",
    "renderGroupId",
    "imageTag",
    "readOnlyRootFilesystem",
)
VARIANT_KEYS = (
    "enabled",
    "pool",
    "servingMode",
    "revision",
    "servedModelName",
    "maxModelLen",
    "maxNumBatchedTokens",
    "replicas",
    "minReplicas",
    "maxReplicas",
)
TOP_LEVEL_KEYS = (
    "namespace",
    "servingMode",
    "maxModelLen",
    "pools",
    "variants",
    "autoscaling",
    "weights",
    "network",
    "priorityClass",
    "monitoring",
    "secrets",
    "rollout",
    "managedBy",
    "hfToken",
    "apiKey",
    "gateway",
)
SECRET_KEYS = ("hfToken", "apiKey")
# The keys of each top-level mapping (the pools and variants have POOL_KEYS and VARIANT_KEYS).
AUTOSCALING_KEYS = ("metric", "targetCpuUtilization", "targetWaitingPerPod", "kedaPrometheusAddress")
WEIGHTS_KEYS = ("source", "offline", "pvcSize", "pvcStorageClass", "pvcAccessMode", "downloadMBps")
NETWORK_KEYS = ("clientNamespaces", "clientPodLabels", "prometheusNamespace", "prometheusPodLabels", "gatewayNamespace")
GATEWAY_KEYS = ("enabled", "host", "parentRef")
GATEWAY_PARENT_KEYS = ("name", "namespace", "sectionName")
PRIORITY_CLASS_KEYS = ("name", "create", "value")
MONITORING_KEYS = (
    "serviceMonitor",
    "prometheusRule",
    "grafanaDashboard",
    "runbookBaseUrl",
    "labels",
    "dashboardLabels",
    "dashboardFolder",
)
SECRETS_KEYS = ("hfTokenSecretName", "apiKeySecretName")


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return bool(_LABEL_NAME.match(name)) and (not prefix or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.match(prefix))))


def _read_labels(
    r: _Reader, raw: Mapping, key: str, path: str, default: tuple[tuple[str, str], ...] = ()
) -> tuple[tuple[str, str], ...]:
    """A label mapping (key -> value), each key and value checked like a node selector's."""
    if key not in raw:
        return default
    labels = []
    for name, value in sorted(r.mapping(raw.get(key), f"{path}.{key}").items(), key=lambda kv: str(kv[0])):
        label_path = path_join(f"{path}.{key}", name)
        if not _label_key_ok(str(name)):
            r.problem(
                label_path, value, "is not a valid label key ([prefix/]name, name <= 63 chars)", rm_fix(label_path)
            )
        elif not isinstance(value, str) or (value and not _LABEL_NAME.match(value)):
            # A number or boolean reads as a label value written without quotes: the fix stores it as a string.
            as_text = str(value).lower() if isinstance(value, bool) else str(value)
            scalar = isinstance(value, (bool, int, float)) and _LABEL_NAME.match(as_text)
            r.problem(
                label_path,
                value,
                "label values must be strings of <= 63 letters, digits, '-', '_', '.'",
                set_fix(label_path, as_text) if scalar else rm_fix(label_path),
            )
        else:
            labels.append((str(name), value))
    return tuple(labels)


def _image_tag_ok(tag: str) -> bool:
    match = _IMAGE_TAG.match(tag)
    return match is not None and tuple(int(x) for x in match.groups()) >= MIN_VLLM_VERSION


def _dns_label_like(name: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "gpu-pool"


def _read_pool(r: _Reader, name: str, raw: Any) -> PoolConfig | None:
    path = path_join("pools", name)
    count = len(r.problems)
    if not _DNS_LABEL.match(name):
        r.problem(
            path,
            name,
            "pool names must be DNS labels (lower case, digits, '-')",
            f"rename the pool in the stack file (and the variants' pool), e.g. to {_dns_label_like(name)}",
        )
    raw = r.mapping(raw, path, POOL_KEYS)
    vendor = r.string(raw, "vendor", path, "nvidia", allowed=tuple(VENDORS))
    gpu_names = tuple(k for k, g in GPU_MODELS.items() if g.vendor == vendor)
    # A known machine type implies the GPU and its count: the defaults (and fixes) of `gpu` and `gpusPerNode` follow it.
    hint = MACHINE_TYPES.get(raw["machineType"]) if isinstance(raw.get("machineType"), str) else None
    hint = hint if hint is not None and GPU_MODELS[hint.gpu].vendor == vendor else None
    gpu = r.string(raw, "gpu", path, hint.gpu if hint else gpu_names[0], allowed=tuple(GPU_MODELS))
    if gpu in GPU_MODELS and GPU_MODELS[gpu].vendor != vendor:
        r.problem(
            f"{path}.gpu",
            gpu,
            f"is an {GPU_MODELS[gpu].vendor} GPU but the pool's vendor is {vendor}; {vendor} GPUs: {', '.join(gpu_names)}",
            set_fix(f"{path}.gpu", gpu_names[0]),
        )
    slice_kind = r.string(raw, "slice", path, "whole", allowed=SLICE_KINDS)
    mig_profile = r.string(raw, "migProfile", path, "")
    shared = r.integer(raw, "sharedReplicas", path, 0, low=0, high=64) or 0
    selector = _read_labels(r, raw, "nodeSelector", path)
    tolerations = []
    raw_tolerations = raw.get("tolerations", [])
    if not isinstance(raw_tolerations, list):
        r.problem(
            f"{path}.tolerations",
            raw_tolerations,
            "must be a list of {key, operator, value, effect}",
            set_fix(f"{path}.tolerations[0].key", "nvidia.com/gpu"),
        )
        raw_tolerations = []
    for i, item in enumerate(raw_tolerations):
        tpath = f"{path}.tolerations[{i}]"
        item = r.mapping(item, tpath, ("key", "operator", "value", "effect"))
        key = r.string(item, "key", tpath, "")
        operator = r.string(item, "operator", tpath, "Exists", allowed=TOLERATION_OPERATORS)
        effect = r.string(item, "effect", tpath, "NoSchedule", allowed=TOLERATION_EFFECTS)
        value = item.get("value")
        if not key or not _label_key_ok(key):
            r.problem(
                f"{tpath}.key",
                key,
                "must be a taint key such as nvidia.com/gpu",
                set_fix(f"{tpath}.key", "nvidia.com/gpu"),
            )
        if operator == "Equal" and not isinstance(value, str):
            r.problem(
                f"{tpath}.value", value, "operator Equal needs a string value", set_fix(f"{tpath}.value", "present")
            )
        if operator == "Exists" and value is not None:
            r.problem(
                f"{tpath}.value",
                value,
                "operator Exists takes no value",
                f"pulumi config rm --path '{PROJECT}:{tpath}.value'",
            )
        tolerations.append(
            Toleration(key=key, operator=operator, effect=effect, value=value if operator == "Equal" else None)
        )
    nodes = r.integer(raw, "nodes", path, 1, low=1, high=10000)
    gpus_per_node = r.integer(raw, "gpusPerNode", path, hint.gpus if hint else 8, low=1, high=16)
    render_gid = r.integer(raw, "renderGroupId", path, None, low=1, high=65535)
    default_tag = VENDORS[vendor].image_tag  # vendor is valid here: r.string falls back to the default
    image_tag = r.string(raw, "imageTag", path, default_tag)
    if image_tag != default_tag and not _image_tag_ok(image_tag):
        r.problem(
            f"{path}.imageTag",
            image_tag,
            f"must be a pinned release tag vX.Y.Z >= v{'.'.join(map(str, MIN_VLLM_VERSION))} (never 'latest' or 'nightly')",
            set_fix(f"{path}.imageTag", default_tag),
        )
        image_tag = default_tag
    if vendor == "amd" and "renderGroupId" not in raw:
        r.problem(
            f"{path}.renderGroupId",
            None,
            "AMD pools need the nodes' `render` group id (it differs per node OS: `getent group render` on a node)",
            set_fix(f"{path}.renderGroupId", 110),
        )
    if vendor != "amd" and "renderGroupId" in raw:
        r.problem(
            f"{path}.renderGroupId",
            raw["renderGroupId"],
            "only AMD pools use a render group",
            f"pulumi config rm --path '{PROJECT}:{path}.renderGroupId'",
        )
    before = len(r.problems)
    platform = r.string(raw, "platform", path, DEFAULT_PLATFORM[vendor], allowed=tuple(PLATFORMS))
    if PLATFORMS[platform].vendor != vendor:
        fits = [name for name, p in PLATFORMS.items() if p.vendor == vendor]
        r.problem(
            f"{path}.platform",
            platform,
            f"is an {PLATFORMS[platform].vendor} platform but the pool's vendor is {vendor}; {vendor} platforms: "
            f"{', '.join(fits)}",
            set_fix(f"{path}.platform", fits[0]),
        )
    # machineType is not judged against a platform, GPU or count the pool does not validly have (no invented problem)
    platform_ok = len(r.problems) == before and not any(
        p.path in (f"{path}.gpu", f"{path}.gpusPerNode") for p in r.problems
    )
    machine_type = r.string(raw, "machineType", path, "")
    profile = PLATFORMS[platform]
    if machine_type and platform_ok:
        known = [m for m, t in MACHINE_TYPES.items() if t.cloud == profile.cloud and profile.cloud]
        machine = MACHINE_TYPES.get(machine_type)
        if machine is None or machine.cloud != profile.cloud or not profile.cloud:
            r.problem(
                f"{path}.machineType",
                machine_type,
                f"is not a machine type this bundle knows for platform {platform}; known: {', '.join(known)}"
                if known
                else f"platform {platform} has no machine types to check (machineType is for gke and eks-karpenter)",
                set_fix(f"{path}.machineType", known[0]) if known else rm_fix(f"{path}.machineType"),
            )
        elif machine.gpu != gpu or machine.gpus != gpus_per_node:
            fits = [m for m in known if MACHINE_TYPES[m].gpu == gpu and MACHINE_TYPES[m].gpus == gpus_per_node]
            r.problem(
                f"{path}.machineType",
                machine_type,
                f"has {machine.gpus} x {machine.gpu}, but the pool has gpusPerNode {gpus_per_node} x {gpu}"
                + (f"; machine types that match: {', '.join(fits)}" if fits else ""),
                set_fix(f"{path}.machineType", fits[0]) if fits else set_fix(f"{path}.gpusPerNode", machine.gpus),
            )
    if len(r.problems) > count:
        return None
    pool = PoolConfig(
        name,
        vendor,
        gpu,
        slice_kind,
        mig_profile,
        shared,
        selector,
        tuple(tolerations),
        nodes,
        gpus_per_node,
        render_gid,
        image_tag,
        r.boolean(raw, "readOnlyRootFilesystem", path, VENDORS[vendor].read_only_root_default),
        platform,
        machine_type,
    )
    try:
        _ = pool.slice  # raises SliceError for a slice the GPU cannot offer
    except SliceError as exc:
        r.problem(f"{path}.{exc.field}", raw.get(exc.field), str(exc), set_fix(f"{path}.{exc.field}", exc.example))
        return None
    return pool


def _pools_list(pools: Mapping[str, PoolConfig], invalid_pools: frozenset[str]) -> str:
    """The stack's pools for a message: the valid ones, then those with problems of their own."""
    if not pools and not invalid_pools:
        return "pools: (none defined)"
    shown = [f"pools: {', '.join(pools)}"] if pools else []
    if invalid_pools:
        shown.append(f"invalid pools (see their problems): {', '.join(sorted(invalid_pools))}")
    return "; ".join(shown)


def _read_variant(
    r: _Reader,
    name: str,
    raw: Any,
    pools: Mapping[str, PoolConfig],
    defaults: Mapping[str, Any],
    invalid_pools: frozenset[str] = frozenset(),
) -> VariantConfig | None:
    path = path_join("variants", name)
    count = len(r.problems)
    if name not in VARIANTS:
        r.problem(
            path,
            name,
            f"unknown task variant; allowed: {', '.join(VARIANT_NAMES)}",
            rm_fix(path),
        )
        return None
    raw = r.mapping(raw, path, VARIANT_KEYS)
    if not r.boolean(raw, "enabled", path, True):
        return None
    pool = r.string(raw, "pool", path, next(iter(pools), ""))
    # A pool that exists but failed validation has its own problems reported: say nothing more here,
    # and plan nothing for this variant (below).
    if pool not in pools and pool not in invalid_pools:
        r.problem(
            f"{path}.pool",
            pool,
            f"is not a pool of this stack; {_pools_list(pools, invalid_pools)}",
            set_fix(f"{path}.pool", next(iter(pools), None) or next(iter(sorted(invalid_pools)), "gpu-pool")),
        )
    mode = r.string(raw, "servingMode", path, defaults["servingMode"], allowed=SERVING_MODES)
    revision = (
        r.string(
            raw,
            "revision",
            path,
            "",
            pattern=_COMMIT,
            what="a 40-character lower-case commit SHA (branches such as 'main' move)",
        )
        or None
    )
    variant = VARIANTS[name]
    if mode == "merged" and not revision and not variant.merged_revision:
        r.problem(
            f"{path}.revision",
            None,
            f"no pinned commit of {variant.merged_repository} is known; pin one, or serve this variant from the base repository",
            f"{set_fix(f'{path}.servingMode', 'base')}   # or pin a 40-hex commit with --path '{PROJECT}:{path}.revision'",
        )
    served = r.string(
        raw,
        "servedModelName",
        path,
        default_served_model_name(variant),
        pattern=_SERVED_NAME,
        what="letters, digits and . _ : / - (it is a command-line argument and a PromQL label value)",
    )
    max_len = r.integer(
        raw, "maxModelLen", path, defaults["maxModelLen"], low=MIN_MAX_MODEL_LEN, high=MAX_MAX_MODEL_LEN
    )
    batched = r.integer(raw, "maxNumBatchedTokens", path, None, low=512, high=131072)
    replicas = r.integer(raw, "replicas", path, None, low=1, high=100)
    if replicas is not None and ("minReplicas" in raw or "maxReplicas" in raw):
        r.problem(
            f"{path}.replicas",
            replicas,
            "set either replicas (fixed, no autoscaling) or minReplicas/maxReplicas (autoscaled), not both",
            f"pulumi config rm --path '{PROJECT}:{path}.replicas'",
        )
    low = r.integer(raw, "minReplicas", path, 2, low=1, high=100) or 2
    high = r.integer(raw, "maxReplicas", path, max(low, 4), low=1, high=200) or max(low, 4)
    if replicas is None and high <= low:
        r.problem(
            f"{path}.maxReplicas",
            high,
            f"must be greater than minReplicas ({low}) for autoscaling; for a fixed count use replicas",
            set_fix(f"{path}.maxReplicas", low + 2),
        )
    if len(r.problems) > count or pool not in pools:
        return None
    return VariantConfig(
        name, pool, mode, revision, served, max_len, batched, replicas, replicas or low, replicas or high
    )


_SCRUBBED = object()  # a secret-shaped value taken out of the raw config: reported once, never read again


def _scrub_secrets(r: _Reader, path: str, value: Any) -> Any:
    """`value` without the secret-shaped strings (keys or values) it holds, each reported once with its path and
    never its text: no later message, plan or render can print them. SecretValue markers stay."""
    if isinstance(value, str):
        if looks_like_secret(value):
            r.problem(
                path,
                value,
                "looks like a secret (a token or key) stored in plain text",
                f"{rm_fix(path)}   # a secret belongs in `pulumi config set --secret`",
            )
            return _SCRUBBED
        return value
    if isinstance(value, Mapping):
        kept = {}
        for key, item in value.items():
            if isinstance(key, str) and looks_like_secret(key):
                r.problem(
                    f"{path}[<redacted>]",
                    None,
                    "a key that looks like a secret (a token or key) stored in plain text",
                    f"delete that key of {path} from the stack file",
                )
                continue
            item = _scrub_secrets(r, path_join(path, key), item)
            if item is not _SCRUBBED:
                kept[key] = item
        return kept
    if isinstance(value, list):
        items = [_scrub_secrets(r, f"{path}[{i}]", item) for i, item in enumerate(value)]
        return [item for item in items if item is not _SCRUBBED]
    return value


def load(raw_config: Mapping[str, Any], env: str) -> StackConfig:
    """Parse and validate one stack's config. Raises ConfigError listing every problem."""
    problems: list[Problem] = []
    r = _Reader(problems)
    raw = {}
    for full_key, value in raw_config.items():
        project, sep, key = str(full_key).rpartition(":")
        if sep and project != PROJECT:
            continue  # another namespace's config, e.g. kubernetes:context for the provider
        if looks_like_secret(key):
            r.problem(
                "<redacted>",
                None,
                "a key that looks like a secret (a token or key) stored in plain text",
                "delete that line from the stack file; store secrets with `pulumi config set --secret`",
            )
            continue
        if key not in SECRET_KEYS:
            value = _scrub_secrets(r, key, value)
        if key not in TOP_LEVEL_KEYS:
            if is_secret_key(key) and not isinstance(value, SecretValue):
                r.problem(
                    key,
                    value,
                    "looks like a secret stored in plain text and is not a known key",
                    f"pulumi config rm '{PROJECT}:{key}'",
                )
            else:
                r.problem(
                    key,
                    value,
                    f"unknown key; allowed keys: {', '.join(TOP_LEVEL_KEYS)}",
                    f"pulumi config rm '{PROJECT}:{key}'",
                )
            continue
        if value is not _SCRUBBED:
            raw[key] = value

    namespace = r.string(
        raw, "namespace", "", PROJECT, pattern=_DNS_LABEL, what="a DNS label (lower case, digits, '-', <= 63 chars)"
    )
    if namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
        r.problem(
            "namespace",
            namespace,
            "the embedding servers get a namespace of their own (Pod Security labels are set on it)",
            set_fix("namespace", PROJECT),
        )
    defaults = {
        "servingMode": r.string(raw, "servingMode", "", "merged", allowed=SERVING_MODES),
        "maxModelLen": r.integer(raw, "maxModelLen", "", 8192, low=MIN_MAX_MODEL_LEN, high=MAX_MAX_MODEL_LEN),
    }

    pools: dict[str, PoolConfig] = {}
    raw_pools = r.mapping(raw.get("pools"), "pools")
    if not raw_pools:
        r.problem(
            "pools",
            raw.get("pools"),
            "at least one GPU pool is required",
            set_fix("pools.gpu-h100.gpu", "nvidia-h100-80gb"),
        )
    for name, value in raw_pools.items():
        pool = _read_pool(r, str(name), value)
        if pool is not None:
            pools[pool.name] = pool

    raw_variants = r.mapping(raw.get("variants"), "variants")
    variants: dict[str, VariantConfig] = {}
    invalid_pools = frozenset(str(p) for p in raw_pools) - set(pools)
    for name in list(raw_variants):
        variant = _read_variant(r, str(name), raw_variants[name], pools, defaults, invalid_pools)
        if variant is not None:
            variants[variant.name] = variant
    # "No variant enabled" only when that is the real cause, not when the variants sit on an invalid pool.
    if (
        not variants
        and not any(p.path.startswith("variants.") for p in problems)
        and not (invalid_pools and raw_variants)
    ):
        r.problem(
            "variants",
            raw.get("variants"),
            f"no task variant is enabled; variants: {', '.join(VARIANT_NAMES)}",
            set_fix("variants.retrieval.pool", next(iter(pools), "gpu-pool")),
        )
    variants = {name: variants[name] for name in VARIANT_NAMES if name in variants}

    a = r.mapping(raw.get("autoscaling"), "autoscaling", AUTOSCALING_KEYS)
    d = AutoscalingConfig()
    autoscaling = AutoscalingConfig(
        metric=r.string(a, "metric", "autoscaling", d.metric, allowed=AUTOSCALING_METRICS),
        target_cpu_utilization=r.integer(
            a, "targetCpuUtilization", "autoscaling", d.target_cpu_utilization, low=10, high=95
        ),
        target_waiting_per_pod=r.integer(
            a, "targetWaitingPerPod", "autoscaling", d.target_waiting_per_pod, low=1, high=1000
        ),
        keda_prometheus_address=r.string(
            a,
            "kedaPrometheusAddress",
            "autoscaling",
            d.keda_prometheus_address,
            pattern=re.compile(r"^https?://[^\s]+$"),
            what="an http(s) URL",
        ),
    )

    w = r.mapping(raw.get("weights"), "weights", WEIGHTS_KEYS)
    dw = WeightsConfig()
    weights = WeightsConfig(
        source=r.string(w, "source", "weights", dw.source, allowed=WEIGHT_SOURCES),
        offline=r.boolean(w, "offline", "weights", dw.offline),
        pvc_size=r.string(
            w, "pvcSize", "weights", dw.pvc_size, pattern=_QUANTITY, what="a Kubernetes quantity such as 20Gi"
        ),
        pvc_storage_class=r.string(
            w, "pvcStorageClass", "weights", dw.pvc_storage_class, pattern=_DNS_SUBDOMAIN, what="a StorageClass name"
        ),
        pvc_access_mode=r.string(w, "pvcAccessMode", "weights", dw.pvc_access_mode, allowed=PVC_ACCESS_MODES),
        download_mbps=r.number(w, "downloadMBps", "weights", dw.download_mbps, low=1, high=100000),
    )
    if weights.offline and weights.source == "download":
        r.problem(
            "weights.offline",
            True,
            "offline mode (HF_HUB_OFFLINE=1) needs the weights on a pre-populated volume, but weights.source is download",
            set_fix("weights.source", "pvc"),
        )

    n = r.mapping(raw.get("network"), "network", NETWORK_KEYS)
    network = NetworkConfig(
        client_namespaces=r.string_list(n, "clientNamespaces", "network", pattern=_DNS_LABEL, what="a namespace name"),
        client_pod_labels=_read_labels(r, n, "clientPodLabels", "network"),
        prometheus_namespace=r.string(
            n, "prometheusNamespace", "network", "monitoring", pattern=_DNS_LABEL, what="a namespace name"
        ),
        prometheus_pod_labels=_read_labels(r, n, "prometheusPodLabels", "network", NetworkConfig.prometheus_pod_labels),
        gateway_namespace=r.string(n, "gatewayNamespace", "network", "", pattern=_DNS_LABEL, what="a namespace name"),
    )

    g = r.mapping(raw.get("gateway"), "gateway", GATEWAY_KEYS)
    parent = r.mapping(g.get("parentRef"), "gateway.parentRef", GATEWAY_PARENT_KEYS)
    gateway = GatewayConfig(
        enabled=r.boolean(g, "enabled", "gateway", False),
        host=r.string(
            g,
            "host",
            "gateway",
            "",
            pattern=_HOSTNAME,
            what="one fully qualified host name such as embeddings.example.com (no wildcard)",
        ),
        parent_name=r.string(parent, "name", "gateway.parentRef", "", pattern=_DNS_SUBDOMAIN, what="a Gateway name"),
        parent_namespace=r.string(
            parent,
            "namespace",
            "gateway.parentRef",
            network.gateway_namespace,
            pattern=_DNS_LABEL,
            what="a namespace name",
        ),
        parent_section=r.string(
            parent, "sectionName", "gateway.parentRef", "", pattern=_DNS_LABEL, what="a listener name of the Gateway"
        ),
    )
    if gateway.enabled:
        for key, value, example in (
            ("host", gateway.host, "embeddings.example.com"),
            ("parentRef.name", gateway.parent_name, "shared-gateway"),
            ("parentRef.namespace", gateway.parent_namespace, "gateway"),
        ):
            if not value and not any(p.path == f"gateway.{key}" for p in problems):
                r.problem(
                    f"gateway.{key}",
                    None,
                    "is required when gateway.enabled is true",
                    set_fix(f"gateway.{key}", example),
                )
        if not network.gateway_namespace:
            r.problem(
                "network.gatewayNamespace",
                "",
                "gateway.enabled routes clients through the Gateway's proxies, which the serving "
                "NetworkPolicy admits only from network.gatewayNamespace",
                set_fix("network.gatewayNamespace", gateway.parent_namespace or "gateway"),
            )

    pc = r.mapping(raw.get("priorityClass"), "priorityClass", PRIORITY_CLASS_KEYS)
    dpc = PriorityClassConfig()
    priority = PriorityClassConfig(
        name=r.string(pc, "name", "priorityClass", dpc.name, pattern=_DNS_SUBDOMAIN, what="a PriorityClass name"),
        create=r.boolean(pc, "create", "priorityClass", dpc.create),
        # User-defined classes must stay below 1e9 (system classes use the range above).
        value=r.integer(pc, "value", "priorityClass", dpc.value, low=-2147483648, high=1_000_000_000) or 0,
    )

    m = r.mapping(raw.get("monitoring"), "monitoring", MONITORING_KEYS)
    monitoring = MonitoringConfig(
        service_monitor=r.boolean(m, "serviceMonitor", "monitoring", False),
        prometheus_rule=r.boolean(m, "prometheusRule", "monitoring", False),
        grafana_dashboard=r.boolean(m, "grafanaDashboard", "monitoring", False),
        runbook_base_url=r.string(
            m,
            "runbookBaseUrl",
            "monitoring",
            MonitoringConfig.runbook_base_url,
            pattern=re.compile(r"^[^\s]+[^\s/]$"),
            what="a URL or repository path without spaces or a trailing '/'",
        ),
        labels=_read_labels(r, m, "labels", "monitoring", MonitoringConfig.labels),
        dashboard_labels=_read_labels(r, m, "dashboardLabels", "monitoring", MonitoringConfig.dashboard_labels),
        dashboard_folder=r.string(
            m,
            "dashboardFolder",
            "monitoring",
            "",
            pattern=re.compile(r"^[^\n]{1,100}$"),
            what="a folder name of at most 100 characters",
        ),
    )
    if monitoring.prometheus_rule and not monitoring.service_monitor:
        r.problem(
            "monitoring.prometheusRule",
            True,
            "the alerts read vLLM's series from Prometheus, which must scrape the pods (monitoring.serviceMonitor)",
            set_fix("monitoring.serviceMonitor", True),
        )
    if autoscaling.metric in ("queue", "keda") and not monitoring.service_monitor:
        r.problem(
            "monitoring.serviceMonitor",
            False,
            f"autoscaling.metric {autoscaling.metric} reads vLLM's queue from Prometheus, which must scrape the pods",
            set_fix("monitoring.serviceMonitor", True),
        )

    for key in SECRET_KEYS:
        if key in raw and not isinstance(raw[key], SecretValue):
            r.problem(
                key,
                raw[key],
                "is stored in plain text in the stack file",
                f"pulumi config set --secret '{PROJECT}:{key}'   # prompts for the value",
            )
    s = r.mapping(raw.get("secrets"), "secrets", SECRETS_KEYS)
    hf_given, key_given = isinstance(raw.get("hfToken"), SecretValue), isinstance(raw.get("apiKey"), SecretValue)
    secrets = SecretsConfig(
        hf_token_secret_name=r.string(
            s,
            "hfTokenSecretName",
            "secrets",
            f"{PROJECT}-hf-token" if hf_given else "",
            pattern=_DNS_SUBDOMAIN,
            what="a Secret name",
        ),
        api_key_secret_name=r.string(
            s,
            "apiKeySecretName",
            "secrets",
            f"{PROJECT}-api-key" if key_given else "",
            pattern=_DNS_SUBDOMAIN,
            what="a Secret name",
        ),
        hf_token_given=hf_given,
        api_key_given=key_given,
    )
    rollout = r.string(raw, "rollout", "", "gpu-constrained", allowed=ROLLOUTS)
    managed_by = r.string(raw, "managedBy", "", "pulumi", allowed=MANAGERS)

    for pool in pools.values():
        demand = sum(v.min_replicas for v in variants.values() if v.pool == pool.name)
        if demand > pool.capacity_slices:
            r.problem(
                f"pools.{pool.name}.nodes",
                pool.nodes,
                f"the variants on this pool need {demand} x {pool.slice.resource_name} at their minimum replicas, "
                f"but {pool.nodes} node(s) x {pool.gpus_per_node} GPU(s) x {pool.slice.per_gpu} per GPU = {pool.capacity_slices}",
                set_fix(f"pools.{pool.name}.nodes", -(-demand // (pool.gpus_per_node * pool.slice.per_gpu))),
            )

    if problems:
        raise ConfigError(env, problems)
    return StackConfig(
        env,
        namespace,
        pools,
        variants,
        autoscaling,
        weights,
        network,
        priority,
        monitoring,
        secrets,
        rollout,
        gateway=gateway,
        managed_by=managed_by,
    )
