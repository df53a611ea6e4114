"""Simulated node pools for the local control plane: Node objects that mirror a stack's GPU pools.

kwok (tools/cluster.sh) runs no kubelet: it marks pods on these nodes Running and Ready and serves
their simulated resource usage. The scheduler still does its real work against the nodes' labels,
taints and extended resources, so placement, capacity and eviction behave as on real GPU pools.
`python -m infra cluster-nodes --env local` prints them; `make cluster-up` applies them.
"""

from __future__ import annotations

from typing import Any

from infra.core.config import PoolConfig, StackConfig

ZONES = ("zone-a", "zone-b")
# Room for the pods' CPU and memory requests, so only the GPU resource limits placement.
NODE_CPU, NODE_MEMORY, NODE_PODS, NODE_EPHEMERAL = "192", "2048Gi", "110", "4Ti"
CPU_ONLY_NODES = 2


def _node(
    name: str, zone: str, labels: dict[str, str], taints: list[dict[str, str]], extra_capacity: dict[str, str]
) -> dict[str, Any]:
    capacity = {
        "cpu": NODE_CPU,
        "memory": NODE_MEMORY,
        "pods": NODE_PODS,
        "ephemeral-storage": NODE_EPHEMERAL,
        **extra_capacity,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                # metrics-server scrapes kwok's simulated kubelet metrics here (HPA on CPU).
                "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{name}/metrics/resource",
            },
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": zone,
                **labels,
            },
        },
        "spec": {"taints": taints} if taints else {},
        "status": {"allocatable": dict(capacity), "capacity": dict(capacity)},
    }


def pool_nodes(pool: PoolConfig) -> list[dict[str, Any]]:
    """The pool's nodes: its selector labels, the vendor's GPU taint (and any the stack tolerates),
    and gpusPerNode x slices-per-GPU of the slice's resource."""
    taints = [{"key": t.key, "value": t.value or "present", "effect": t.effect} for t in pool.full_tolerations]
    resource = {pool.slice.resource_name: str(pool.gpus_per_node * pool.slice.per_gpu)}
    return [
        _node(f"{pool.name}-{i}", ZONES[i % len(ZONES)], pool.full_node_selector, taints, resource)
        for i in range(pool.nodes)
    ]


def simulated_nodes(cfg: StackConfig) -> list[dict[str, Any]]:
    nodes = [n for pool in cfg.pools.values() for n in pool_nodes(pool)]
    nodes += [
        _node(f"cpu-{i}", ZONES[i % len(ZONES)], {"node-role.jina-embeddings/cpu-only": "true"}, [], {})
        for i in range(CPU_ONLY_NODES)
    ]
    return nodes
