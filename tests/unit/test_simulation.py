"""Simulated node pools (infra/core/simulation.py): each stack's pools become kwok nodes with the pool's labels,
the vendor's GPU taint and the right amount of the slice's resource (whole GPUs, MIG or shared slices)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from infra.core.paths import REPO_ROOT
from infra.core.simulation import CPU_ONLY_NODES, simulated_nodes
from infra.core.stackfile import load_stack
from tests.conftest import STACKS


@pytest.mark.parametrize("env", STACKS)
def test_every_pool_becomes_its_nodes(env):
    cfg = load_stack(env)
    nodes = {n["metadata"]["name"]: n for n in simulated_nodes(cfg)}
    assert len(nodes) == sum(p.nodes for p in cfg.pools.values()) + CPU_ONLY_NODES
    for pool in cfg.pools.values():
        resource, per_node = pool.slice.resource_name, pool.gpus_per_node * pool.slice.per_gpu
        for i in range(pool.nodes):
            node = nodes[f"{pool.name}-{i}"]
            labels = node["metadata"]["labels"]
            assert {k: labels[k] for k in pool.full_node_selector} == pool.full_node_selector
            assert (
                labels["kubernetes.io/hostname"] == node["metadata"]["name"] and labels["topology.kubernetes.io/zone"]
            )
            assert {t.key for t in pool.platform.tolerations()} <= {t["key"] for t in node["spec"]["taints"]}
            assert node["status"]["allocatable"][resource] == node["status"]["capacity"][resource] == str(per_node)
            other_gpus = [r for r in node["status"]["capacity"] if "/" in r and r != resource]
            assert not other_gpus, other_gpus
    cpu_only = [
        n for n in nodes.values() if n["metadata"]["labels"].get("node-role.jina-embeddings/cpu-only") == "true"
    ]
    assert len(cpu_only) == CPU_ONLY_NODES and all("taints" not in n["spec"] for n in cpu_only)
    assert all("/" not in r for n in cpu_only for r in n["status"]["capacity"])


def test_a_mig_pool_offers_its_slices():
    cfg = load_stack("prod")
    pool = next(p for p in cfg.pools.values() if p.slice_kind == "mig")
    node = next(n for n in simulated_nodes(cfg) if n["metadata"]["name"] == f"{pool.name}-0")
    assert pool.slice.resource_name.startswith("nvidia.com/mig-") and pool.slice.per_gpu > 1
    assert node["status"]["capacity"][pool.slice.resource_name] == str(pool.gpus_per_node * pool.slice.per_gpu)


def test_cli_prints_the_nodes_deterministically():
    def run():
        return subprocess.run(
            [sys.executable, "-m", "infra", "cluster-nodes", "--env", "local"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    first = run()
    assert first == run()
    docs = list(yaml.safe_load_all(first))
    assert [d["kind"] for d in docs] == ["Node"] * len(simulated_nodes(load_stack("local")))
