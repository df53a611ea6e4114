"""`python -m infra status` against the e2e tier's kwok cluster (tests/e2e/conftest.py): the `local` stack's
export applied server-side onto the simulated pools (infra/core/simulation.py); then a stack whose namespace is
not there. Marked e2e: needs the pinned kube-apiserver, etcd and kwok."""

from __future__ import annotations

import re

import pytest

from tests.e2e.kube import expected_replicas

pytestmark = pytest.mark.e2e
ENV = "local"


@pytest.fixture
def status(e2e_cluster):
    """Runs `python -m infra status ARGS` against the e2e cluster (its kubeconfig, never the default one)."""
    return lambda *args: e2e_cluster.infra("status", "--kubeconfig", str(e2e_cluster.kubeconfig), *args)


def test_status_of_the_deployed_local_stack(local_stack, status):
    proc = status("--env", ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for release in local_stack.releases:
        assert release.name in proc.stdout
    for pool in local_stack.config.pools.values():
        demand = sum(expected_replicas(r) for r in local_stack.releases if r.pool.name == pool.name)
        line = re.search(
            rf"^pool {pool.name}: {re.escape(pool.slice.resource_name)} (\d+)/(\d+) requested/allocatable on (\d+) node",
            proc.stdout,
            re.M,
        )
        assert line, proc.stdout
        # the HPAs (CPU, from kwok's simulated usage) may have added replicas beyond the minimum
        assert int(line.group(1)) >= demand, (
            f"{pool.name}: fewer GPUs requested than the variants' minimum {demand}:\n{proc.stdout}"
        )
        assert int(line.group(2)) == pool.capacity_slices and int(line.group(3)) == pool.nodes, proc.stdout
    assert "overall: OK" in proc.stdout


def test_status_of_a_stack_not_deployed_here_says_so(local_stack, status):
    proc = status("--env", "dev")
    assert proc.returncode == 1
    assert "namespace jina-embeddings-dev does not exist" in proc.stderr
