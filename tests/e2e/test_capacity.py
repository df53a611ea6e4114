"""Asking for more GPUs than a pool has: the extra pods stay Pending with FailedScheduling naming the GPU
resource (real kube-scheduler, simulated pools), and `python -m infra status` reports the shortfall.

Each pool of the `local` stack is made to want one replica more than it has GPUs for, by scaling its
fixed-replica variant (the one without an autoscaler, which would otherwise set the count back).
"""

from __future__ import annotations

import re

import pytest

from infra.core.errors import EXIT_DEGRADED, EXIT_OK
from infra.core.plan import Plan, PlannedRelease
from infra.sinks.helm import effective_values
from tests.e2e.kube import deployment_settled, expected_replicas, pods_of, wait_until

pytestmark = pytest.mark.e2e


def over_capacity_plan(plan: Plan) -> dict[str, tuple[PlannedRelease, int]]:
    """pool name -> (its fixed-replica release, replicas that ask for exactly one GPU slice more than the pool has)."""
    out = {}
    for pool in plan.config.pools.values():
        releases = [r for r in plan.releases if r.pool.name == pool.name]
        fixed = next(r for r in releases if not effective_values(r.spec)["autoscaling"]["enabled"])
        others = sum(
            expected_replicas(r) * effective_values(r.spec)["gpu"]["count"] for r in releases if r is not fixed
        )
        spare = pool.capacity_slices - others - expected_replicas(fixed) * effective_values(fixed.spec)["gpu"]["count"]
        assert spare >= 0, f"the local stack does not fit its own pool {pool.name}"
        out[pool.name] = (fixed, expected_replicas(fixed) + spare // effective_values(fixed.spec)["gpu"]["count"] + 1)
    return out


def unschedulable(cluster, namespace: str, release) -> list:
    return [
        p
        for p in pods_of(cluster, namespace, release.name)
        if not p.spec.node_name
        and any(
            c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
            for c in p.status.conditions or []
        )
    ]


def ready_of(cluster, namespace: str, name: str) -> int | None:
    """The Deployment's ready replicas, once its controller has seen the latest change."""
    d = cluster.apps.read_namespaced_deployment(name, namespace)
    return (d.status.ready_replicas or 0) if d.status.observed_generation == d.metadata.generation else None


def test_more_gpus_than_the_pool_has_leave_pods_pending_and_status_says_so(e2e_cluster, local_stack):
    ns = local_stack.namespace
    wanted = over_capacity_plan(local_stack)
    assert {r.pool.vendor for r, _ in wanted.values()} == {"nvidia", "amd"}  # both vendors' pools are exercised
    try:
        for release, replicas in wanted.values():
            e2e_cluster.kubectl("-n", ns, "scale", f"deployment/{release.name}", f"--replicas={replicas}")

        for release, replicas in wanted.values():
            resource = release.pool.slice.resource_name
            pending = wait_until(
                lambda: unschedulable(e2e_cluster, ns, release), 60, f"an Unschedulable pod of {release.name}"
            )
            assert len(pending) == 1, [p.metadata.name for p in pending]
            # ... while the rest of the pool is placed and Ready
            running = [p for p in pods_of(e2e_cluster, ns, release.name) if p.spec.node_name]
            assert len(running) == replicas - 1
            wait_until(
                lambda: ready_of(e2e_cluster, ns, release.name) == replicas - 1,
                60,
                f"{release.name} to report {replicas - 1} ready",
            )
            event = wait_until(
                lambda: [
                    e
                    for e in e2e_cluster.core.list_namespaced_event(
                        ns,
                        field_selector=f"type=Warning,reason=FailedScheduling,involvedObject.name={pending[0].metadata.name}",
                    ).items
                ],
                60,
                f"FailedScheduling event of {pending[0].metadata.name}",
            )[0]
            assert f"Insufficient {resource}" in event.message, event.message

        # the operator's view: degraded, the Pending pods named, the scheduler's reason, each pool full
        status = e2e_cluster.infra("status", "--env", "local", "--kubeconfig", str(e2e_cluster.kubeconfig))
        assert status.returncode == EXIT_DEGRADED, status.stdout + status.stderr
        out = status.stdout
        assert "pods with no node (Pending):" in out and "overall: DEGRADED" in out, out
        for pool_name, (release, replicas) in wanted.items():
            resource = release.pool.slice.resource_name
            assert re.search(
                rf"^{re.escape(release.variant)} +{release.name} +{replicas} +{replicas - 1} .*<-- short$", out, re.M
            ), out
            assert re.search(
                rf"^  \S+ \({re.escape(release.variant)}\)$", out.split("pods with no node (Pending):")[1], re.M
            ), out
            capacity = release.pool.capacity_slices
            assert f"pool {pool_name}: {resource} {capacity}/{capacity} requested/allocatable" in out, out
            assert re.search(rf"FailedScheduling x\d+: .*Insufficient {re.escape(resource)}", out), out
    finally:
        for release, _ in wanted.values():
            e2e_cluster.kubectl(
                "-n", ns, "scale", f"deployment/{release.name}", f"--replicas={expected_replicas(release)}"
            )

    # back within the pools: the Pending pods go, and status is OK again
    for release, _ in wanted.values():
        wait_until(
            lambda: (
                deployment_settled(e2e_cluster, ns, release.name, expected_replicas(release))
                and not unschedulable(e2e_cluster, ns, release)
            ),
            60,
            f"{release.name} back to {expected_replicas(release)} Ready replica(s)",
        )
    status = e2e_cluster.infra("status", "--env", "local", "--kubeconfig", str(e2e_cluster.kubeconfig))
    assert status.returncode == EXIT_OK, status.stdout + status.stderr
