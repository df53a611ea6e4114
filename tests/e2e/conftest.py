"""Fixtures of the e2e tier: one kwok cluster per test process, a fresh `local` stack per module.

The cluster is the suite's own (`jina-e2e`, kubeconfig $BUNDLE_TOOLS_DIR/kubeconfig-jina-e2e; one per pytest-xdist
worker): started at the first test that asks for it, deleted whatever happened once the process leaves tests/e2e
(package scope: the next test is in another tier, or the session ends), never reused from an earlier run. `make
test` hands out the e2e modules before the other tiers' (tests/conftest.py), so a worker does not come back to
them; a cluster idling until the session's end cost its kube-apiserver 74-110 s of CPU. Its nodes mirror the
`local` stack's pools (infra/core/simulation.py). Each test module that needs the stack deploys manifests/local
into it and removes it again, so a module that breaks things (drain, over-capacity, rollout, autoscaling) cannot
leak into the next one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.kube import (
    CLUSTER_NAME,
    Cluster,
    deploy_local_stack,
    remove_stack,
    running_cluster,
)

LOCAL = "local"


@pytest.fixture(scope="package")
def e2e_cluster() -> Iterator[Cluster]:
    with running_cluster(CLUSTER_NAME, nodes_env=LOCAL) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def local_stack(e2e_cluster):
    """manifests/local applied server-side and every variant Ready; the stack's Plan."""
    try:
        yield deploy_local_stack(e2e_cluster, LOCAL)
    finally:
        remove_stack(e2e_cluster, LOCAL)
