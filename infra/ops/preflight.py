"""`python -m infra preflight --env ENV`: does this cluster have what the stack needs, before `pulumi up` or the
first GitOps sync?

It renders the stack (the plan's platform objects + `helm template` of every release) and checks the cluster
of the current kube context (or --kubeconfig / --context), read-only:

  api / crd       every apiVersion/kind the stack deploys is served (CRDs: ServiceMonitor, ScaledObject, ...)
  metrics-api     the APIService of each metrics API the autoscalers read exists and is Available:
                  metrics.k8s.io (CPU), custom.metrics.k8s.io (Pods metric, prometheus-adapter),
                  external.metrics.k8s.io (KEDA's ScaledObjects)
  custom-metric   the custom metrics API lists the metric the HorizontalPodAutoscalers ask for
  nodes           each pool has nodes that carry its nodeSelector, whose taints the pods tolerate, not cordoned
  capacity        per pool and resource (the GPU slice, cpu, memory, ...): allocatable on those nodes, less
                  what other pods already request, against the releases' requests at min- and maxReplicas
  priority-class  the pods' PriorityClass exists, or the stack creates it
  namespace       absent (the stack creates it), or present with the stack's Pod Security labels
  secret          every Secret the pods reference exists with its keys (or `pulumi up` creates it)
  storage-class   the weights PersistentVolumeClaim's StorageClass exists (or a default one, when it names none)

One line per finding: status (ok, warn, fail, unknown = could not check), check, subject, what was found and
the fix. --json prints the same as one JSON object.

Exit codes, for scripts:
  0  every check ok
  1  at least one failure
  2  usage: unknown stack, invalid stack config, unreadable kubeconfig, helm missing
  3  the cluster cannot be reached (connection refused, timeout, TLS, 401)
  4  no failure, but warnings or checks that could not run (e.g. 403 on listing nodes)

`snapshot` reads the cluster facts with the Kubernetes Python client; the decisions are pure
(infra.core.preflight.evaluate).
"""

from __future__ import annotations

from typing import Any

from infra.core.preflight import CUSTOM_METRICS, Requirements, pod_requests
from infra.ops.status import ClusterUnreachable

__all__ = ["ClusterUnreachable", "snapshot"]

REQUEST_TIMEOUT = (5, 20)  # connect, read (seconds)


def snapshot(req: Requirements, client: Any) -> dict[str, Any]:
    """The cluster facts `infra.core.preflight.evaluate` judges (its docstring has the shape). A read the
    user may not make (403) or that fails lands in `errors`; raises ClusterUnreachable when the API server
    does not answer or refuses the credentials."""
    import urllib3
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    server = client.configuration.host
    core, custom = k8s.CoreV1Api(client), k8s.CustomObjectsApi(client)
    out: dict[str, Any] = {"server": server, "served": {}, "metricNames": {}, "errors": {}}
    errors: dict[str, str] = out["errors"]
    plain = client.sanitize_for_serialization

    def attempt(key: str, read, missing: Any = ...) -> Any:
        """read(); a 404 gives `missing` (when given), any other refusal records why under errors[key]."""
        try:
            return read()
        except ApiException as exc:
            if exc.status == 401 or exc.status == 0:
                raise ClusterUnreachable(
                    f"the API server {server} refused the request ({exc.status} {exc.reason})"
                ) from exc
            if exc.status == 404 and missing is not ...:
                return missing
            errors[key] = f"{exc.status} {exc.reason}"
            return None

    try:
        for gv in req.group_versions:
            if gv == "v1":
                resources = attempt(f"served {gv}", lambda: core.get_api_resources(_request_timeout=REQUEST_TIMEOUT))
            else:
                group, version = gv.split("/", 1)
                resources = attempt(
                    f"served {gv}",
                    lambda: custom.get_api_resources(group, version, _request_timeout=REQUEST_TIMEOUT),
                    missing=None,
                )
            if resources is not None:
                out["served"][gv] = sorted({r.kind for r in resources.resources or [] if "/" not in r.name})
        services = attempt(
            "apiServices",
            lambda: k8s.ApiregistrationV1Api(client).list_api_service(_request_timeout=REQUEST_TIMEOUT).items,
        )
        out["apiServices"] = [plain(s) for s in services] if services is not None else None
        for s in out["apiServices"] or []:
            spec = s.get("spec") or {}
            if spec.get("group") != CUSTOM_METRICS:
                continue
            gv = f"{CUSTOM_METRICS}/{spec['version']}"
            listed = attempt(
                f"metricNames {gv}",
                lambda: custom.get_api_resources(CUSTOM_METRICS, spec["version"], _request_timeout=REQUEST_TIMEOUT),
            )
            if listed is not None:
                out["metricNames"][gv] = sorted(r.name for r in listed.resources or [])
        nodes = attempt("nodes", lambda: core.list_node(_request_timeout=REQUEST_TIMEOUT).items)
        out["nodes"] = (
            [
                {
                    "metadata": {"name": n.metadata.name, "labels": n.metadata.labels or {}},
                    "spec": {"taints": plain(n.spec.taints or []), "unschedulable": bool(n.spec.unschedulable)},
                    "status": {"allocatable": dict(n.status.allocatable or {})},
                }
                for n in nodes
            ]
            if nodes is not None
            else None
        )
        pods = attempt(
            "pods",
            lambda: (
                core.list_pod_for_all_namespaces(
                    field_selector="spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed",
                    _request_timeout=REQUEST_TIMEOUT,
                ).items
            ),
        )
        out["pods"] = (
            [
                {
                    "nodeName": p.spec.node_name,
                    "namespace": p.metadata.namespace,
                    "labels": p.metadata.labels or {},
                    "requests": {k: str(v) for k, v in pod_requests(plain(p.spec)).items()},
                }
                for p in pods
            ]
            if pods is not None
            else None
        )
        pcs = attempt(
            "priorityClasses",
            lambda: k8s.SchedulingV1Api(client).list_priority_class(_request_timeout=REQUEST_TIMEOUT).items,
        )
        out["priorityClasses"] = sorted(p.metadata.name for p in pcs) if pcs is not None else None
        ns = attempt(
            "namespace", lambda: core.read_namespace(req.namespace, _request_timeout=REQUEST_TIMEOUT), missing=None
        )
        out["namespace"] = plain(ns) if ns is not None else None
        if ns is None:
            out["secrets"] = {}
        else:
            # Only the names and data keys are kept: the values are dropped here, never stored or printed.
            secrets = attempt(
                "secrets",
                lambda: core.list_namespaced_secret(req.namespace, _request_timeout=REQUEST_TIMEOUT).items,
            )
            out["secrets"] = (
                {s.metadata.name: sorted((s.data or {}).keys()) for s in secrets} if secrets is not None else None
            )
        classes = attempt(
            "storageClasses",
            lambda: k8s.StorageV1Api(client).list_storage_class(_request_timeout=REQUEST_TIMEOUT).items,
        )
        out["storageClasses"] = (
            [{"metadata": {"name": c.metadata.name, "annotations": c.metadata.annotations or {}}} for c in classes]
            if classes is not None
            else None
        )
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterUnreachable(f"cannot reach the API server {server}: {exc.__class__.__name__}: {exc}") from exc
    return out
