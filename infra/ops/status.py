"""`python -m infra status --env ENV`: what a stack looks like in the cluster right now.

Per variant: desired / ready / available replicas and the autoscaler (current / desired replicas, its
metric against the target); per GPU pool: the nodes that carry the pool's labels, GPU slices allocatable
vs requested, and the stack's pods on each node; then recent warning events of the namespace
(FailedScheduling, BackOff, failed probes, ...) and containers last killed for running out of memory.

It reads the cluster with the Kubernetes Python client from the current kube context (or --kubeconfig /
--context) and only reads. `summarize` is pure: it takes plain client model objects, so the unit tests
build them by hand.

Exit codes, for scripts and pagers:
  0  every variant has all its desired replicas ready
  1  degraded: a variant short of ready replicas, a missing Deployment, or the namespace is missing
  2  usage: unknown stack, invalid stack config, unreadable kubeconfig
  3  the cluster cannot be reached (connection refused, timeout, TLS, 401/403)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.core.names import PROJECT
from infra.core.plan import Plan

RECENT_EVENTS = 20
REQUEST_TIMEOUT = (5, 20)  # connect, read (seconds)


class ClusterUnreachable(RuntimeError):
    """The API server did not answer, or refused us."""


# ---------------------------------------------------------------------------------------------
# The report (pure data)
# ---------------------------------------------------------------------------------------------


@dataclass
class AutoscalerStatus:
    name: str
    current: int
    desired: int
    min: int
    max: int
    metrics: list[str]  # "<metric> <current>/<target>", one per metric of the HPA


@dataclass
class VariantStatus:
    variant: str
    deployment: str
    found: bool
    desired: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    autoscaler: AutoscalerStatus | None = None
    expected_autoscaler: str | None = None  # the HPA the plan makes (KEDA's for keda); None = fixed replicas

    @property
    def healthy(self) -> bool:
        return self.found and self.desired > 0 and self.ready >= self.desired


@dataclass
class NodeStatus:
    name: str
    allocatable: int  # GPU slices of the pool's resource
    requested: int  # by every pod on the node
    requested_by_stack: int
    pods: list[str]  # "<pod> (<variant>, <state>)" of this stack


@dataclass
class PoolStatus:
    pool: str
    resource: str
    node_selector: dict[str, str]
    nodes: list[NodeStatus]

    @property
    def allocatable(self) -> int:
        return sum(n.allocatable for n in self.nodes)

    @property
    def requested(self) -> int:
        return sum(n.requested for n in self.nodes)


@dataclass
class EventRow:
    when: str
    object: str
    reason: str
    message: str
    count: int


@dataclass
class StatusReport:
    env: str
    namespace: str
    variants: list[VariantStatus]
    pools: list[PoolStatus]
    unscheduled: list[str]  # "<pod> (<variant>)" of this stack with no node
    events: list[EventRow]
    oom_killed: list[str]  # "<pod>/<container> at <time>"
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(v.healthy for v in self.variants)


# ---------------------------------------------------------------------------------------------
# Aggregation over client model objects (V1Deployment, V2HorizontalPodAutoscaler, V1Pod, V1Node, CoreV1Event)
# ---------------------------------------------------------------------------------------------


def _quantity(value: Any) -> int:
    """Extended resources (GPU slices) are whole numbers; anything unparsable counts as 0."""
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _requests(pod: Any, resource: str) -> int:
    total = 0
    for container in pod.spec.containers or []:
        requests = (container.resources.requests if container.resources else None) or {}
        total += _quantity(requests.get(resource, 0))
    return total


def _pod_state(pod: Any) -> str:
    statuses = pod.status.container_statuses or [] if pod.status else []
    for status in statuses:
        waiting = status.state.waiting if status.state else None
        if waiting and waiting.reason:
            return waiting.reason  # CrashLoopBackOff, ContainerCreating, ...
    if statuses and all(s.ready for s in statuses):
        return "Ready"
    phase = pod.status.phase if pod.status else None
    return f"{phase or 'Unknown'}, not ready" if phase == "Running" else (phase or "Unknown")


def _metric_source(m: Any) -> Any | None:
    """The part of an HPA metric (spec or status) its type names; None for a type this does not know."""
    return {
        "Resource": m.resource,
        "Pods": m.pods,
        "External": m.external,
        "Object": m.object,
        "ContainerResource": m.container_resource,
    }.get(m.type)


def _metric_text(spec: Any, current: Any | None) -> str:
    """One HPA metric as '<name> <current>/<target>'."""
    kind = spec.type
    source = _metric_source(spec)
    if source is None:
        return kind
    name = source.name if kind in ("Resource", "ContainerResource") else source.metric.name
    target = source.target
    if target.type == "Utilization":
        wanted, unit = f"{target.average_utilization}%", "%"
    else:
        wanted, unit = str(target.average_value if target.type == "AverageValue" else target.value), ""
    now = "?"
    if current is not None:
        cur_source = _metric_source(current)
        if cur_source is not None and cur_source.current is not None:
            c = cur_source.current
            now = (
                f"{c.average_utilization}%"
                if unit == "%" and c.average_utilization is not None
                else str(c.average_value if c.average_value is not None else c.value)
            )
    return f"{name} {now}/{wanted}"


def autoscaler_status(hpa: Any) -> AutoscalerStatus:
    currents = (hpa.status.current_metrics or []) if hpa.status else []
    metrics = [
        _metric_text(spec, currents[i] if i < len(currents) else None) for i, spec in enumerate(hpa.spec.metrics or [])
    ]
    return AutoscalerStatus(
        name=hpa.metadata.name,
        current=(hpa.status.current_replicas or 0) if hpa.status else 0,
        desired=(hpa.status.desired_replicas or 0) if hpa.status else 0,
        min=hpa.spec.min_replicas or 1,
        max=hpa.spec.max_replicas,
        metrics=metrics,
    )


def _when(event: Any) -> datetime:
    for t in (
        getattr(event, "last_timestamp", None),
        getattr(event, "event_time", None),
        getattr(event.metadata, "creation_timestamp", None),
    ):
        if t is not None:
            return t if t.tzinfo else t.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


def summarize(
    plan: Plan,
    deployments: Iterable[Any],
    autoscalers: Iterable[Any],
    pods: Iterable[Any],
    nodes: Iterable[Any],
    events: Iterable[Any],
    all_pods: Iterable[Any] | None = None,
) -> StatusReport:
    """The status report of a stack from what the API returned (lists of client model objects).

    `pods`: the stack's namespace; `all_pods`: every namespace's, so that GPUs requested by other
    tenants count too (None when we may not list them: then only the stack's pods count)."""
    deployments = {d.metadata.name: d for d in deployments}
    autoscalers = {h.metadata.name: h for h in autoscalers}
    release_of = {r.name: r.variant for r in plan.releases}
    pods = [p for p in pods if (p.metadata.labels or {}).get("app.kubernetes.io/instance") in release_of]

    variants = []
    for release in plan.releases:
        d = deployments.get(release.name)
        expected = release.spec.autoscaler_name
        status = VariantStatus(release.variant, release.name, d is not None, expected_autoscaler=expected)
        if d is not None:
            s = d.status
            status.desired = d.spec.replicas or 0
            status.ready, status.available, status.updated = (
                (s.ready_replicas or 0),
                (s.available_replicas or 0),
                (s.updated_replicas or 0),
            )
        if expected and expected in autoscalers:
            status.autoscaler = autoscaler_status(autoscalers[expected])
        variants.append(status)

    nodes = list(nodes)
    ours_by_node: dict[str, list[Any]] = {}
    for pod in pods:
        if pod.spec.node_name:
            ours_by_node.setdefault(pod.spec.node_name, []).append(pod)
    every_by_node: dict[str, list[Any]] = {}
    for pod in all_pods if all_pods is not None else pods:
        if pod.spec.node_name:
            every_by_node.setdefault(pod.spec.node_name, []).append(pod)
    pools = []
    for pool in plan.config.pools.values():
        selector, resource = pool.full_node_selector, pool.slice.resource_name
        rows = []
        for node in sorted(nodes, key=lambda n: n.metadata.name):
            labels = node.metadata.labels or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            ours = ours_by_node.get(node.metadata.name, [])
            rows.append(
                NodeStatus(
                    name=node.metadata.name,
                    allocatable=_quantity(((node.status.allocatable if node.status else None) or {}).get(resource, 0)),
                    requested=sum(
                        _requests(p, resource) for p in every_by_node.get(node.metadata.name, []) if _active(p)
                    ),
                    requested_by_stack=sum(_requests(p, resource) for p in ours if _active(p)),
                    pods=sorted(
                        f"{p.metadata.name} ({release_of[p.metadata.labels['app.kubernetes.io/instance']]}, {_pod_state(p)})"
                        for p in ours
                    ),
                )
            )
        pools.append(PoolStatus(pool.name, resource, dict(selector), rows))

    unscheduled = sorted(
        f"{p.metadata.name} ({release_of[p.metadata.labels['app.kubernetes.io/instance']]})"
        for p in pods
        if not p.spec.node_name and _active(p)
    )
    oom = []
    for pod in pods:
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            term = cs.last_state.terminated if cs.last_state else None
            if term is not None and term.reason == "OOMKilled":
                oom.append(f"{pod.metadata.name}/{cs.name} at {term.finished_at}")
    warnings = sorted((e for e in events if e.type == "Warning"), key=_when, reverse=True)[:RECENT_EVENTS]
    event_rows = [
        EventRow(
            _when(e).strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"{e.involved_object.kind}/{e.involved_object.name}",
            e.reason or "",
            " ".join((e.message or "").split()),
            e.count or 1,
        )
        for e in warnings
    ]
    return StatusReport(plan.env, plan.namespace, variants, pools, unscheduled, event_rows, sorted(oom))


def _active(pod: Any) -> bool:
    return (pod.status.phase if pod.status else None) not in ("Succeeded", "Failed")


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def render_text(report: StatusReport) -> str:
    lines = [f"stack {report.env}: namespace {report.namespace}"]
    lines.append("")
    lines.append(
        f"{'variant':<16} {'deployment':<34} {'desired':>7} {'ready':>5} {'avail':>5} {'updated':>7}  autoscaler"
    )
    for v in report.variants:
        if not v.found:
            lines.append(f"{v.variant:<16} {v.deployment:<34} {'-- Deployment not found':>30}")
            continue
        scaler = "fixed replicas"
        if v.autoscaler:
            a = v.autoscaler
            scaler = f"{a.name}: {a.current} now, wants {a.desired} ({a.min}-{a.max}); " + ", ".join(a.metrics)
        elif v.expected_autoscaler:
            scaler = f"{v.expected_autoscaler}: not found"
        mark = "" if v.healthy else "   <-- short"
        lines.append(
            f"{v.variant:<16} {v.deployment:<34} {v.desired:>7} {v.ready:>5} {v.available:>5} {v.updated:>7}  {scaler}{mark}"
        )
    for pool in report.pools:
        selector = ",".join(f"{k}={v}" for k, v in sorted(pool.node_selector.items()))
        lines += [
            "",
            f"pool {pool.pool}: {pool.resource} {pool.requested}/{pool.allocatable} requested/allocatable on {len(pool.nodes)} node(s)",
            f"  nodes: -l {selector}",
        ]
        if not pool.nodes:
            lines.append("  no node carries the pool's labels")
        for node in pool.nodes:
            lines.append(
                f"  {node.name}: {node.requested}/{node.allocatable} ({node.requested_by_stack} by this stack)"
            )
            lines += [f"    {p}" for p in node.pods]
    if report.unscheduled:
        lines += ["", "pods with no node (Pending):"] + [f"  {p}" for p in report.unscheduled]
    if report.oom_killed:
        lines += ["", "containers last killed for memory (OOMKilled):"] + [f"  {o}" for o in report.oom_killed]
    lines += ["", f"recent warning events ({len(report.events)}):"]
    lines += [f"  {e.when} {e.object} {e.reason} x{e.count}: {e.message}" for e in report.events] or ["  none"]
    lines += [""] + report.notes + [f"overall: {'OK' if report.healthy else 'DEGRADED'}"]
    return "\n".join(lines)


def report_json(report: StatusReport) -> str:
    data = asdict(report)
    data["healthy"] = report.healthy
    return json.dumps(data, indent=2, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------------


def api_client(kubeconfig: Path | None, context: str | None):
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        return config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None, context=context)
    except (ConfigException, FileNotFoundError) as exc:
        raise ValueError(
            f"cannot load kubeconfig{f' {kubeconfig}' if kubeconfig else ''}"
            f"{f' (context {context})' if context else ''}: {exc}"
        ) from exc


def fetch(plan: Plan, client) -> StatusReport | None:
    """The stack's report; None when its namespace does not exist. Raises ClusterUnreachable."""
    import urllib3
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    core, apps, autoscaling = k8s.CoreV1Api(client), k8s.AppsV1Api(client), k8s.AutoscalingV2Api(client)
    server = client.configuration.host
    try:
        try:
            core.read_namespace(plan.namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        ns = plan.namespace
        selector = f"app.kubernetes.io/part-of={PROJECT}"
        deployments = apps.list_namespaced_deployment(ns, _request_timeout=REQUEST_TIMEOUT).items
        hpas = autoscaling.list_namespaced_horizontal_pod_autoscaler(ns, _request_timeout=REQUEST_TIMEOUT).items
        pods = core.list_namespaced_pod(ns, label_selector=selector, _request_timeout=REQUEST_TIMEOUT).items
        nodes = core.list_node(_request_timeout=REQUEST_TIMEOUT).items
        events = core.list_namespaced_event(ns, field_selector="type=Warning", _request_timeout=REQUEST_TIMEOUT).items
        notes, all_pods = [], None
        try:  # other tenants' GPU requests; needs cluster-wide pod read
            all_pods = core.list_pod_for_all_namespaces(
                field_selector="status.phase!=Succeeded,status.phase!=Failed", _request_timeout=REQUEST_TIMEOUT
            ).items
        except ApiException as exc:
            if exc.status != 403:
                raise
            notes.append(
                "note: no permission to list pods of all namespaces; 'requested' counts this stack's pods only"
            )
    except ApiException as exc:
        if exc.status in (401, 403):
            raise ClusterUnreachable(
                f"the API server {server} refused the request ({exc.status} {exc.reason}): check your credentials and RBAC"
            ) from exc
        raise ClusterUnreachable(f"the API server {server} answered {exc.status} {exc.reason}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterUnreachable(f"cannot reach the API server {server}: {exc.__class__.__name__}: {exc}") from exc
    report = summarize(plan, deployments, hpas, pods, nodes, events, all_pods)
    report.notes = notes
    return report
