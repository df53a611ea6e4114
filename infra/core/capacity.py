"""`python -m infra capacity`: how many replicas, GPU slices and GPUs a workload needs.

Throughput comes from vLLM itself, measured on a GPU with the flags the stacks render
(infra.core.calibration.EngineCalibration; bench/vllm_gpu_benchmark.py, docs/gpu-results.md). One replica
serves the smaller of two limits, at the shortest measured input shape that covers the mean input:
- the GPU's: the most one GPU delivered (over one or several servers) x (this GPU's dense bf16 peak / the
  measured GPU's) x (the slice's share of the GPU's compute);
- one server's: what one vLLM server delivered alone (its API server tokenizes and serialises: short queries
  stop there, far below the GPU's limit), sized for a whole GPU or for a slice's memory budget.
A replica is planned at TARGET_UTILIZATION of that, leaving room for bursts. A test keeps this within
20 % of every measured point (tests/unit/test_capacity.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infra.core import calibration
from infra.core.accelerators import (
    GPU_MODELS,
    SLICE_KINDS,
    GpuModel,
    GpuSlice,
    gpu_slice,
)
from infra.core.config import StackConfig
from infra.core.sizing import SizingConstants, size, sizing_request

TARGET_UTILIZATION = 0.7
MIN_HA_REPLICAS = 2


@dataclass(frozen=True)
class SliceCapacity:
    gpu: GpuModel
    slice: GpuSlice
    shape: str  # the measured input shape the plan rests on
    gpu_limit: float  # tokens/s: the GPU's limit for this slice
    server_limit: float  # tokens/s: one server's limit
    tokens_per_second: float  # what one replica on this slice serves at TARGET_UTILIZATION

    @property
    def limited_by(self) -> str:
        return "GPU" if self.gpu_limit <= self.server_limit else "server"

    @property
    def replica_tokens_per_second(self) -> float:
        """What one replica serves flat out (the planner's prediction of a measurement)."""
        return min(self.gpu_limit, self.server_limit)


@dataclass(frozen=True)
class VariantCapacity:
    variant: str
    pool: str
    per_replica_tokens_per_second: float
    peak_replicas: int  # = the HPA's maxReplicas
    min_replicas: int  # = the HPA's minReplicas


@dataclass(frozen=True)
class PoolCapacity:
    pool: str
    slice_resource: str
    slices: int
    gpus: int
    nodes: int
    configured_slices: int | None  # what the stack's pool holds today (None with --slice)


def measured_gpu(engine: calibration.EngineCalibration) -> GpuModel:
    """The catalog's entry for the GPU the engine was measured on ("NVIDIA H200" -> product label NVIDIA-H200)."""
    label = engine.gpu_name.replace(" ", "-")
    for model in GPU_MODELS.values():
        if model.product_label == label:
            return model
    raise ValueError(
        f"the engine was measured on {engine.gpu_name!r}, which infra/core/accelerators.py GPU_MODELS lacks"
    )


def slice_capacity(
    gpu: GpuModel, slice_: GpuSlice, mean_input_tokens: int, engine: calibration.EngineCalibration
) -> SliceCapacity:
    shape = engine.shape_for(mean_input_tokens)
    peak_ratio = gpu.dense_bf16_tflops / measured_gpu(engine).dense_bf16_tflops
    gpu_limit = engine.gpu_tokens_per_second[shape] * peak_ratio * slice_.compute_share
    whole = slice_.compute_share == 1 and slice_.memory_budget_bytes == slice_.visible_memory_bytes
    servers = engine.server_tokens_per_second if whole else engine.slice_server_tokens_per_second
    server_limit = servers.get(shape, engine.server_tokens_per_second[shape]) * peak_ratio
    return SliceCapacity(gpu, slice_, shape, gpu_limit, server_limit, min(gpu_limit, server_limit) * TARGET_UTILIZATION)


def replicas_for(tokens_per_second: float, per_replica: float) -> int:
    return max(1, math.ceil(tokens_per_second / per_replica))


def plan_variant(
    variant: str, pool: str, capacity: SliceCapacity, peak_tokens_per_second: float, off_peak_fraction: float
) -> VariantCapacity:
    peak = replicas_for(peak_tokens_per_second, capacity.tokens_per_second)
    floor = replicas_for(peak_tokens_per_second * off_peak_fraction, capacity.tokens_per_second)
    low = max(MIN_HA_REPLICAS, floor)
    return VariantCapacity(variant, pool, capacity.tokens_per_second, max(peak, low + 1), low)


def plan_pool(name: str, slice_: GpuSlice, gpus_per_node: int, replicas: int, configured: int | None) -> PoolCapacity:
    gpus = math.ceil(replicas / slice_.per_gpu)
    return PoolCapacity(name, slice_.resource_name, replicas, gpus, math.ceil(gpus / gpus_per_node), configured)


def parse_slice(spec: str) -> tuple[GpuModel, GpuSlice]:
    """GPU:KIND[:PARAM], e.g. nvidia-h100-80gb:mig:1g.10gb, nvidia-l4:time-sliced:4, amd-mi300x:amd-cpx."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in GPU_MODELS or parts[1] not in SLICE_KINDS:
        raise ValueError(
            f"--slice {spec!r}: expected GPU:KIND[:PARAM] with GPU one of {', '.join(GPU_MODELS)} and "
            f"KIND one of {', '.join(SLICE_KINDS)}, e.g. nvidia-h100-80gb:mig:1g.10gb or nvidia-l4:time-sliced:4"
        )
    gpu, kind, param = GPU_MODELS[parts[0]], parts[1], parts[2] if len(parts) == 3 else ""
    if kind == "time-sliced" and not param.isdigit():
        raise ValueError(f"--slice {spec!r}: time-sliced needs the replicas per GPU, e.g. {gpu.key}:time-sliced:4")
    try:
        return gpu, gpu_slice(gpu, kind, mig_profile=param, shared_replicas=int(param) if param.isdigit() else 0)
    except ValueError as exc:
        raise ValueError(f"--slice {spec!r}: {exc}") from None


@dataclass(frozen=True)
class CapacityPlan:
    mean_input_tokens: int
    peak_tokens_per_second: float
    variants: tuple[VariantCapacity, ...]
    pools: tuple[PoolCapacity, ...]
    slices: dict[str, SliceCapacity]


def plan_capacity(
    cfg: StackConfig,
    cal: calibration.EngineCalibration,
    constants: SizingConstants,
    peak_tokens_per_second: float,
    mean_input_tokens: int,
    off_peak_fraction: float = 0.25,
    override: tuple[GpuModel, GpuSlice] | None = None,
) -> CapacityPlan:
    """Replicas per enabled variant (each at `peak_tokens_per_second`) and slices/GPUs/nodes per pool.
    Raises SliceTooSmall when a slice (the stack's or the override) cannot hold a variant."""
    variants, pools, slices = [], [], {}
    for pool in cfg.pools.values():
        gpu, slice_ = override or (pool.gpu_model, pool.slice)
        members = [v for v in cfg.variants.values() if v.pool == pool.name]
        if not members:
            continue
        # The slice must hold the model at each variant's context length.
        for v in members:
            size(sizing_request(v, slice_, cfg.weights), constants)  # raises SliceTooSmall
        capacity = slice_capacity(gpu, slice_, mean_input_tokens, cal)
        slices[pool.name] = capacity
        planned = [
            plan_variant(v.name, pool.name, capacity, peak_tokens_per_second, off_peak_fraction) for v in members
        ]
        variants += planned
        pools.append(
            plan_pool(
                pool.name,
                slice_,
                pool.gpus_per_node,
                sum(p.peak_replicas for p in planned),
                None if override else pool.capacity_slices,
            )
        )
    return CapacityPlan(mean_input_tokens, peak_tokens_per_second, tuple(variants), tuple(pools), slices)
