"""The local control plane keeps converging after its API server stalls.

On a loaded CI machine etcd can stall on a busy disk for longer than a leader-election lease's renew
deadline (10 s). A kube-controller-manager or kube-scheduler with leader election on then exits
("leaderelection lost"), and kwokctl's binary runtime never restarts it: Deployments and HPAs stop
converging while the API server still answers (a `make demo` in CI once waited 2 minutes on an HPA that no
controller was left to run). tools/cluster.sh therefore starts both without leader election; this test
stalls etcd for twice the renew deadline and checks that both survive and still do their work.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.kube import component_pids, wait_until

pytestmark = pytest.mark.e2e

RENEW_DEADLINE_S = 10  # kube-controller-manager's and kube-scheduler's default --leader-elect-renew-deadline
NAMESPACE = "stall-check"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_controllers_survive_an_etcd_stall(e2e_cluster):
    pids = component_pids(e2e_cluster.name)
    assert {"etcd", "kube-controller-manager", "kube-scheduler"} <= pids.keys(), pids

    os.kill(pids["etcd"], signal.SIGSTOP)
    try:
        time.sleep(2 * RENEW_DEADLINE_S)
    finally:
        os.kill(pids["etcd"], signal.SIGCONT)
    wait_until(
        lambda: e2e_cluster.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
        60,
        "the API server to be ready again after the stall",
    )
    time.sleep(5)  # a component that lost its lease exits within a second or two of the API answering again

    dead = [name for name in ("kube-controller-manager", "kube-scheduler") if not alive(pids[name])]
    assert not dead, (
        f"{dead} exited after a {2 * RENEW_DEADLINE_S} s etcd stall: is leader election back on in tools/cluster.sh?"
    )

    # and they still work: a new Deployment gets a ReplicaSet (controller-manager), its pod a node (scheduler)
    e2e_cluster.kubectl("create", "namespace", NAMESPACE)
    try:
        e2e_cluster.kubectl(
            "-n", NAMESPACE, "create", "deployment", "probe", "--image=registry.k8s.io/pause:3.10", "--replicas=2"
        )
        e2e_cluster.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/probe", "--timeout=90s", timeout=120)
    finally:
        e2e_cluster.kubectl("delete", "namespace", NAMESPACE, "--timeout=120s", check=False, timeout=150)
