"""`python -m infra status` against the local kwok cluster (tools/cluster.sh): the `local` stack's export
applied server-side onto fake GPU nodes made from the plan's pools; then a stack whose namespace is not
there. Marked e2e: needs the pinned kube-apiserver, etcd and kwok."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from infra.accelerators import VENDORS
from infra.plan import build_for_env
from tests.conftest import repo_path

pytestmark = pytest.mark.e2e
ENV = "local"
LABEL = "jina-embeddings/e2e-status"  # marks the fake nodes this test adds


def kubectl(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc


def fake_nodes(plan) -> list[dict]:
    """kwok nodes for every pool of the plan: the pool's labels and taint, its GPUs as allocatable."""
    nodes = []
    for pool in plan.config.pools.values():
        taint = VENDORS[pool.vendor].default_toleration
        for i in range(pool.nodes):
            name = f"{pool.name}-{i}"
            gpus = str(pool.gpus_per_node * pool.slice.per_gpu)
            resources = {"cpu": "96", "memory": "1536Gi", "pods": "110", "ephemeral-storage": "2Ti", pool.slice.resource_name: gpus}
            nodes.append({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                             "labels": {**pool.full_node_selector, "type": "kwok", LABEL: "true", "kubernetes.io/hostname": name,
                                        "kubernetes.io/os": "linux", "topology.kubernetes.io/zone": f"zone-{i % 2}"}},
                "spec": {"taints": [{"key": taint.key, "value": taint.value or "present", "effect": taint.effect}]},
                "status": {"allocatable": resources, "capacity": resources},
            })
    return nodes


@pytest.fixture(scope="module")
def local_stack():
    cluster = str(repo_path("tools", "cluster.sh"))
    was_running = "not running" not in subprocess.run([cluster, "status"], capture_output=True, text=True).stderr
    up = subprocess.run([cluster, "up"], capture_output=True, text=True)
    assert up.returncode == 0, f"tools/cluster.sh up failed:\n{up.stderr[-3000:]}"
    plan = build_for_env(ENV)
    # a namespace still terminating (a previous run) refuses new objects
    kubectl("wait", "--for=delete", f"namespace/{plan.namespace}", "--timeout=180s", check=False)
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(fake_nodes(plan)))
    kubectl("apply", "--server-side", "-k", str(repo_path("manifests", ENV)))
    try:
        for release in plan.releases:
            autoscaling = release.values["autoscaling"]
            if autoscaling["enabled"]:  # the Deployment starts at 1 replica; its HPA raises it to minReplicas
                deadline = time.monotonic() + 120
                while int(kubectl("-n", plan.namespace, "get", f"deploy/{release.name}", "-o", "jsonpath={.spec.replicas}").stdout or 0) < autoscaling["minReplicas"]:
                    assert time.monotonic() < deadline, f"HPA {release.name} did not scale to minReplicas"
                    time.sleep(2)
            kubectl("-n", plan.namespace, "rollout", "status", f"deploy/{release.name}", "--timeout=180s")
        yield plan
    finally:
        kubectl("delete", "-k", str(repo_path("manifests", ENV)), "--ignore-not-found", "--timeout=180s", check=False)
        kubectl("delete", "nodes", "-l", f"{LABEL}=true", "--timeout=60s", check=False)
        if not was_running:  # leave the cluster as we found it
            subprocess.run([cluster, "down"], capture_output=True, text=True)


def status(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra", "status", *args], capture_output=True, text=True,
                          cwd=repo_path(), env=os.environ)


def test_status_of_the_deployed_local_stack(local_stack):
    proc = status("--env", ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for release in local_stack.releases:
        assert release.name in proc.stdout
    for pool in local_stack.config.pools.values():
        demand = sum(r.values["replicaCount"] if not r.values["autoscaling"]["enabled"] else r.values["autoscaling"]["minReplicas"]
                     for r in local_stack.releases if r.pool.name == pool.name)
        allocatable = pool.nodes * pool.gpus_per_node * pool.slice.per_gpu
        line = re.search(rf"^pool {pool.name}: {re.escape(pool.slice.resource_name)} (\d+)/(\d+) requested/allocatable on (\d+) node", proc.stdout, re.M)
        assert line, proc.stdout
        # the HPAs (CPU, from kwok's simulated usage) may have added replicas beyond the minimum
        assert int(line.group(1)) >= demand, f"{pool.name}: fewer GPUs requested than the variants' minimum {demand}:\n{proc.stdout}"
        assert int(line.group(2)) == allocatable and int(line.group(3)) == pool.nodes, proc.stdout
    assert "overall: OK" in proc.stdout


def test_status_of_a_stack_not_deployed_here_says_so(local_stack):
    proc = status("--env", "dev")
    assert proc.returncode == 1
    assert "namespace jina-embeddings-dev does not exist" in proc.stderr
