"""`kubectl drain` of a GPU node respects the variant's PodDisruptionBudget, and the variant keeps serving.

Worst case on purpose: the rest of the pool is cordoned first (as during a rolling node upgrade), so an
evicted replica cannot be replaced until the drain is over. The PDB (maxUnavailable 1) lets the drain take
one replica; from then on disruptionsAllowed is 0, and the eviction API itself answers 429 for the other
replica, whether kubectl or anyone else asks. The Service keeps >= 1 ready endpoint the whole time
(sampled from its EndpointSlices in the background). The nodes are uncordoned afterwards and the variant
must come back to full strength.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from infra.core.plan import build_for_env
from infra.sinks.helm import effective_values
from tests.e2e.kube import (
    Sampler,
    deployment_settled,
    expected_replicas,
    pods_of,
    ready_endpoints,
    wait_until,
)

pytestmark = pytest.mark.e2e
# variants with a PDB, i.e. with more than one replica (one per GPU vendor in the local stack)
GUARDED = [
    r.variant
    for r in build_for_env("local").releases
    if effective_values(r.spec)["podDisruptionBudget"]["enabled"] and expected_replicas(r) > 1
]
DRAIN = ("--ignore-daemonsets", "--delete-emptydir-data")


def disruptions_allowed(cluster, namespace: str, name: str) -> int:
    return cluster.policy.read_namespaced_pod_disruption_budget(name, namespace).status.disruptions_allowed


def evict(cluster, namespace: str, pod: str) -> None:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=namespace))
    cluster.core.create_namespaced_pod_eviction(pod, namespace, body)


def test_guarded_variants_cover_both_vendors():
    vendors = {r.pool.vendor for r in build_for_env("local").releases if r.variant in GUARDED}
    assert vendors == {"nvidia", "amd"}, GUARDED


@pytest.mark.parametrize("variant", GUARDED)
def test_drain_of_a_gpu_node_respects_the_pdb_and_the_variant_keeps_serving(e2e_cluster, local_stack, variant):
    ns, release = local_stack.namespace, local_stack.release(variant)
    selector = ",".join(f"{k}={v}" for k, v in release.pool.full_node_selector.items())
    pool_nodes = sorted(n.metadata.name for n in e2e_cluster.core.list_node(label_selector=selector).items)
    pods = pods_of(e2e_cluster, ns, release.name)
    target = pods[0].spec.node_name
    on_target = [p.metadata.name for p in pods if p.spec.node_name == target]
    assert target in pool_nodes and len(pool_nodes) > 1, (target, pool_nodes)
    wait_until(
        lambda: disruptions_allowed(e2e_cluster, ns, release.name) == 1, 60, f"PDB {release.name} to allow 1 disruption"
    )

    sampler = Sampler(e2e_cluster, lambda api: ready_endpoints(api, ns, release.service_name))
    sampler.start()
    try:
        e2e_cluster.kubectl("cordon", *[n for n in pool_nodes if n != target])
        drain = e2e_cluster.kubectl("drain", target, *DRAIN, "--timeout=30s", check=False)
        if len(on_target) == 1:  # the usual spread: the drain takes this variant's one pod there and finishes
            assert drain.returncode == 0, drain.stderr
        else:  # both replicas on the node: the PDB lets the first go and holds the second until the timeout
            assert drain.returncode != 0 and "disruption budget" in drain.stderr, drain.stderr

        # one replica gone, its replacement has nowhere to go: the budget is used up
        wait_until(lambda: disruptions_allowed(e2e_cluster, ns, release.name) == 0, 60, f"PDB {release.name} at 0")
        serving = [
            p
            for p in pods_of(e2e_cluster, ns, release.name)
            if p.spec.node_name and all(c.ready for c in p.status.container_statuses or [])
        ]
        assert len(serving) == expected_replicas(release) - 1, [p.metadata.name for p in serving]
        last = serving[0]

        # the eviction API itself refuses the next one ...
        with pytest.raises(ApiException) as refused:
            evict(e2e_cluster, ns, last.metadata.name)
        assert refused.value.status == 429, refused.value.body
        assert refused.value.body is not None, "the eviction was refused with no body"
        assert "disruption budget" in json.loads(refused.value.body)["message"], refused.value.body
        # ... and so does a drain of the node that replica runs on (bounded: it would retry forever)
        blocked = e2e_cluster.kubectl(
            "drain",
            last.spec.node_name,
            *DRAIN,
            f"--pod-selector=app.kubernetes.io/instance={release.name}",
            "--timeout=15s",
            check=False,
        )
        assert blocked.returncode != 0 and "disruption budget" in blocked.stderr, blocked.stderr
        assert e2e_cluster.core.read_namespaced_pod(last.metadata.name, ns).metadata.deletion_timestamp is None

        e2e_cluster.kubectl("uncordon", *pool_nodes)
        wait_until(
            lambda: deployment_settled(e2e_cluster, ns, release.name, expected_replicas(release)),
            120,
            f"{release.name} back to {expected_replicas(release)} Ready replicas after uncordon",
        )
        wait_until(lambda: disruptions_allowed(e2e_cluster, ns, release.name) == 1, 60, f"PDB {release.name} back to 1")
        wait_until(
            lambda: ready_endpoints(e2e_cluster.api, ns, release.service_name) == expected_replicas(release),
            60,
            f"{release.service_name}: {expected_replicas(release)} ready endpoints again",
        )
    finally:
        e2e_cluster.kubectl("uncordon", *pool_nodes, check=False)
        samples = sampler.stop()
    assert len(samples) >= 20, samples  # the drain took seconds, so the sampler must have looked many times
    assert min(samples) >= 1, f"{release.service_name} had no ready endpoint at some point: {samples}"
    # the drain was real: the Service lost a replica's endpoint on the way
    assert min(samples) == expected_replicas(release) - 1, samples
