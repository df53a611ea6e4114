"""Preflight: does a cluster have what a stack needs, before `pulumi up` or the first GitOps sync?

Pure. Two steps, both plain data in and out:

- `requirements(plan, objects, sink)`: what the stack needs, read from the objects it deploys (the plan's
  platform objects + `helm template` of every release, rendered from the values the plan computes): every
  apiVersion/kind, the metrics APIs its autoscalers read (from the rendered HorizontalPodAutoscalers and
  ScaledObjects), each Deployment's pod template (nodeSelector, tolerations, requests, PriorityClass,
  Secrets) with the replica range of its release, and the Namespace and PriorityClass the stack creates itself.
- `evaluate(req, snapshot)`: findings from a snapshot of cluster facts, a dict in Kubernetes' own JSON
  shapes (`infra.ops.preflight.snapshot` reads it; the unit tests write it by hand):

      server            the API server's URL (for the report)
      served            {"<group>/<version>" or "v1": [kinds it serves]}; a group version missing here is not served
      apiServices       [APIService objects]
      metricNames       {"<group>/<version>": [resource names it lists, e.g. "pods/vllm_num_requests_waiting"]}
      nodes             [Node objects]: metadata.name/labels, spec.taints/unschedulable, status.allocatable
      pods              [{"nodeName", "namespace", "labels", "requests": {resource: quantity}}]: every bound,
                        unfinished pod (what already uses the nodes' allocatable)
      priorityClasses   [names]
      namespace         the Namespace object, or None when it does not exist
      secrets           {name: [data keys]} of the stack's namespace
      storageClasses    [StorageClass objects]: metadata.name and annotations
      errors            {key: why it could not be read}: any key above listed here gives `unknown` findings

Nothing here names a vendor, a resource or a label: selectors, tolerations and resource names come from the
rendered pod templates, so a new platform profile or slice changes what is checked without touching this file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from infra.core.errors import EXIT_FAILED, EXIT_OK, EXIT_WARNINGS
from infra.core.plan import Plan
from infra.core.release import secret_refs

OK, WARN, FAIL, UNKNOWN = "ok", "warn", "fail", "unknown"
SINKS = ("pulumi", "gitops")

# Kubernetes' own API groups (k8s.io/kubernetes pkg/controlplane/instance.go, the groups the API server
# serves itself): a kind in one of them is built in, any other is a CustomResourceDefinition's.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
    }
)

# Where a custom resource's CRD comes from: the fix a missing one gets. A group not listed gets a generic fix.
CRD_SOURCES = {
    "monitoring.coreos.com": "the Prometheus Operator's CRDs (Helm chart prometheus-community/kube-prometheus-stack "
    "installs them; https://github.com/prometheus-operator/prometheus-operator)",
    "keda.sh": "KEDA (Helm chart kedacore/keda installs its CRDs; https://keda.sh/docs/latest/deploy/)",
    "karpenter.sh": "Karpenter (its Helm chart installs the CRDs; NodeOverlay also needs the feature gate "
    "settings.featureGates.nodeOverlay=true: https://karpenter.sh/docs/concepts/nodeoverlays/)",
    "gateway.networking.k8s.io": "the Gateway API CRDs (standard-install.yaml of a "
    "https://github.com/kubernetes-sigs/gateway-api/releases release) and a Gateway controller",
}

METRICS, CUSTOM_METRICS, EXTERNAL_METRICS = "metrics.k8s.io", "custom.metrics.k8s.io", "external.metrics.k8s.io"
METRICS_API_FIX = {
    METRICS: "install metrics-server (https://github.com/kubernetes-sigs/metrics-server): it serves "
    "v1beta1.metrics.k8s.io, which the CPU HorizontalPodAutoscalers read",
    CUSTOM_METRICS: "install prometheus-adapter (Helm chart prometheus-community/prometheus-adapter) with the rule in "
    "charts/jina-embeddings/files/prometheus-adapter-rules.yaml under rules.custom",
    EXTERNAL_METRICS: "install KEDA (https://keda.sh/docs/latest/deploy/): its metrics API server registers "
    "v1beta1.external.metrics.k8s.io, which the HorizontalPodAutoscalers of the ScaledObjects read",
}

PSS_PREFIX = "pod-security.kubernetes.io/"


@dataclass(frozen=True)
class Finding:
    check: str  # api | crd | metrics-api | custom-metric | nodes | capacity | priority-class | namespace | secret | storage-class
    subject: str
    status: str  # ok | warn | fail | unknown
    found: str
    fix: str = ""

    def line(self) -> str:
        fix = f" | fix: {self.fix}" if self.fix and self.status != OK else ""
        return f"{self.status:<7} {self.check:<14} {self.subject}: {self.found}{fix}"


@dataclass(frozen=True)
class MetricNeed:
    group: str  # metrics.k8s.io | custom.metrics.k8s.io | external.metrics.k8s.io
    metric: str  # "pods/<name>" for a custom metric the API must list; "" when only the API must be Available
    by: str  # the object that needs it


@dataclass(frozen=True)
class Workload:
    """One pod template the stack runs, with its replica range."""

    name: str  # "Deployment/<name>", "Job/<name>"
    pool: str  # the stack's pool it runs on; "" for pods without one (the weights Job)
    min_replicas: int
    max_replicas: int
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    requests: Mapping[str, Fraction]  # per pod, every container's requests (limits where a request is unset)
    priority_class: str
    secrets: tuple[tuple[str, str], ...]  # (Secret name, key or "" for the whole Secret)


@dataclass(frozen=True)
class SecretNeed:
    name: str
    keys: tuple[str, ...]
    used_by: tuple[str, ...]
    created_by: str  # "" unless the stack creates it (pulumi up, from a --secret config key)


@dataclass(frozen=True)
class Requirements:
    env: str
    namespace: str
    sink: str
    kinds: tuple[tuple[str, str], ...]  # (apiVersion, kind), sorted
    metrics: tuple[MetricNeed, ...]
    workloads: tuple[Workload, ...]
    namespace_labels: Mapping[str, str] | None  # the Pod Security labels of the stack's Namespace; None: not created
    priority_classes_created: frozenset[str]
    secrets: tuple[SecretNeed, ...]
    claims: tuple[tuple[str, str], ...] = ()  # (PersistentVolumeClaim, its storageClassName or "" for the default)
    pool_config_path: Mapping[str, str] = field(default_factory=dict)  # pool -> "pools.<name>" for fixes
    # pools whose nodes a provisioner (Karpenter) launches for Pending pods: no node yet is a warning, not a failure
    provisioned_pools: frozenset[str] = frozenset()

    @property
    def group_versions(self) -> list[str]:
        return sorted({api for api, _ in self.kinds})


# ---------------------------------------------------------------------------------------------
# Quantities
# ---------------------------------------------------------------------------------------------

_SUFFIXES: dict[str, Fraction | int] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def parse_quantity(value: Any) -> Fraction:
    """A Kubernetes quantity ("500m", "2Gi", "1e3", 4) as an exact number (k8s.io/apimachinery
    pkg/api/resource/quantity.go). Raises ValueError naming the value."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            try:
                return Fraction(text[: -len(suffix)]) * _SUFFIXES[suffix]
            except ValueError:
                break
    try:
        return Fraction(text)  # also "1e3": Fraction reads decimal exponents
    except ValueError:
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from None


def format_quantity(resource: str, amount: Fraction) -> str:
    if resource == "cpu":
        return f"{float(amount):g}" if amount.denominator == 1 else f"{int(amount * 1000)}m"
    if resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
        return f"{float(amount) / 2**30:.1f}Gi"
    return f"{float(amount):g}"


def pod_requests(pod_spec: Mapping[str, Any]) -> dict[str, Fraction]:
    """What the scheduler reserves for one pod: the sum of its containers' requests, where an unset request
    defaults to the limit (k8s.io/kubernetes pkg/apis/core/v1/defaults.go), and no less than any init
    container's (k8s.io/component-helpers resource/helpers.go PodRequests)."""

    def container(c: Mapping[str, Any]) -> dict[str, Fraction]:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {k: parse_quantity(v) for k, v in merged.items()}

    total: dict[str, Fraction] = {}
    for c in pod_spec.get("containers") or []:
        for k, v in container(c).items():
            total[k] = total.get(k, Fraction(0)) + v
    for c in pod_spec.get("initContainers") or []:
        for k, v in container(c).items():
            total[k] = max(total.get(k, Fraction(0)), v)
    return total


def _pod_secrets(pod_spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(Secret, key) pairs a pod needs: volumes, env secretKeyRefs, envFrom and image pull Secrets; optional
    references are left out (the pod starts without them)."""
    out: list[tuple[str, str]] = []
    for v in pod_spec.get("volumes") or []:
        s = v.get("secret")
        if s and not s.get("optional"):
            items = [i["key"] for i in s.get("items") or []]
            out += [(s["secretName"], k) for k in items] or [(s["secretName"], "")]
        for source in (v.get("projected") or {}).get("sources") or []:
            s = source.get("secret")
            if s and not s.get("optional"):
                out += [(s["name"], i["key"]) for i in s.get("items") or []] or [(s["name"], "")]
    for c in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                out.append((ref["name"], ref["key"]))
        for e in c.get("envFrom") or []:
            ref = e.get("secretRef")
            if ref and not ref.get("optional"):
                out.append((ref["name"], ""))
    out += [(s["name"], "") for s in pod_spec.get("imagePullSecrets") or []]
    return out


# ---------------------------------------------------------------------------------------------
# What the stack needs
# ---------------------------------------------------------------------------------------------


def _api_group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _metric_needs(obj: Mapping[str, Any]) -> list[MetricNeed]:
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    if obj["kind"] == "ScaledObject":  # KEDA's own HorizontalPodAutoscaler reads its external metrics API
        return [MetricNeed(EXTERNAL_METRICS, "", name)]
    needs = []
    for m in (obj.get("spec") or {}).get("metrics") or []:
        kind = m.get("type")
        if kind in ("Resource", "ContainerResource"):
            needs.append(MetricNeed(METRICS, "", name))
        elif kind == "Pods":
            needs.append(MetricNeed(CUSTOM_METRICS, f"pods/{m['pods']['metric']['name']}", name))
        elif kind == "Object":
            described = m["object"]["describedObject"]["kind"].lower()
            needs.append(MetricNeed(CUSTOM_METRICS, f"{described}s/{m['object']['metric']['name']}", name))
        elif kind == "External":
            needs.append(MetricNeed(EXTERNAL_METRICS, "", name))
    return needs


def requirements(plan: Plan, objects: Iterable[Mapping[str, Any]], sink: str = "pulumi") -> Requirements:
    """What the stack needs of a cluster, from the objects it deploys (`objects`: the plan's platform objects and
    every release's rendered chart, as infra.sinks.bundles.plan_objects returns them)."""
    if sink not in SINKS:
        raise ValueError(f"sink {sink!r}: expected one of {', '.join(SINKS)}")
    objects = list(objects)
    releases = {r.name: r for r in plan.releases}
    kinds = sorted({(o["apiVersion"], o["kind"]) for o in objects})
    metrics = [
        need for o in objects if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject") for need in _metric_needs(o)
    ]
    workloads = []
    for o in objects:
        if o["kind"] not in ("Deployment", "Job"):
            continue
        template = o["spec"]["template"]["spec"]
        release = releases.get(o["metadata"]["name"]) if o["kind"] == "Deployment" else None
        lo, hi = (
            (release.spec.scaling.min_replicas, release.spec.scaling.max_replicas)
            if release
            else (int(o["spec"].get("replicas", 1)), int(o["spec"].get("replicas", 1)))
        )
        workloads.append(
            Workload(
                name=f"{o['kind']}/{o['metadata']['name']}",
                pool=release.pool.name if release else "",
                min_replicas=lo,
                max_replicas=hi,
                node_selector=dict(template.get("nodeSelector") or {}),
                tolerations=tuple(template.get("tolerations") or ()),
                requests=pod_requests(template),
                priority_class=template.get("priorityClassName", ""),
                secrets=tuple(_pod_secrets(template)),
            )
        )
    ns_obj = next((o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == plan.namespace), None)
    ns_labels = (
        {k: v for k, v in (ns_obj["metadata"].get("labels") or {}).items() if k.startswith(PSS_PREFIX)}
        if ns_obj
        else None
    )
    created_pcs = frozenset(o["metadata"]["name"] for o in objects if o["kind"] == "PriorityClass")
    # Secrets: `pulumi up` creates those whose value the stack sets with --secret (infra.sinks.pulumi.program
    # secret_specs); a GitOps sync creates none (the export references Secrets by name only).
    given = {"hfToken": plan.config.secrets.hf_token_given, "apiKey": plan.config.secrets.api_key_given}
    created = {
        ref.name: f"`pulumi up`, from the stack's `{ref.config_key}` (--secret)"
        for ref in secret_refs(plan.config.secrets)
        if ref.name and sink == "pulumi" and given.get(ref.config_key)
    }
    by_secret: dict[str, tuple[set[str], set[str]]] = {}
    for w in workloads:
        for name, key in w.secrets:
            keys, users = by_secret.setdefault(name, (set(), set()))
            if key:
                keys.add(key)
            users.add(w.name)
    secrets = tuple(
        SecretNeed(name, tuple(sorted(keys)), tuple(sorted(users)), created.get(name, ""))
        for name, (keys, users) in sorted(by_secret.items())
    )
    return Requirements(
        env=plan.env,
        namespace=plan.namespace,
        sink=sink,
        kinds=tuple(kinds),
        metrics=tuple(metrics),
        workloads=tuple(workloads),
        namespace_labels=ns_labels,
        priority_classes_created=created_pcs,
        secrets=secrets,
        claims=tuple(
            sorted(
                (o["metadata"]["name"], (o.get("spec") or {}).get("storageClassName") or "")
                for o in objects
                if o["kind"] == "PersistentVolumeClaim"
            )
        ),
        pool_config_path={p: f"pools.{p}" for p in plan.config.pools},
        provisioned_pools=frozenset(p for p, pool in plan.config.pools.items() if pool.platform.provisions_nodes),
    )


# ---------------------------------------------------------------------------------------------
# Judging a snapshot
# ---------------------------------------------------------------------------------------------


def _unknown(check: str, subject: str, snapshot: Mapping[str, Any], key: str) -> Finding | None:
    why = (snapshot.get("errors") or {}).get(key)
    if why is None:
        return None
    return Finding(check, subject, UNKNOWN, f"could not read {key}: {why}", "grant this user read access, then re-run")


def check_kinds(req: Requirements, snapshot: Mapping[str, Any]) -> list[Finding]:
    served: Mapping[str, list[str]] = snapshot.get("served") or {}
    findings, builtin_ok = [], []
    for api_version, kind in req.kinds:
        group = _api_group(api_version)
        builtin = group in BUILTIN_GROUPS
        check = "api" if builtin else "crd"
        subject = f"{api_version} {kind}"
        unknown = _unknown(check, subject, snapshot, f"served {api_version}")
        if unknown:
            findings.append(unknown)
            continue
        kinds = served.get(api_version)
        if kinds is not None and kind in kinds:
            if builtin:
                builtin_ok.append(kind)
            else:
                findings.append(Finding(check, subject, OK, "served (CRD installed and established)"))
            continue
        found = (
            f"{api_version} is served but has no kind {kind}"
            if kinds is not None
            else f"{api_version} is not served by this cluster"
        )
        if builtin:
            fix = f"the cluster's Kubernetes is too old or has {api_version} turned off: upgrade the control plane"
        else:
            source = CRD_SOURCES.get(group, f"the CustomResourceDefinition that serves {kind} in {api_version}")
            fix = f"install {source}; `kubectl api-resources --api-group={group}` then lists {kind}"
        findings.append(Finding(check, subject, FAIL, found, fix))
    if builtin_ok:
        findings.insert(0, Finding("api", "built-in kinds", OK, f"all served: {', '.join(sorted(set(builtin_ok)))}"))
    return findings


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return {}


def check_metrics_apis(req: Requirements, snapshot: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    for group in sorted({m.group for m in req.metrics}):
        users = sorted({m.by for m in req.metrics if m.group == group})
        subject = group
        unknown = _unknown("metrics-api", subject, snapshot, "apiServices")
        if unknown:
            findings.append(unknown)
            continue
        services = [s for s in snapshot.get("apiServices") or [] if (s.get("spec") or {}).get("group") == group]
        if not services:
            findings.append(
                Finding(
                    "metrics-api",
                    subject,
                    FAIL,
                    f"no APIService serves {group} (needed by {', '.join(users)})",
                    METRICS_API_FIX[group],
                )
            )
            continue
        available = [s for s in services if _condition(s, "Available").get("status") == "True"]
        names = ", ".join(s["metadata"]["name"] for s in services)
        if not available:
            c = _condition(services[0], "Available")
            why = ": ".join(x for x in (c.get("reason", "no Available condition"), c.get("message", "")) if x)
            findings.append(
                Finding(
                    "metrics-api",
                    subject,
                    FAIL,
                    f"APIService {names} is not Available ({why})",
                    f"`kubectl get apiservice {services[0]['metadata']['name']} -o yaml` names the backing Service: "
                    "make its pods run and be reachable from the API server",
                )
            )
            continue
        backend = (available[0].get("spec") or {}).get("service") or {}
        where = f"{backend.get('namespace')}/{backend.get('name')}" if backend else "the API server itself"
        if group == EXTERNAL_METRICS and "keda" not in str(backend.get("name", "")):
            # Only one APIService may serve a group version: KEDA's ScaledObjects need KEDA's own
            # (https://keda.sh/docs/latest/operate/metrics-server/).
            findings.append(
                Finding(
                    "metrics-api",
                    subject,
                    WARN,
                    f"Available, but served by {where}, not KEDA's metrics API server",
                    "KEDA's ScaledObjects read external metrics from keda-operator-metrics-apiserver: only one "
                    "adapter can serve external.metrics.k8s.io in a cluster",
                )
            )
            continue
        findings.append(Finding("metrics-api", subject, OK, f"{available[0]['metadata']['name']} Available ({where})"))
        for metric in sorted({m.metric for m in req.metrics if m.group == group and m.metric}):
            findings.append(_check_metric_listed(group, metric, available, snapshot))
    return findings


def _check_metric_listed(
    group: str, metric: str, available: list[Mapping[str, Any]], snapshot: Mapping[str, Any]
) -> Finding:
    versions = [f"{group}/{s['spec']['version']}" for s in available]
    listed = snapshot.get("metricNames") or {}
    errors = snapshot.get("errors") or {}
    unread = [gv for gv in versions if f"metricNames {gv}" in errors]
    if any(metric in (listed.get(gv) or []) for gv in versions):
        return Finding("custom-metric", metric, OK, f"listed by {', '.join(versions)}")
    if unread and len(unread) == len(versions):
        return Finding(
            "custom-metric", metric, UNKNOWN, f"could not list {unread[0]}: {errors[f'metricNames {unread[0]}']}"
        )
    # prometheus-adapter lists a metric only once Prometheus has a series of it (its discovery runs every
    # --metrics-relist-interval over recent series; kubernetes-sigs/prometheus-adapter README): before the
    # first vLLM pod is scraped, a correct rule lists nothing yet.
    return Finding(
        "custom-metric",
        metric,
        WARN,
        f"not listed by {', '.join(versions)}",
        "add charts/jina-embeddings/files/prometheus-adapter-rules.yaml to prometheus-adapter's rules.custom; the "
        "adapter lists the metric only once Prometheus scrapes a vLLM pod (expected before the first deploy: "
        f"re-check with `kubectl get --raw /apis/{versions[0]}` after it)",
    )


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """A pod's tolerations tolerate the taint (k8s.io/api core/v1 toleration.go ToleratesTaint)."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t["key"] != taint.get("key"):
            continue
        if op == "Exists" or (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _blocking_taints(node: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> list[str]:
    tolerations = list(tolerations)
    return [
        f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}"
        for t in (node.get("spec") or {}).get("taints") or []
        if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, t)
    ]


def eligible_nodes(workload: Workload, nodes: Iterable[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], dict]:
    """Nodes the workload's pods can be scheduled on, and why the others that carry its labels cannot."""
    ok, rejected = [], {}
    for node in nodes:
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in workload.node_selector.items()):
            continue
        name = node["metadata"]["name"]
        blocking = _blocking_taints(node, workload.tolerations)
        if blocking:
            rejected[name] = f"taint {', '.join(blocking)} not tolerated"
        elif (node.get("spec") or {}).get("unschedulable"):
            rejected[name] = "cordoned (spec.unschedulable)"
        else:
            ok.append(node)
    return ok, rejected


def _pools(req: Requirements) -> dict[str, list[Workload]]:
    pools: dict[str, list[Workload]] = {}
    for w in req.workloads:
        if w.pool:
            pools.setdefault(w.pool, []).append(w)
    return pools


def check_nodes(req: Requirements, snapshot: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for pool, workloads in _pools(req).items():
        subject = f"pool {pool}"
        unknown = _unknown("nodes", subject, snapshot, "nodes")
        if unknown:
            findings.append(unknown)
            continue
        w = workloads[0]
        selector = ",".join(f"{k}={v}" for k, v in sorted(w.node_selector.items()))
        nodes, rejected = eligible_nodes(w, snapshot.get("nodes") or [])
        path = req.pool_config_path.get(pool, f"pools.{pool}")
        if nodes:
            names = ", ".join(n["metadata"]["name"] for n in nodes)
            extra = f"; not usable: {'; '.join(f'{k} ({v})' for k, v in sorted(rejected.items()))}" if rejected else ""
            findings.append(Finding("nodes", subject, OK, f"{len(nodes)} node(s) match -l {selector}: {names}{extra}"))
        elif rejected:
            findings.append(
                Finding(
                    "nodes",
                    subject,
                    FAIL,
                    f"nodes carry -l {selector} but none can run the pods: "
                    + "; ".join(f"{k} ({v})" for k, v in sorted(rejected.items())),
                    f"add the taint's toleration to {path}.tolerations, or uncordon the nodes",
                )
            )
        elif pool in req.provisioned_pools:
            findings.append(
                Finding(
                    "nodes",
                    subject,
                    WARN,
                    f"no node carries -l {selector} yet; the pool's platform launches nodes for Pending pods",
                    "check that a Karpenter NodePool can launch nodes with these labels and the pool's GPU "
                    "(its requirements and labels; the stack's NodeOverlay gives Karpenter the slice's resource)",
                )
            )
        else:
            findings.append(
                Finding(
                    "nodes",
                    subject,
                    FAIL,
                    f"no node carries -l {selector}",
                    f"add the pool's nodes (a node autoscaler's pool must give them these labels), or correct "
                    f"{path}.nodeSelector / the pool's GPU to what `kubectl get nodes --show-labels` shows",
                )
            )
    return findings


def _used_on(snapshot: Mapping[str, Any], node_names: set[str], req: Requirements) -> dict[str, Fraction]:
    """Requests of the pods already on these nodes, other than this stack's own."""
    used: dict[str, Fraction] = {}
    for pod in snapshot.get("pods") or []:
        if pod.get("nodeName") not in node_names:
            continue
        labels = pod.get("labels") or {}
        if pod.get("namespace") == req.namespace and labels.get("app.kubernetes.io/part-of"):
            continue  # this stack's own pods (a re-run after a deploy) are what the plan counts
        for k, v in (pod.get("requests") or {}).items():
            used[k] = used.get(k, Fraction(0)) + parse_quantity(v)
    return used


def check_capacity(req: Requirements, snapshot: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for pool, workloads in _pools(req).items():
        unknown = _unknown("capacity", f"pool {pool}", snapshot, "nodes")
        if unknown:
            findings.append(unknown)
            continue
        nodes, _ = eligible_nodes(workloads[0], snapshot.get("nodes") or [])
        if not nodes:
            continue  # the nodes finding says why
        names = {n["metadata"]["name"] for n in nodes}
        pods_unread = "pods" in (snapshot.get("errors") or {})
        used = {} if pods_unread else _used_on(snapshot, names, req)
        resources = sorted({r for w in workloads for r in w.requests})
        for resource in resources:
            subject = f"pool {pool} {resource}"
            per_node = [
                parse_quantity(((n.get("status") or {}).get("allocatable") or {}).get(resource, 0)) for n in nodes
            ]
            allocatable = sum(per_node, Fraction(0))
            free = allocatable - used.get(resource, Fraction(0))
            need_min = sum((w.requests.get(resource, Fraction(0)) * w.min_replicas for w in workloads), Fraction(0))
            need_max = sum((w.requests.get(resource, Fraction(0)) * w.max_replicas for w in workloads), Fraction(0))
            per_pod = max(w.requests.get(resource, Fraction(0)) for w in workloads)

            def q(x: Fraction) -> str:
                return format_quantity(resource, x)

            usage = f", {q(used[resource])} already requested by other pods" if used.get(resource) else ""
            found = (
                f"needs {q(need_min)} at minReplicas, {q(need_max)} at maxReplicas; "
                f"{q(allocatable)} allocatable on {len(nodes)} node(s){usage}"
            )
            if pods_unread:
                found += " (other pods' requests unknown: could not list pods)"
            fix_more = f"add nodes to the pool, or lower the variants' replicas on {req.pool_config_path.get(pool)}"
            if max(per_node) < per_pod:
                findings.append(
                    Finding(
                        "capacity",
                        subject,
                        FAIL,
                        f"one pod needs {q(per_pod)}, the largest node has {q(max(per_node))} allocatable",
                        "use nodes with more of it per node, or a smaller slice for the pool",
                    )
                )
            elif need_min > free:
                findings.append(Finding("capacity", subject, FAIL, found, fix_more))
            elif need_max > free:
                findings.append(
                    Finding(
                        "capacity",
                        subject,
                        WARN,
                        found + ": the autoscalers cannot reach maxReplicas",
                        fix_more + " (fine when a node autoscaler adds nodes for Pending pods)",
                    )
                )
            else:
                findings.append(Finding("capacity", subject, OK, found))
    return findings


def check_priority_classes(req: Requirements, snapshot: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for name in sorted({w.priority_class for w in req.workloads if w.priority_class}):
        users = sorted(w.name for w in req.workloads if w.priority_class == name)
        if name in req.priority_classes_created:
            findings.append(Finding("priority-class", name, OK, "created by the stack"))
            continue
        unknown = _unknown("priority-class", name, snapshot, "priorityClasses")
        if unknown:
            findings.append(unknown)
        elif name in (snapshot.get("priorityClasses") or []):
            findings.append(Finding("priority-class", name, OK, "exists"))
        else:
            findings.append(
                Finding(
                    "priority-class",
                    name,
                    FAIL,
                    f"does not exist and the stack does not create it (named by {', '.join(users)})",
                    f"create PriorityClass {name} (`kubectl create priorityclass {name} --value=100000`), or set "
                    "priorityClass.create: true in the stack",
                )
            )
    return findings


def _pss(labels: Mapping[str, str]) -> str:
    """Pod Security labels, short: "enforce=restricted, warn=restricted" (the -version labels left out)."""
    modes = {k.removeprefix(PSS_PREFIX): v for k, v in labels.items() if not k.endswith("-version")}
    return ", ".join(f"{k}={v}" for k, v in sorted(modes.items())) or "none"


def check_namespace(req: Requirements, snapshot: Mapping[str, Any]) -> list[Finding]:
    subject = req.namespace
    unknown = _unknown("namespace", subject, snapshot, "namespace")
    if unknown:
        return [unknown]
    ns = snapshot.get("namespace")
    wanted = dict(req.namespace_labels or {})
    shown = _pss(wanted)
    if ns is None:
        if req.namespace_labels is None:
            return [
                Finding(
                    "namespace",
                    subject,
                    FAIL,
                    "does not exist and the stack does not create it",
                    f"kubectl create namespace {req.namespace}",
                )
            ]
        return [Finding("namespace", subject, OK, f"created by the stack with Pod Security {shown}")]
    if (ns.get("status") or {}).get("phase") == "Terminating" or ns["metadata"].get("deletionTimestamp"):
        return [
            Finding(
                "namespace",
                subject,
                FAIL,
                "is being deleted (Terminating)",
                f"wait for it to go (`kubectl wait --for=delete namespace/{req.namespace}`); "
                "an unavailable aggregated API (APIService) keeps a namespace Terminating",
            )
        ]
    have = {k: v for k, v in (ns["metadata"].get("labels") or {}).items() if k.startswith(PSS_PREFIX)}
    have_shown = _pss(have)
    if req.namespace_labels is None:
        if have.get(f"{PSS_PREFIX}enforce") == "restricted":
            return [Finding("namespace", subject, OK, f"exists, Pod Security {have_shown}")]
        return [
            Finding(
                "namespace",
                subject,
                WARN,
                f"exists with Pod Security {have_shown}; the pods are built for enforce=restricted",
                f"kubectl label namespace {req.namespace} {PSS_PREFIX}enforce=restricted",
            )
        ]
    if all(have.get(k) == v for k, v in wanted.items()):
        return [Finding("namespace", subject, OK, f"exists with the stack's Pod Security labels ({shown})")]
    return [
        Finding(
            "namespace",
            subject,
            WARN,
            f"exists with Pod Security {have_shown}; the stack sets {shown}",
            "the stack's apply changes the labels: every other pod of the namespace must then meet the "
            "restricted profile (`kubectl label --dry-run=server --overwrite namespace "
            f"{req.namespace} {PSS_PREFIX}enforce=restricted` lists those that do not)",
        )
    ]


def check_secrets(req: Requirements, snapshot: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for s in req.secrets:
        users = ", ".join(s.used_by)
        if s.created_by:
            findings.append(Finding("secret", s.name, OK, f"created by {s.created_by}"))
            continue
        unknown = _unknown("secret", s.name, snapshot, "secrets")
        if unknown:
            findings.append(unknown)
            continue
        present: Mapping[str, list[str]] = snapshot.get("secrets") or {}
        keys = " ".join(f"--from-file={k}=<file>" for k in s.keys) or "--from-file=<key>=<file>"
        create = f"kubectl -n {req.namespace} create secret generic {s.name} {keys}"
        if req.sink == "gitops":
            create += " (or External Secrets / Sealed Secrets / SOPS: the export references Secrets by name only)"
        if s.name not in present:
            findings.append(Finding("secret", s.name, FAIL, f"missing in {req.namespace} (used by {users})", create))
            continue
        missing = [k for k in s.keys if k not in present[s.name]]
        if missing:
            findings.append(
                Finding(
                    "secret",
                    s.name,
                    FAIL,
                    f"exists but lacks key {', '.join(missing)} (has: {', '.join(present[s.name]) or 'none'})",
                    f"recreate it with the key: {create}",
                )
            )
        else:
            findings.append(Finding("secret", s.name, OK, f"exists with key {', '.join(s.keys) or '(whole Secret)'}"))
    return findings


DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def check_storage_classes(req: Requirements, snapshot: Mapping[str, Any]) -> list[Finding]:
    """The weights PersistentVolumeClaim binds only through its StorageClass, or the cluster's default one when it
    names none (https://kubernetes.io/docs/concepts/storage/storage-classes/#default-storageclass)."""
    findings = []
    classes = {c["metadata"]["name"]: c for c in snapshot.get("storageClasses") or []}
    for claim, name in req.claims:
        subject = name or f"default (for {claim})"
        unknown = _unknown("storage-class", subject, snapshot, "storageClasses")
        if unknown:
            findings.append(unknown)
        elif name and name in classes:
            findings.append(Finding("storage-class", subject, OK, f"exists (PersistentVolumeClaim {claim})"))
        elif name:
            findings.append(
                Finding(
                    "storage-class",
                    subject,
                    FAIL,
                    f"does not exist: PersistentVolumeClaim {claim} would stay Pending",
                    f"create StorageClass {name}, or set weights.pvcStorageClass to one of: "
                    f"{', '.join(sorted(classes)) or '(the cluster has none)'}",
                )
            )
        else:
            default = [
                n
                for n, c in classes.items()
                if (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
            ]
            findings.append(
                Finding("storage-class", subject, OK, f"{default[0]} is the default")
                if default
                else Finding(
                    "storage-class",
                    subject,
                    FAIL,
                    f"no default StorageClass: PersistentVolumeClaim {claim} names none and would stay Pending",
                    "set weights.pvcStorageClass, or mark a class default "
                    f"(annotation {DEFAULT_CLASS_ANNOTATION}=true)",
                )
            )
    return findings


def evaluate(req: Requirements, snapshot: Mapping[str, Any]) -> list[Finding]:
    return [
        *check_kinds(req, snapshot),
        *check_metrics_apis(req, snapshot),
        *check_nodes(req, snapshot),
        *check_capacity(req, snapshot),
        *check_priority_classes(req, snapshot),
        *check_namespace(req, snapshot),
        *check_secrets(req, snapshot),
        *check_storage_classes(req, snapshot),
    ]


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def exit_code(findings: Iterable[Finding]) -> int:
    """0 every check ok; 1 any failure; 4 warnings or checks that could not run, and no failure."""
    statuses = {f.status for f in findings}
    if FAIL in statuses:
        return EXIT_FAILED
    if statuses & {WARN, UNKNOWN}:
        return EXIT_WARNINGS
    return EXIT_OK


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    out = {OK: 0, WARN: 0, FAIL: 0, UNKNOWN: 0}
    for f in findings:
        out[f.status] += 1
    return out


def render_text(req: Requirements, server: str, findings: list[Finding]) -> str:
    c = counts(findings)
    lines = [f"preflight of stack {req.env} (namespace {req.namespace}, via {req.sink}) against {server}", ""]
    lines += [f.line() for f in findings]
    lines += ["", f"{c[OK]} ok, {c[WARN]} warn, {c[FAIL]} fail, {c[UNKNOWN]} unknown"]
    return "\n".join(lines)


def report_json(req: Requirements, server: str, findings: list[Finding]) -> str:
    return json.dumps(
        {
            "env": req.env,
            "namespace": req.namespace,
            "sink": req.sink,
            "server": server,
            "findings": [asdict(f) for f in findings],
            "counts": counts(findings),
            "exitCode": exit_code(findings),
        },
        indent=2,
        sort_keys=True,
    )
