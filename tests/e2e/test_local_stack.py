"""The `local` stack on the simulated pools: every variant's pods run only on nodes of its own pool and
vendor, turn Ready, and back its Service; its namespace enforces Pod Security `restricted` for real.

The scheduler is the real kube-scheduler working on the nodes' labels, taints and GPU resources; kwok only
stands in for the kubelets (it reports the pods Running and Ready).
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from infra.core.accelerators import VENDORS
from infra.sinks.helm import effective_values
from tests.e2e.kube import expected_replicas, pods_of, ready_endpoints, wait_until

pytestmark = pytest.mark.e2e


def other_vendors_resources(allocatable: dict[str, str], vendor: str) -> set[str]:
    """GPU resources of any other vendor the node offers (nvidia.com/gpu, nvidia.com/mig-..., amd.com/...)."""
    prefixes = tuple(v.whole_gpu_resource.split("/")[0] + "/" for name, v in VENDORS.items() if name != vendor)
    return {r for r, q in allocatable.items() if r.startswith(prefixes) and q not in ("0", 0)}


def test_every_pod_runs_on_its_pool_and_vendor(e2e_cluster, local_stack):
    nodes = {n.metadata.name: n for n in e2e_cluster.core.list_node().items}
    for release in local_stack.releases:
        pool = release.pool
        resource = pool.slice.resource_name
        pods = pods_of(e2e_cluster, local_stack.namespace, release.name)
        assert len(pods) == expected_replicas(release), [p.metadata.name for p in pods]
        for pod in pods:
            where = f"{release.variant} pod {pod.metadata.name} on {pod.spec.node_name}"
            assert pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses), where
            node = nodes[pod.spec.node_name]
            labels, allocatable = node.metadata.labels, node.status.allocatable
            # the pool's node selector (vendor presence + product label + the stack's own labels)
            assert {k: labels.get(k) for k in pool.full_node_selector} == pool.full_node_selector, (
                f"{where}: labels {labels}"
            )
            # the vendor's GPU resource, and no other vendor's
            assert int(allocatable.get(resource, 0)) > 0, f"{where}: no {resource} on the node"
            assert not other_vendors_resources(allocatable, pool.vendor), f"{where}: node offers {allocatable}"
            assert {t.key for t in pool.platform.tolerations()} <= {t.key for t in node.spec.taints or []}, (
                f"{where}: untainted node"
            )
            requested = sum(int((c.resources.requests or {}).get(resource, 0)) for c in pod.spec.containers)
            assert (requested, effective_values(release.spec)["gpu"]["resourceName"]) == (
                effective_values(release.spec)["gpu"]["count"],
                resource,
            ), where


def test_no_gpu_workload_lands_on_cpu_only_nodes(e2e_cluster, local_stack):
    cpu_nodes = {
        n.metadata.name
        for n in e2e_cluster.core.list_node(label_selector="node-role.jina-embeddings/cpu-only=true").items
    }
    assert cpu_nodes, "the simulated cluster has no CPU-only node"
    pods = e2e_cluster.core.list_namespaced_pod(local_stack.namespace).items
    assert pods and not [p.metadata.name for p in pods if p.spec.node_name in cpu_nodes]


def test_every_service_has_ready_endpoints(e2e_cluster, local_stack):
    for release in local_stack.releases:
        want = expected_replicas(release)
        wait_until(
            lambda: ready_endpoints(e2e_cluster.api, local_stack.namespace, release.service_name) == want,
            60,
            f"{want} ready endpoints of Service {release.service_name}",
        )
        ips = {p.status.pod_ip for p in pods_of(e2e_cluster, local_stack.namespace, release.name)}
        slices = (
            client.DiscoveryV1Api(e2e_cluster.api)
            .list_namespaced_endpoint_slice(
                local_stack.namespace, label_selector=f"kubernetes.io/service-name={release.service_name}"
            )
            .items
        )
        addresses = {a for s in slices for e in s.endpoints or [] for a in e.addresses}
        assert addresses == ips, f"{release.service_name}: endpoints {addresses}, pods {ips}"
        assert {p.port for s in slices for p in s.ports or []} == {effective_values(release.spec)["service"]["port"]}


def test_the_namespace_enforces_restricted_pod_security(e2e_cluster, local_stack):
    """Admission refuses a privileged pod in the stack's namespace (server-side dry run: nothing is created)."""
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="e2e-privileged"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image="registry.invalid/x:1",
                    security_context=client.V1SecurityContext(privileged=True),
                )
            ]
        ),
    )
    with pytest.raises(ApiException) as refused:
        e2e_cluster.core.create_namespaced_pod(local_stack.namespace, pod, dry_run="All")
    assert refused.value.body is not None, "the pod was refused with no body"
    message = json.loads(refused.value.body)["message"]
    assert refused.value.status == 403 and 'violates PodSecurity "restricted:latest": privileged' in message, message
