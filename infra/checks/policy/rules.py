"""The bundle's own rules, over one bundle of manifests (dicts): what no maintained linter checks.

Generic workload lint is kube-score's (infra.checks.policy.kube_score, config policy/kube-score.yaml):
PDB present (deployment-has-poddisruptionbudget) and with a policy (poddisruptionbudget-has-policy),
a readiness probe (pod-probes), requests and limits incl. ephemeral-storage
(container-resources, container-ephemeral-storage-request-and-limit), HPA target and min >= 2
(horizontalpodautoscaler-has-target, -replicas), no replicas under an HPA, Services and NetworkPolicies
that select pods (service-targets-pod, networkpolicy-targets-pod), every pod selected for ingress and
egress (pod-networkpolicy). Those rules were removed from here. What stays is what kube-score lacks:

- GPU request equals limit, and every embedding server has a GPU (kube-score's requests-equal-limits
  checks CPU and memory only, never extended resources).
- Probe budgets against sizing (liveness window > readiness window, startup budget <= progress deadline,
  grace > preStop + --shutdown-timeout), the startup and liveness probes, probe ports and the timeout a
  busy engine needs: kube-score fails only a missing readiness probe (a missing liveness one passes).
- PDBs that never block a drain (maxUnavailable >= 1, minAvailable below the replicas, AlwaysAllow for
  unhealthy pods) and select pods: kube-score only asks for a PDB with either field set.
- Replicas spread over nodes by topologySpreadConstraints on the hostname, never DoNotSchedule
  (kube-score's host check accepts podAntiAffinity only; its spread check validates the fields).
- KEDA ScaledObjects (kube-score does not know the kind): target in the bundle, min >= 2, no replicas on
  the target; max > min for every autoscaler (kube-score checks min only).
- PriorityClass set (a Polaris check, not in kube-score); no secret-like env literal (kube-linter's
  env-var-secret; the key pattern is infra.core.sensitive's).
- Services: never named vllm, ClusterIP only (kube-score refuses NodePort but passes LoadBalancer),
  targetPort a container port.
- Network exposure the bundle promises (README "Security controls"): default deny, ingress only from
  named peers on served ports, egress only DNS and HTTPS outside PRIVATE_RANGES, HTTPRoute paths.

A bundle is what one install creates: a stack (platform objects + every release the chart renders for
it) or one chart scenario (a single release, without the platform objects). Each `Rule` picks its
subjects out of the bundle and returns, per subject, the problems it finds, so a report can say
"rule x objects, failures". Rules that need the platform objects (NetworkPolicies, namespace) have no
subjects in a chart-only bundle.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.checks.policy.admission import pod_template
from infra.checks.policy.violations import Violation, object_id
from infra.core.platform_objects import PRIVATE_RANGES
from infra.core.release import probe_window_seconds
from infra.core.sensitive import is_secret_key

GPU_RESOURCE = re.compile(r"^(nvidia\.com|amd\.com)/")
SERVER_COMPONENT = "embedding-server"
# The only upstream paths a Gateway route may reach: vLLM's --api-key guards /v1 routes but leaves
# /pooling, /score, /invocations, /tokenize and others open (reliability-security.md §4.11).
ROUTABLE_PATHS = frozenset({"/v1/embeddings", "/v1/models"})
DNS_PORT = 53
HTTPS_PORT = 443
# The ranges the platform's model-hub egress excepts (infra.core.platform_objects owns them): every one must be.
PRIVATE_NETWORKS = tuple(ipaddress.IPv4Network(n) for n in PRIVATE_RANGES)
MIN_PROBE_TIMEOUT_SECONDS = 5

Bundle = Sequence[Mapping[str, Any]]


# ---------------------------------------------------------------------------------------------
# Reading manifests
# ---------------------------------------------------------------------------------------------


def kind_of(objects: Bundle, *kinds: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if o.get("kind") in kinds]


def namespace_of(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("namespace")


def same_namespace(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    # A chart scenario renders without namespaces (helm template): None matches None.
    return namespace_of(a) == namespace_of(b)


def name_of(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def workloads(objects: Bundle) -> list[Mapping[str, Any]]:
    return [o for o in objects if o.get("kind") != "Pod" and pod_template(o) is not None] + kind_of(objects, "Pod")


def pod_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    return dict((pod_template(workload) or ({}, {}))[0].get("labels") or {})


def pod_spec(workload: Mapping[str, Any]) -> dict:
    return (pod_template(workload) or ({}, {}))[1]


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; {} selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (
            (op == "In" and (not present or labels[key] not in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def selected_workloads(
    selector: Mapping[str, Any] | None, owner: Mapping[str, Any], objects: Bundle
) -> list[Mapping[str, Any]]:
    return [w for w in workloads(objects) if same_namespace(w, owner) and selector_matches(selector, pod_labels(w))]


def autoscalers_of(workload: Mapping[str, Any], objects: Bundle) -> list[Mapping[str, Any]]:
    """HPAs and KEDA ScaledObjects whose scaleTargetRef names this workload."""
    return [
        a
        for a in kind_of(objects, "HorizontalPodAutoscaler", "ScaledObject")
        if same_namespace(a, workload)
        and (a.get("spec") or {}).get("scaleTargetRef", {}).get("name") == name_of(workload)
        and (a.get("spec") or {}).get("scaleTargetRef", {}).get("kind", "Deployment") == workload.get("kind")
    ]


def replica_range(autoscaler: Mapping[str, Any]) -> tuple[int, int]:
    spec = autoscaler.get("spec") or {}
    if autoscaler.get("kind") == "ScaledObject":
        return int(spec.get("minReplicaCount", 0)), int(spec.get("maxReplicaCount", 100))
    return int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", 0))


def min_max_replicas(workload: Mapping[str, Any], objects: Bundle) -> tuple[int, int]:
    scalers = autoscalers_of(workload, objects)
    if scalers:
        return replica_range(scalers[0])
    replicas = int((workload.get("spec") or {}).get("replicas", 1)) if workload.get("kind") != "Pod" else 1
    return replicas, replicas


def is_server(workload: Mapping[str, Any]) -> bool:
    return pod_labels(workload).get("app.kubernetes.io/component") == SERVER_COMPONENT


def container_ports(workload: Mapping[str, Any]) -> set:
    """Every containerPort of the pod, by number and by name."""
    found: set = set()
    for c in pod_spec(workload).get("containers") or ():
        for p in c.get("ports") or ():
            found.add(p.get("containerPort"))
            if p.get("name"):
                found.add(p["name"])
    return found


def _flag(args: Sequence[str] | None, flag: str) -> str | None:
    for a in args or ():
        if a.startswith(f"{flag}="):
            return a.split("=", 1)[1]
    return None


def _pct(value: Any) -> float | None:
    return float(value[:-1]) if isinstance(value, str) and value.endswith("%") else None


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


def check_pdb_allows_drain(pdb: Mapping[str, Any], objects: Bundle) -> list[str]:
    spec = pdb.get("spec") or {}
    problems = []
    targets = selected_workloads(spec.get("selector"), pdb, objects)
    if not targets:
        problems.append("selects no pod of the bundle")
    if spec.get("unhealthyPodEvictionPolicy") != "AlwaysAllow":
        problems.append("unhealthyPodEvictionPolicy must be AlwaysAllow, or a crash-looping pod blocks every drain")
    if "maxUnavailable" in spec:
        value = spec["maxUnavailable"]
        pct = _pct(value)
        if (pct is not None and pct <= 0) or (isinstance(value, int) and value < 1):
            problems.append(f"maxUnavailable {value!r} allows no eviction: a node drain would block")
    elif "minAvailable" in spec:
        value = spec["minAvailable"]
        for w in targets:
            low = min_max_replicas(w, objects)[0]
            pct = _pct(value)
            if (pct is not None and pct >= 100) or (isinstance(value, int) and value >= low):
                problems.append(
                    f"minAvailable {value!r} >= the {low} replica(s) of {name_of(w)}: a node drain would block"
                )
    return problems  # neither set: kube-score poddisruptionbudget-has-policy


def spread_subjects(objects: Bundle) -> list:
    return [
        w
        for w in workloads(objects)
        if w.get("kind") in ("Deployment", "StatefulSet") and min_max_replicas(w, objects)[1] >= 2
    ]


def check_spread(w: Mapping[str, Any], objects: Bundle) -> list[str]:
    spec, labels = pod_spec(w), pod_labels(w)
    constraints = spec.get("topologySpreadConstraints") or []
    anti = (spec.get("affinity") or {}).get("podAntiAffinity") or {}
    anti_terms = [
        t.get("podAffinityTerm", t)
        for t in (anti.get("preferredDuringSchedulingIgnoredDuringExecution") or [])
        + (anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    ]
    problems = []
    spread_keys = {c.get("topologyKey") for c in constraints if selector_matches(c.get("labelSelector"), labels)}
    spread_keys |= {t.get("topologyKey") for t in anti_terms if selector_matches(t.get("labelSelector"), labels)}
    if "kubernetes.io/hostname" not in spread_keys:
        problems.append(
            "replicas are not spread over nodes: no topologySpreadConstraint or podAntiAffinity on "
            "kubernetes.io/hostname that selects the pods"
        )
    hard = [c.get("topologyKey") for c in constraints if c.get("whenUnsatisfiable") == "DoNotSchedule"]
    if hard:
        problems.append(
            f"whenUnsatisfiable DoNotSchedule on {', '.join(hard)} strands GPU pods where the GPUs sit in one "
            "zone or node; use ScheduleAnyway"
        )
    return problems


def check_autoscaler(a: Mapping[str, Any], objects: Bundle) -> list[str]:
    """KEDA ScaledObject: target, min, max. HPA: max > min only (kube-score checks its target and min)."""
    ref = (a.get("spec") or {}).get("scaleTargetRef") or {}
    low, high = replica_range(a)
    if a.get("kind") == "HorizontalPodAutoscaler":
        return [f"max replicas {high} <= min replicas {low}: nothing to scale"] if high <= low else []
    problems = []
    targets = [
        w
        for w in workloads(objects)
        if same_namespace(w, a) and name_of(w) == ref.get("name") and w.get("kind") == ref.get("kind", "Deployment")
    ]
    if not targets:
        problems.append(f"scaleTargetRef {ref.get('kind', 'Deployment')}/{ref.get('name')} is not in the bundle")
    if low < 2:
        problems.append(f"min replicas {low} < 2: one node drain or pod restart takes the variant down")
    if high <= low:
        problems.append(f"max replicas {high} <= min replicas {low}: nothing to scale")
    return problems


def replicas_subjects(objects: Bundle) -> list:
    """Workloads a KEDA ScaledObject scales (kube-score checks the ones an HPA scales)."""
    return [w for w in workloads(objects) if any(a.get("kind") == "ScaledObject" for a in autoscalers_of(w, objects))]


def check_no_replicas_with_autoscaler(w: Mapping[str, Any], objects: Bundle) -> list[str]:
    if "replicas" in (w.get("spec") or {}):
        return [
            "sets spec.replicas although an autoscaler owns the count: every GitOps sync or `pulumi up` would "
            "reset the autoscaler's choice"
        ]
    return []


def _server_containers(w: Mapping[str, Any]) -> list[dict]:
    return list(pod_spec(w).get("containers") or ())


def check_probes(w: Mapping[str, Any], objects: Bundle) -> list[str]:
    problems = []
    ports = container_ports(w)
    for c in _server_containers(w):
        # a readiness probe: kube-score pod-probes (which rates a missing liveness probe "almost OK", a pass).
        # Identical handlers are fine: vLLM has one /health; check_budgets orders the windows.
        probes: dict[str, dict] = {p: c.get(f"{p}Probe") or {} for p in ("startup", "readiness", "liveness")}
        missing = [p for p in ("startup", "liveness") if not probes[p]]
        if missing:
            problems.append(f"container {c.get('name')}: no {' or '.join(missing)} probe")
        for name, probe in probes.items():
            if not probe:
                continue
            port = (probe.get("httpGet") or probe.get("tcpSocket") or {}).get("port")
            if port is not None and port not in ports:
                problems.append(f"container {c.get('name')}: {name} probe port {port!r} is not a container port")
            if int(probe.get("timeoutSeconds", 1)) < MIN_PROBE_TIMEOUT_SECONDS:
                problems.append(
                    f"container {c.get('name')}: {name} probe timeoutSeconds {probe.get('timeoutSeconds', 1)} < "
                    f"{MIN_PROBE_TIMEOUT_SECONDS}: a busy engine misses it"
                )
    return problems


def check_budgets(w: Mapping[str, Any], objects: Bundle) -> list[str]:
    problems = []
    spec = pod_spec(w)
    grace = int(spec.get("terminationGracePeriodSeconds", 30))
    deadline = (w.get("spec") or {}).get("progressDeadlineSeconds", 600)
    for c in _server_containers(w):
        probes = {p: c.get(f"{p}Probe") or {} for p in ("startup", "readiness", "liveness")}
        if (
            probes["liveness"]
            and probes["readiness"]
            and probe_window_seconds(probes["liveness"]) <= probe_window_seconds(probes["readiness"])
        ):
            problems.append(
                f"container {c.get('name')}: liveness tolerates {probe_window_seconds(probes['liveness'])}s <= readiness "
                f"{probe_window_seconds(probes['readiness'])}s: an overloaded pod is restarted before it leaves the endpoints"
            )
        if (
            probes["startup"]
            and w.get("kind") == "Deployment"
            and probe_window_seconds(probes["startup"]) > int(deadline)
        ):
            problems.append(
                f"container {c.get('name')}: startup budget {probe_window_seconds(probes['startup'])}s exceeds "
                f"progressDeadlineSeconds {deadline}"
            )
        sleep = int((((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0))
        drain = int(_flag(c.get("args"), "--shutdown-timeout") or 0)
        if grace <= sleep + drain:
            problems.append(
                f"container {c.get('name')}: terminationGracePeriodSeconds {grace} <= preStop sleep {sleep}s + "
                f"--shutdown-timeout {drain}s: in-flight requests are cut off"
            )
    return problems


def check_gpu_request_equals_limit(w: Mapping[str, Any], objects: Bundle) -> list[str]:
    problems = []
    for c in containers_of(w):
        resources = c.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        for name in sorted({k for k in (*requests, *limits) if GPU_RESOURCE.match(k)}):
            if name not in limits:
                problems.append(f"container {c.get('name')}: {name} requested but not limited (GPUs belong in limits)")
            elif name in requests and str(requests[name]) != str(limits[name]):
                problems.append(f"container {c.get('name')}: {name} request {requests[name]} != limit {limits[name]}")
    if is_server(w) and not any(
        GPU_RESOURCE.match(k) for c in _server_containers(w) for k in (c.get("resources") or {}).get("limits") or {}
    ):
        problems.append("embedding server without a GPU limit")
    return problems


def containers_of(w: Mapping[str, Any]) -> list[dict]:
    spec = pod_spec(w)
    return list(spec.get("initContainers") or ()) + list(spec.get("containers") or ())


def check_priority_class(w: Mapping[str, Any], objects: Bundle) -> list[str]:
    return (
        []
        if pod_spec(w).get("priorityClassName")
        else ["no priorityClassName: batch work may preempt it on shared GPU pools"]
    )


def check_no_secret_literals(w: Mapping[str, Any], objects: Bundle) -> list[str]:
    bad = [
        f"{c.get('name')}:{e.get('name')}"
        for c in containers_of(w)
        for e in c.get("env") or ()
        if "value" in e and is_secret_key(e.get("name", ""))
    ]
    return (
        [f"secret-like env given as a literal value (use secretKeyRef or a mounted file): {', '.join(bad)}"]
        if bad
        else []
    )


def check_service(svc: Mapping[str, Any], objects: Bundle) -> list[str]:
    spec = svc.get("spec") or {}
    problems = []
    if name_of(svc) == "vllm":
        problems.append("a Service named vllm injects VLLM_PORT=tcp://... into pods, which vLLM refuses")
    if spec.get("type", "ClusterIP") != "ClusterIP":
        problems.append(
            f"type {spec.get('type')}: the servers are exposed only inside the cluster (or through the HTTPRoute)"
        )
    selector = spec.get("selector") or {}
    if not selector:
        problems.append("has no selector")
        return problems
    targets = selected_workloads({"matchLabels": selector}, svc, objects)  # none: kube-score service-targets-pod
    for port in spec.get("ports") or ():
        target = port.get("targetPort", port.get("port"))
        for w in targets:
            if target not in container_ports(w):
                problems.append(f"targetPort {target!r} is not a container port of {name_of(w)}")
    return problems


def has_namespace_objects(objects: Bundle) -> bool:
    return bool(kind_of(objects, "Namespace"))


def check_default_deny(ns: Mapping[str, Any], objects: Bundle) -> list[str]:
    name = name_of(ns)
    for np in kind_of(objects, "NetworkPolicy"):
        spec = np.get("spec") or {}
        if (
            namespace_of(np) == name
            and spec.get("podSelector") in ({}, None)
            and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or ())
            and not spec.get("ingress")
            and not spec.get("egress")
        ):
            return []
    return ["no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress+Egress, no rules) in the namespace"]


def _peer_problem(peer: Mapping[str, Any]) -> str | None:
    if "ipBlock" in peer:
        return f"ipBlock peer {peer['ipBlock'].get('cidr')}"
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is not None and not (ns_selector.get("matchLabels") or ns_selector.get("matchExpressions")):
        return "namespaceSelector {} (every namespace)"
    return None


def check_ingress_restricted(np: Mapping[str, Any], objects: Bundle) -> list[str]:
    problems = []
    targets = selected_workloads((np.get("spec") or {}).get("podSelector"), np, objects)
    ports = set().union(*(container_ports(w) for w in targets)) if targets else set()
    for i, rule in enumerate((np.get("spec") or {}).get("ingress") or ()):
        if not rule.get("from"):
            problems.append(f"ingress[{i}] admits every source (no `from`)")
        problems += [f"ingress[{i}] admits {p}" for p in map(_peer_problem, rule.get("from") or ()) if p]
        if not rule.get("ports"):
            problems.append(f"ingress[{i}] opens every port (no `ports`)")
        problems += [
            f"ingress[{i}] opens port {p.get('port')!r}, which no selected container serves"
            for p in rule.get("ports") or ()
            if p.get("port") not in ports
        ]
    return problems


def _is_dns_rule(rule: Mapping[str, Any]) -> bool:
    ports = rule.get("ports") or ()
    return (
        bool(ports)
        and all(p.get("port") == DNS_PORT for p in ports)
        and all(_peer_problem(t) is None for t in rule.get("to") or ())
    )


def _is_public_https_rule(rule: Mapping[str, Any]) -> bool:
    ports = rule.get("ports") or ()
    if not ports or any(p.get("port") != HTTPS_PORT or p.get("protocol", "TCP") != "TCP" for p in ports):
        return False
    for peer in rule.get("to") or [{}]:
        block = peer.get("ipBlock")
        if block is None:
            return False
        # Only IPv4 exceptions can cover the (IPv4) private ranges; subnet_of raises on mixed versions.
        excepted = [
            n for e in block.get("except") or () if isinstance(n := ipaddress.ip_network(e), ipaddress.IPv4Network)
        ]
        if not all(any(net.subnet_of(e) for e in excepted) for net in PRIVATE_NETWORKS):
            return False
    return True


def _offline(w: Mapping[str, Any]) -> bool:
    return any(
        e.get("name") == "HF_HUB_OFFLINE" and e.get("value") == "1"
        for c in containers_of(w)
        for e in c.get("env") or ()
    )


def check_egress_restricted(np: Mapping[str, Any], objects: Bundle) -> list[str]:
    problems = []
    targets = selected_workloads((np.get("spec") or {}).get("podSelector"), np, objects)
    for i, rule in enumerate((np.get("spec") or {}).get("egress") or ()):
        if _is_dns_rule(rule):
            continue
        if not _is_public_https_rule(rule):
            problems.append(
                f"egress[{i}] allows more than DNS (53) and the model hub (443 to public addresses, private ranges excepted)"
            )
            continue
        offline = [name_of(w) for w in targets if _offline(w)]
        if offline:
            problems.append(
                f"egress[{i}] lets offline pods (HF_HUB_OFFLINE=1) reach the internet: {', '.join(offline)}"
            )
    return problems


def check_http_route(route: Mapping[str, Any], objects: Bundle) -> list[str]:
    spec = route.get("spec") or {}
    problems = []
    if len(spec.get("hostnames") or ()) != 1:
        problems.append(f"must name exactly one host, names {spec.get('hostnames')}")
    hosts = {
        h
        for r in kind_of(objects, "HTTPRoute")
        if same_namespace(r, route)
        for h in (r.get("spec") or {}).get("hostnames") or ()
    }
    if len(hosts) > 1:
        problems.append(
            f"the bundle's routes use {len(hosts)} hosts ({', '.join(sorted(hosts))}); all variants share one"
        )
    services = {name_of(s) for s in kind_of(objects, "Service") if same_namespace(s, route)}
    for i, rule in enumerate(spec.get("rules") or ()):
        rewrites = [
            f["urlRewrite"].get("path") or {} for f in rule.get("filters") or () if f.get("type") == "URLRewrite"
        ]
        for match in rule.get("matches") or [{}]:
            path = match.get("path") or {"type": "PathPrefix", "value": "/"}
            if path.get("type") != "Exact":
                problems.append(
                    f"rules[{i}] matches {path.get('type')} {path.get('value')!r}: only Exact paths, or more than "
                    f"{', '.join(sorted(ROUTABLE_PATHS))} is reachable"
                )
                continue
            upstream = path.get("value")
            for rewrite in rewrites:
                upstream = rewrite.get("replaceFullPath") if rewrite.get("type") == "ReplaceFullPath" else None
            if upstream not in ROUTABLE_PATHS:
                problems.append(
                    f"rules[{i}] sends {path.get('value')!r} upstream as {upstream!r}; only {', '.join(sorted(ROUTABLE_PATHS))} may be routed"
                )
        for ref in rule.get("backendRefs") or ():
            if ref.get("kind", "Service") != "Service" or ref.get("name") not in services:
                problems.append(
                    f"rules[{i}] backend {ref.get('kind', 'Service')}/{ref.get('name')} is not a Service of the bundle"
                )
    return problems


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------


def _kinds(*kinds: str) -> Callable[[Bundle], list]:
    return lambda objects: kind_of(objects, *kinds)


def _server_workloads(objects: Bundle) -> list:
    return [w for w in workloads(objects) if is_server(w)]


def _with_platform(select: Callable[[Bundle], list]) -> Callable[[Bundle], list]:
    """Subjects only where the bundle holds the namespace's platform objects (a stack, not a chart scenario)."""
    return lambda objects: select(objects) if has_namespace_objects(objects) else []


def _ingress_policies(objects: Bundle) -> list:
    return [np for np in kind_of(objects, "NetworkPolicy") if (np.get("spec") or {}).get("ingress")]


def _egress_policies(objects: Bundle) -> list:
    return [np for np in kind_of(objects, "NetworkPolicy") if (np.get("spec") or {}).get("egress")]


@dataclass(frozen=True)
class Rule:
    name: str
    mirrors: str  # the tool rules / sources it implements
    summary: str
    subjects: Callable[[Bundle], list]
    check: Callable[[Mapping[str, Any], Bundle], list[str]]


RULES: tuple[Rule, ...] = (
    Rule(
        "rules.pdb-allows-drain",
        "kube-linter pdb-max-unavailable, pdb-min-available, pdb-unhealthy-pod-eviction-policy; "
        "Polaris pdbDisruptionsIsZero, pdbMinAvailableGreaterThanOrEqualToHPAMinReplicas",
        "a PDB selects pods, always allows one eviction and never waits on unhealthy pods",
        _kinds("PodDisruptionBudget"),
        check_pdb_allows_drain,
    ),
    Rule(
        "rules.spread",
        "Polaris topologySpreadConstraint; kube-linter no-anti-affinity",
        "replicas spread over nodes (hostname topology spread), never DoNotSchedule",
        spread_subjects,
        check_spread,
    ),
    Rule(
        "rules.autoscaler-sane",
        "kube-linter dangling-horizontalpodautoscaler; Polaris hpaMinAvailability, hpaMaxAvailability",
        "a KEDA ScaledObject targets a Deployment of the bundle with min >= 2; every autoscaler has max > min",
        _kinds("HorizontalPodAutoscaler", "ScaledObject"),
        check_autoscaler,
    ),
    Rule(
        "rules.no-replicas-with-autoscaler",
        "kube-score deployment-targeted-by-hpa-does-not-have-replicas-configured, for KEDA",
        "a Deployment a KEDA ScaledObject scales leaves spec.replicas unset",
        replicas_subjects,
        check_no_replicas_with_autoscaler,
    ),
    Rule(
        "rules.probes",
        "kube-linter liveness-port, readiness-port, startup-port; reliability-security.md §4.3",
        "startup and liveness probes; every probe on a container port with timeout >= 5s",
        _server_workloads,
        check_probes,
    ),
    Rule(
        "rules.budgets",
        "reliability-security.md §4.3-4.5; chart templates/validate.yaml",
        "liveness window > readiness window; startup budget <= progress deadline; grace > preStop + --shutdown-timeout",
        _server_workloads,
        check_budgets,
    ),
    Rule(
        "rules.gpu-request-equals-limit",
        "kubernetes.io Schedule GPUs",
        "GPU limits set, requests equal to limits; every embedding server has one",
        workloads,
        check_gpu_request_equals_limit,
    ),
    Rule(
        "rules.priority-class",
        "Polaris priorityClassNotSet",
        "every pod names a priorityClassName",
        workloads,
        check_priority_class,
    ),
    Rule(
        "rules.no-secret-literals",
        "kube-linter env-var-secret; CIS 5.4.1",
        "no secret-like env var with a literal value",
        workloads,
        check_no_secret_literals,
    ),
    Rule(
        "rules.service-sane",
        "kube-linter mismatching-selector; vLLM VLLM_PORT",
        "a Service is ClusterIP, never named vllm, and targets a container port",
        _kinds("Service"),
        check_service,
    ),
    Rule(
        "net.default-deny",
        "README Security controls (item 4); CIS 5.3.2",
        "the namespace has a default-deny NetworkPolicy",
        _kinds("Namespace"),
        check_default_deny,
    ),
    Rule(
        "net.ingress-restricted",
        "README Security controls (item 4)",
        "ingress only on served ports, only from named namespaces/pods (no ipBlock, no all-namespaces)",
        _with_platform(_ingress_policies),
        check_ingress_restricted,
    ),
    Rule(
        "net.egress-restricted",
        "README Security controls (item 4)",
        "egress only to DNS and HTTPS on public addresses (the model hub); none for offline pods",
        _with_platform(_egress_policies),
        check_egress_restricted,
    ),
    Rule(
        "net.httproute-embeddings-only",
        "vLLM security docs (--api-key leaves /pooling, /score, /invocations open)",
        "an HTTPRoute has one host and routes only exact /v1/embeddings and /v1/models to Services of the bundle",
        _kinds("HTTPRoute"),
        check_http_route,
    ),
)


def rule(name: str) -> Rule:
    for r in RULES:
        if r.name == name:
            return r
    raise KeyError(f"no rule {name!r}; rules: {', '.join(r.name for r in RULES)}")


def check_rule(r: Rule, objects: Bundle) -> tuple[int, list[Violation]]:
    """(subjects checked, violations) of one rule over one bundle."""
    subjects = r.subjects(objects)
    return len(subjects), [Violation(r.name, object_id(s), p) for s in subjects for p in r.check(s, objects)]
