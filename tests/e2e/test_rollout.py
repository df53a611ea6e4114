"""A rollout in a GPU pool with no free GPU.

The bundle's default strategy, `gpu-constrained` (maxSurge 0, maxUnavailable 1; docs/configuration.md,
"Stack keys", `rollout`), replaces one pod at a time in place, so it completes without ever needing a
GPU the pool does not have. For contrast, `surge` (maxSurge 1, maxUnavailable 0) needs one spare GPU: in
a full pool its surge pod stays Pending with FailedScheduling and the rollout stalls (with the old pods
still serving) until the strategy is switched back, as documented. The pool is filled by scaling the
pool's fixed-replica variant onto its free GPUs.
"""

from __future__ import annotations

import json
import time

import pytest

from infra.sinks.helm import effective_values
from tests.e2e.kube import (
    Sampler,
    deployment_settled,
    expected_replicas,
    live_pods,
    pods_of,
    wait_until,
    warning_events,
)

pytestmark = pytest.mark.e2e
VARIANT = "retrieval"  # autoscaled, 2 replicas, on the NVIDIA pool
STUCK_FOR_S = 20  # how long the surge rollout is watched to make sure it does not progress


def free_slices(cluster, plan, pool) -> int:
    resource = pool.slice.resource_name
    selector = ",".join(f"{k}={v}" for k, v in pool.full_node_selector.items())
    nodes = {
        n.metadata.name: int(n.status.allocatable.get(resource, 0))
        for n in cluster.core.list_node(label_selector=selector).items
    }
    pods = cluster.core.list_pod_for_all_namespaces(field_selector="status.phase!=Succeeded,status.phase!=Failed").items
    used = sum(
        int((c.resources.requests or {}).get(resource, 0))
        for p in pods
        if p.spec.node_name in nodes
        for c in p.spec.containers
    )
    return sum(nodes.values()) - used


def restart(cluster, namespace: str, name: str, value: str, strategy: dict | None = None) -> None:
    """Change the pod template (what `kubectl rollout restart` does), optionally the strategy in the same patch."""
    spec = {"template": {"metadata": {"annotations": {"jina-embeddings/e2e-rollout": value}}}}
    if strategy:
        spec["strategy"] = {"rollingUpdate": strategy}
    cluster.kubectl("-n", namespace, "patch", f"deployment/{name}", "-p", json.dumps({"spec": spec}))


def failed_scheduling(cluster, namespace: str, pod_prefix: str) -> list[str]:
    """Messages of FailedScheduling events of the pods whose names start with `pod_prefix`."""
    return [
        e.message
        for e in warning_events(cluster, namespace, "FailedScheduling")
        if e.involved_object.name.startswith(pod_prefix)
    ]


def rollout_state(cluster, namespace: str, name: str) -> tuple[int, int, int] | None:
    """(updated, ready, Pending pods) of the Deployment; None until its controller has seen the latest change."""
    d = cluster.apps.read_namespaced_deployment(name, namespace)
    if d.status.observed_generation != d.metadata.generation:
        return None
    pending = [p for p in pods_of(cluster, namespace, name) if not p.spec.node_name]
    return d.status.updated_replicas or 0, d.status.ready_replicas or 0, len(pending)


def test_rollout_in_a_full_gpu_pool(e2e_cluster, local_stack):
    ns, release = local_stack.namespace, local_stack.release(VARIANT)
    pool, resource = release.pool, release.pool.slice.resource_name
    replicas = expected_replicas(release)
    assert effective_values(release.spec)["rollout"] == {
        **effective_values(release.spec)["rollout"],
        "maxSurge": 0,
        "maxUnavailable": 1,
    }  # gpu-constrained

    # fill the pool: the fixed-replica variant of the same pool takes every free GPU
    filler = next(
        r
        for r in local_stack.releases
        if r.pool.name == pool.name and not effective_values(r.spec)["autoscaling"]["enabled"]
    )
    free = free_slices(e2e_cluster, local_stack, pool)
    assert free > 0, "the local stack should leave a GPU free in its NVIDIA pool"
    filled = expected_replicas(filler) + free // effective_values(filler.spec)["gpu"]["count"]
    e2e_cluster.kubectl("-n", ns, "scale", f"deployment/{filler.name}", f"--replicas={filled}")
    wait_until(
        lambda: deployment_settled(e2e_cluster, ns, filler.name, filled), 60, f"{filler.name} at {filled} replicas"
    )
    assert free_slices(e2e_cluster, local_stack, pool) == 0
    assert not failed_scheduling(e2e_cluster, ns, release.name + "-")

    # 1. gpu-constrained: one pod goes, its replacement takes the GPU it frees; the Deployment never asks for
    #    more pods than `replicas`, so the full pool is no obstacle. (The replacement may wait a moment for the
    #    old pod's GPU, as on real nodes while the old vLLM shuts down: that is not a surge.)
    before = {p.metadata.name for p in pods_of(e2e_cluster, ns, release.name)}
    sampler = Sampler(e2e_cluster, lambda api: live_pods(api, ns, release.name))
    sampler.start()
    try:
        restart(e2e_cluster, ns, release.name, "1")
        status = e2e_cluster.kubectl(
            "-n", ns, "rollout", "status", f"deployment/{release.name}", "--timeout=120s", check=False
        )
        assert status.returncode == 0, status.stdout + status.stderr
        wait_until(
            lambda: deployment_settled(e2e_cluster, ns, release.name, replicas), 60, f"{release.name} rolled out"
        )
    finally:
        asked = sampler.stop()
    assert asked[0] == replicas and max(asked) <= replicas, f"pods asked for during the rollout: {asked}"
    after = pods_of(e2e_cluster, ns, release.name)
    assert not before & {p.metadata.name for p in after}, "some pods were not replaced"
    assert all(p.spec.node_name for p in after)
    # the old pods are gone (not just terminating) and the pool is full again before the contrast
    wait_until(
        lambda: not [p for p in e2e_cluster.core.list_namespaced_pod(ns).items if p.metadata.deletion_timestamp],
        60,
        "the replaced pods to be gone",
    )
    assert free_slices(e2e_cluster, local_stack, pool) == 0

    # 2. surge: one pod more than `replicas` needs a GPU that is not there -> Pending, FailedScheduling, and
    #    the rollout stalls (maxUnavailable 0: no old pod goes before a new one is Ready) with the old pods serving
    restart(e2e_cluster, ns, release.name, "2", strategy={"maxSurge": 1, "maxUnavailable": 0})
    try:
        stuck = (1, replicas, 1)  # (updated, ready, Pending): the surge pod alone is new, the old ones all serve
        wait_until(
            lambda: rollout_state(e2e_cluster, ns, release.name) == stuck,
            60,
            f"{release.name} to report its surge pod Pending",
        )
        surge = next(p.metadata.name for p in pods_of(e2e_cluster, ns, release.name) if not p.spec.node_name)
        events = wait_until(
            lambda: failed_scheduling(e2e_cluster, ns, surge), 60, f"FailedScheduling of the surge pod {surge}"
        )
        assert any(f"Insufficient {resource}" in m for m in events), events
        assert live_pods(e2e_cluster.api, ns, release.name) == replicas + 1
        deadline = time.monotonic() + STUCK_FOR_S
        while time.monotonic() < deadline:  # watched for a while: it must not progress
            state = rollout_state(e2e_cluster, ns, release.name)
            assert state in (stuck, None), (
                state,
                e2e_cluster.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp").stdout,
            )
            time.sleep(2)
        stalled = e2e_cluster.kubectl(
            "-n", ns, "rollout", "status", f"deployment/{release.name}", "--timeout=5s", check=False
        )
        assert stalled.returncode != 0, stalled.stdout
    finally:
        # 3. back to gpu-constrained: the same rollout now completes (an old pod makes room for the new ones)
        e2e_cluster.kubectl(
            "-n",
            ns,
            "patch",
            f"deployment/{release.name}",
            "-p",
            json.dumps({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}}}),
        )
    status = e2e_cluster.kubectl(
        "-n", ns, "rollout", "status", f"deployment/{release.name}", "--timeout=120s", check=False
    )
    assert status.returncode == 0, status.stdout + status.stderr
    wait_until(
        lambda: (
            deployment_settled(e2e_cluster, ns, release.name, replicas)
            and all(p.spec.node_name for p in pods_of(e2e_cluster, ns, release.name))
        ),
        60,
        f"{release.name} settled, nothing Pending",
    )
