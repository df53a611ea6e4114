"""Sizing that shows its work: vLLM flags, pod resources and probe budgets from the model's shape and
the GPU slice a variant runs on.

Every number a reviewer might question is a named constant with its source. `size()` is a pure
function; `Sizing.explain()` prints each term so `python -m infra plan` and the README can show how a
figure was reached. The README section "Sizing" documents the formulas below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infra.core.accelerators import GIB, MIB, GpuSlice
from infra.core.calibration import Calibration
from infra.core.catalog import SHAPE, VARIANTS, served_model
from infra.core.config import (
    Problem,
    StackConfig,
    VariantConfig,
    WeightsConfig,
    set_fix,
)
from infra.core.platforms import DAEMONSET_CPU_MILLICORES, DAEMONSET_MEMORY_BYTES, MACHINE_TYPES, MachineType

# Measured with vLLM 0.25 on an H200 (bench/results/vllm-0.25.0-nvidia-h200.json, docs/gpu-results.md):
# - its piecewise CUDA graphs took 0.24 GiB ("Graph capturing finished ... 0.24 GiB");
# - the process grew by up to 0.35 GiB more once it served traffic (nvidia-smi after the load runs);
# - up to 0.75 GiB of the process (CUDA context, NCCL, allocator slack) is not counted by
#   --gpu-memory-utilization, so a slice-sized fraction must leave that much outside it.
VLLM_CUDA_GRAPH_ALLOWANCE = GIB // 4
VLLM_SERVING_GROWTH = 35 * GIB // 100
VLLM_OUTSIDE_UTILIZATION = 3 * GIB // 4
# The slowest weight load the startup budget plans for: a network volume (EFS, NFS).
NETWORK_VOLUME_BYTES_PER_SECOND = 0.5e9


@dataclass(frozen=True)
class SizingConstants:
    """Constants of the model on vLLM. "Measured" means the benchmark result (infra.core.calibration), which
    `SizingConstants.measured` reads in; the other fields have defaults with their sources."""

    # Measured: bf16 weights on the GPU, 596.05M parameters x 2 B = 1.11 GiB (no LM head is allocated
    # for the pooling model; vLLM logged 1.1098 GiB for the same backbone, QwenLM/Qwen3-Embedding#1).
    weights_bytes: int
    # Measured non-torch memory (CUDA context, kernels, cuBLAS workspaces; 0.75 GiB at its largest), plus vLLM's
    # CUDA graphs and its growth under traffic, both measured with vLLM (VLLM_CUDA_GRAPH_ALLOWANCE, VLLM_SERVING_GROWTH).
    runtime_overhead_bytes: int
    # Measured: the largest peak activation per token of a pooled forward over the batch x length
    # grid (29,192 B; the linear fit's slope is 26,753 B). vLLM's profiling pass runs one forward at
    # --max-num-batched-tokens, so activations = this x that budget.
    activation_bytes_per_batched_token: int
    # Weight load rate. Measured 1.31 GB/s from local ext4 to an H100; a network volume (EFS, NFS)
    # is slower, so the budget assumes at most 0.5 GB/s.
    weight_load_bytes_per_second: float
    # Seconds from container start to /health 200 with weights on local disk and an empty compile cache:
    # Python and torch imports, three processes, engine init, torch.compile (27-30 s) and CUDA graphs (4-5 s).
    # Measured 104-141 s with vLLM 0.25 on an H200 (96-99 s with a warm compile cache): the upper figure.
    cold_start_seconds: float = 140.0
    # Memory of the process that --gpu-memory-utilization does not count (measured, see above).
    outside_utilization_bytes: int = VLLM_OUTSIDE_UTILIZATION
    # vLLM's default --gpu-memory-utilization is 0.92: it keeps 8 % of the memory it is given free.
    utilization_headroom: float = 0.08
    # KV cache for this many batched-token budgets, so a step can prefill while finished sequences
    # release their blocks; never less than one max-model-len request (vLLM refuses to start).
    kv_batches: int = 2
    # Host memory: torch, CUDA libraries and the two vLLM processes (API server, engine core).
    host_base_bytes: int = 4 * GIB
    # vLLM runs an API-server process (HTTP, tokenizer) and an engine-core process that busy-polls
    # the GPU: about one core each. Tokenization is the usual bottleneck for embeddings (vllm#31678),
    # so up to 4 more cores follow the share of a GPU's compute the pod gets.
    cpu_base_millicores: int = 2000
    cpu_per_gpu_millicores: int = 4000
    # /dev/shm: with one GPU (tensor-parallel 1) vLLM uses shared memory only for the message queue
    # between its API server and engine core; 1 GiB is KServe's llmisvc default.
    shm_bytes: int = 1 * GIB
    # Scratch space the pod writes, each an emptyDir with this sizeLimit: the home directory holds the
    # torch.compile / Triton caches (about 1 GiB measured on vLLM 0.25) and vLLM's config and logs; /tmp holds
    # numba's and outlines' caches and vLLM's IPC sockets.
    home_bytes: int = 2 * GIB
    tmp_bytes: int = 1 * GIB
    # The container's own writable layer (kubelet counts it against ephemeral-storage): a few files with a
    # read-only root filesystem; pip and hub lock files, caches a library writes to its default path, when not.
    writable_layer_bytes: int = 512 * MIB
    startup_probe_period_seconds: int = 10
    startup_safety_factor: float = 2.0

    @classmethod
    def measured(cls, cal: Calibration) -> SizingConstants:
        """The constants with the benchmark's measured figures filled in."""
        return cls(
            weights_bytes=cal.weights_bytes,
            runtime_overhead_bytes=cal.non_torch_bytes + VLLM_CUDA_GRAPH_ALLOWANCE + VLLM_SERVING_GROWTH,
            activation_bytes_per_batched_token=cal.activation_bytes_per_token,
            weight_load_bytes_per_second=min(cal.cold_load_bytes_per_second, NETWORK_VOLUME_BYTES_PER_SECOND),
        )


# vLLM's API-server defaults by GPU memory (facts §3): >= 70 GiB gets 8192 batched tokens; the bundle
# asks for more on a whole large GPU because embedding requests are prefill-only.
LARGE_BATCHED_TOKENS = 16384
SMALL_BATCHED_TOKENS = 8192
MIN_BATCHED_TOKENS = 2048
# Embedding inputs are short: budget one sequence slot per 32 batched tokens, within vLLM's range.
TOKENS_PER_SEQUENCE_SLOT = 32
MAX_NUM_SEQS = 1024
MIN_NUM_SEQS = 16


class SliceTooSmall(ValueError):
    """The model cannot run on the slice; the message carries the numbers and the fix.

    `fitting_max_model_len` is the longest context that fits with the smallest batched-token budget
    (`fitting_batched_tokens`), or 0 when not even that fits.
    """

    def __init__(self, message: str, fitting_max_model_len: int, fitting_batched_tokens: int):
        super().__init__(message)
        self.fitting_max_model_len = fitting_max_model_len
        self.fitting_batched_tokens = fitting_batched_tokens


@dataclass(frozen=True)
class SizingRequest:
    slice: GpuSlice
    max_model_len: int
    download_bytes: int
    weights_on_volume: bool  # True: a pre-populated PVC, nothing is downloaded at start
    download_bytes_per_second: float  # the hub's rate (stack config weights.downloadMBps)
    max_num_batched_tokens: int | None = None  # None: chosen from the slice


@dataclass(frozen=True)
class Sizing:
    request: SizingRequest
    constants: SizingConstants
    # GPU memory, bytes
    usable_bytes: int
    weights_bytes: int
    runtime_overhead_bytes: int
    activation_bytes: int
    kv_required_bytes: int
    kv_available_bytes: int
    # vLLM flags
    gpu_memory_utilization: float
    max_num_batched_tokens: int
    max_num_seqs: int
    kv_cache_tokens: int
    # --kv-cache-memory-bytes, set only where the process sees memory that co-tenant pods also use (time-sliced):
    # vLLM sizes its KV cache from device-wide free-memory deltas during its start-up profiling, so pods that start
    # together on one GPU charge each other's allocations to themselves and fail with a negative KV cache
    # (vllm-project/vllm#55827; measured on an H200: 6 of 7 servers started together failed, 7 of 7 came up with the
    # KV cache fixed in bytes; bench/results/vllm-0.25.0-nvidia-h200.json phases pack-mig7 and pack-mig7-kv).
    kv_cache_memory_bytes: int | None
    # pod resources
    cpu_request_millicores: int
    cpu_limit_millicores: int
    memory_bytes: int  # request = limit; includes /dev/shm, which is memory-backed
    shm_bytes: int
    model_cache_bytes: int  # emptyDir size limit for the weights (0 when they come from a volume)
    home_bytes: int  # emptyDir size limit of the home directory
    tmp_bytes: int  # emptyDir size limit of /tmp
    # request = limit: every disk-backed emptyDir's sizeLimit plus the writable layer, so kubelet evicts a pod for
    # ephemeral-storage only when one emptyDir overflows (its sizeLimit), never while all are inside theirs.
    ephemeral_storage_bytes: int
    # startup probe
    startup_seconds_estimate: int
    startup_budget_seconds: int
    startup_period_seconds: int
    startup_failure_threshold: int

    def explain(self) -> list[str]:
        r, c = self.request, self.constants
        download_s = _download_seconds(r, c)
        return [
            f"slice: {r.slice.description}; budget {_gib(r.slice.memory_budget_bytes)} of "
            f"{_gib(r.slice.visible_memory_bytes)} visible; usable (budget - {_gib(c.outside_utilization_bytes)} vLLM does "
            f"not count) x{1 - c.utilization_headroom:.2f} = {_gib(self.usable_bytes)}",
            f"weights {_gib(self.weights_bytes)} + runtime {_gib(self.runtime_overhead_bytes)} + activations "
            f"{_gib(self.activation_bytes)} ({self.max_num_batched_tokens} batched tokens x "
            f"{c.activation_bytes_per_batched_token} B) + KV needed {_gib(self.kv_required_bytes)} "
            f"(max({r.max_model_len}, {c.kv_batches} x {self.max_num_batched_tokens}) tokens x {SHAPE.kv_bytes_per_token} B)",
            f"--gpu-memory-utilization {self.gpu_memory_utilization} leaves {_gib(self.kv_available_bytes)} for KV "
            f"= {self.kv_cache_tokens} tokens; --max-num-seqs {self.max_num_seqs}"
            + (
                f"; memory shared with co-tenants: --kv-cache-memory-bytes {self.kv_cache_memory_bytes} "
                "(no start-up profiling estimate)"
                if self.kv_cache_memory_bytes
                else ""
            ),
            f"cpu {self.cpu_request_millicores}m request / {self.cpu_limit_millicores}m limit "
            f"(base {c.cpu_base_millicores}m + {c.cpu_per_gpu_millicores}m x GPU share {r.slice.compute_share:.3f})",
            f"memory {_gib(self.memory_bytes)} = host {_gib(c.host_base_bytes)} + weights page cache "
            f"{_gib(self.weights_bytes)} + /dev/shm {_gib(self.shm_bytes)}",
            f"ephemeral-storage {_gib(self.ephemeral_storage_bytes)} = model cache {_gib(self.model_cache_bytes)} "
            f"+ home {_gib(self.home_bytes)} + /tmp {_gib(self.tmp_bytes)} + writable layer {_gib(c.writable_layer_bytes)}",
            f"startup: download {download_s:.0f}s + load {self.weights_bytes / c.weight_load_bytes_per_second:.0f}s "
            f"+ cold start {c.cold_start_seconds:.0f}s = {self.startup_seconds_estimate}s; x{c.startup_safety_factor} "
            f"-> budget {self.startup_budget_seconds}s = {self.startup_failure_threshold} x {self.startup_period_seconds}s",
        ]


def _download_seconds(req: SizingRequest, c: SizingConstants) -> float:
    """Seconds to fetch the weights from the hub at start-up; none when they come from a volume."""
    return 0.0 if req.weights_on_volume else req.download_bytes / req.download_bytes_per_second


def _gib(n: int | float) -> str:
    return f"{n / GIB:.2f} GiB"


def _round_up(n: float, step: int) -> int:
    return int(math.ceil(n / step) * step)


def default_batched_tokens(slice_: GpuSlice) -> int:
    return (
        LARGE_BATCHED_TOKENS
        if slice_.compute_share >= 0.5 and slice_.memory_budget_bytes >= 40 * GIB
        else SMALL_BATCHED_TOKENS
    )


def usable_bytes(slice_: GpuSlice, c: SizingConstants) -> int:
    """The memory vLLM may fill on the slice: its budget, less what vLLM does not count, less the headroom."""
    return int((slice_.memory_budget_bytes - c.outside_utilization_bytes) * (1 - c.utilization_headroom))


def max_model_len_that_fits(slice_: GpuSlice, max_num_batched_tokens: int, c: SizingConstants) -> int:
    """The longest context whose one-request KV cache still fits next to weights and activations."""
    usable = usable_bytes(slice_, c)
    left = (
        usable
        - c.weights_bytes
        - c.runtime_overhead_bytes
        - max_num_batched_tokens * c.activation_bytes_per_batched_token
    )
    return max(0, int(left // SHAPE.kv_bytes_per_token))


def size(req: SizingRequest, c: SizingConstants) -> Sizing:
    """Size one vLLM pod on one GPU slice. Raises SliceTooSmall with the numbers when it cannot fit."""
    s = req.slice
    batched = req.max_num_batched_tokens or default_batched_tokens(s)
    usable = usable_bytes(s, c)
    activations = batched * c.activation_bytes_per_batched_token
    kv_tokens_needed = max(req.max_model_len, c.kv_batches * batched)
    kv_required = kv_tokens_needed * SHAPE.kv_bytes_per_token
    fixed = c.weights_bytes + c.runtime_overhead_bytes + activations
    if fixed + kv_required > usable:
        # What would fit: the smallest batch budget, and the longest context its KV leaves room for
        # (never below the kv_batches x batch floor the sizing keeps).
        fits = max_model_len_that_fits(s, MIN_BATCHED_TOKENS, c)
        fits = (fits // 256) * 256 if fits >= max(512, c.kv_batches * MIN_BATCHED_TOKENS) else 0
        raise SliceTooSmall(
            f"{s.description} ({s.resource_name}) cannot hold the model: usable {_gib(usable)} "
            f"(({_gib(s.memory_budget_bytes)} - {_gib(c.outside_utilization_bytes)} not counted by vLLM) x "
            f"{1 - c.utilization_headroom:.2f}) < weights {_gib(c.weights_bytes)} "
            f"+ runtime {_gib(c.runtime_overhead_bytes)} + activations {_gib(activations)} ({batched} batched tokens) "
            f"+ KV {_gib(kv_required)} ({kv_tokens_needed} tokens) = {_gib(fixed + kv_required)}. "
            + (
                f"It fits with maxNumBatchedTokens {MIN_BATCHED_TOKENS} and maxModelLen <= {fits}, or on a larger slice."
                if fits
                else "Use a larger slice."
            ),
            fits,
            MIN_BATCHED_TOKENS,
        )
    # --gpu-memory-utilization is a fraction of the memory the process sees: on a time-sliced GPU
    # that is the whole GPU, so the fraction is this pod's share, not 0.92.
    utilization = math.floor(round(usable / s.visible_memory_bytes * 100, 6)) / 100
    kv_available = int(utilization * s.visible_memory_bytes) - fixed
    kv_tokens = kv_available // SHAPE.kv_bytes_per_token
    shares_memory = s.visible_memory_bytes > s.memory_budget_bytes
    num_seqs = max(MIN_NUM_SEQS, min(MAX_NUM_SEQS, batched // TOKENS_PER_SEQUENCE_SLOT))

    cpu_request = _round_up(c.cpu_base_millicores + c.cpu_per_gpu_millicores * s.compute_share, 100)
    memory = _round_up(c.host_base_bytes + c.weights_bytes + c.shm_bytes, 256 * MIB)
    model_cache = 0 if req.weights_on_volume else _round_up(req.download_bytes * 1.2, 256 * MIB)
    ephemeral = _round_up(model_cache + c.home_bytes + c.tmp_bytes + c.writable_layer_bytes, 256 * MIB)

    estimate = math.ceil(
        _download_seconds(req, c) + c.weights_bytes / c.weight_load_bytes_per_second + c.cold_start_seconds
    )
    budget = _round_up(estimate * c.startup_safety_factor, c.startup_probe_period_seconds)
    return Sizing(
        request=req,
        constants=c,
        usable_bytes=usable,
        weights_bytes=c.weights_bytes,
        runtime_overhead_bytes=c.runtime_overhead_bytes,
        activation_bytes=activations,
        kv_required_bytes=kv_required,
        kv_available_bytes=kv_available,
        gpu_memory_utilization=utilization,
        max_num_batched_tokens=batched,
        max_num_seqs=num_seqs,
        kv_cache_tokens=kv_tokens,
        kv_cache_memory_bytes=kv_tokens * SHAPE.kv_bytes_per_token if shares_memory else None,
        cpu_request_millicores=cpu_request,
        cpu_limit_millicores=2 * cpu_request,
        memory_bytes=memory,
        shm_bytes=c.shm_bytes,
        model_cache_bytes=model_cache,
        home_bytes=c.home_bytes,
        tmp_bytes=c.tmp_bytes,
        ephemeral_storage_bytes=ephemeral,
        startup_seconds_estimate=estimate,
        startup_budget_seconds=budget,
        startup_period_seconds=c.startup_probe_period_seconds,
        startup_failure_threshold=budget // c.startup_probe_period_seconds,
    )


def sizing_request(variant: VariantConfig, slice_: GpuSlice, weights: WeightsConfig) -> SizingRequest:
    model = served_model(VARIANTS[variant.name], variant.serving_mode, variant.revision)
    return SizingRequest(
        slice=slice_,
        max_model_len=variant.max_model_len,
        download_bytes=model.download_bytes,
        weights_on_volume=weights.source == "pvc",
        download_bytes_per_second=weights.download_mbps * 1e6,
        max_num_batched_tokens=variant.max_num_batched_tokens,
    )


def fit_problems(cfg: StackConfig, c: SizingConstants) -> list[Problem]:
    """The stack's variants that their pool's slice cannot hold, each as a config problem with the numbers and
    a `pulumi config set` that fits (this module owns the rule: it reads the sizing, which reads the config)."""
    problems = []
    for variant in cfg.variants.values():
        pool = cfg.pool_of(variant)
        try:
            size(sizing_request(variant, pool.slice, cfg.weights), c)
        except SliceTooSmall as exc:
            if exc.fitting_max_model_len:
                fix = (
                    f"{set_fix(f'variants.{variant.name}.maxNumBatchedTokens', exc.fitting_batched_tokens)} && "
                    f"{set_fix(f'variants.{variant.name}.maxModelLen', exc.fitting_max_model_len)}   # or a larger slice"
                )
            else:
                larger = [
                    p.name for p in cfg.pools.values() if p.slice.memory_budget_bytes > pool.slice.memory_budget_bytes
                ]
                fix = (
                    set_fix(f"variants.{variant.name}.pool", larger[0])
                    if larger
                    else f"{set_fix(f'variants.{variant.name}.pool', 'gpu-pool')}   # after adding a pool with a larger slice"
                )
            problems.append(Problem(f"variants.{variant.name}.pool", variant.pool, str(exc), fix))
    return problems


def node_fit_problems(cfg: StackConfig, c: SizingConstants) -> list[Problem]:
    """Pools whose named machine type cannot hold the most pods this stack can put on one node (the node's slices, or
    the pool's variants' summed maxReplicas if fewer), each with the pool's largest CPU and memory request, against
    the platform's allocatable less a DaemonSet budget (infra.core.platforms). A pool without `machineType` is not
    checked."""
    problems = []
    for pool in cfg.pools.values():
        variants = [v for v in cfg.variants.values() if v.pool == pool.name]
        if not pool.machine_type or not variants:
            continue
        sizes = [size(sizing_request(v, pool.slice, cfg.weights), c) for v in variants]
        pods = min(pool.gpus_per_node * pool.slice.per_gpu, sum(v.max_replicas for v in variants))
        cpu = pods * max(s.cpu_request_millicores for s in sizes)
        memory = pods * max(s.memory_bytes for s in sizes)

        def fits(machine: MachineType, cpu: int = cpu, memory: int = memory) -> bool:
            alloc_cpu, alloc_memory = pool.platform.allocatable(machine)
            return cpu <= alloc_cpu - DAEMONSET_CPU_MILLICORES and memory <= alloc_memory - DAEMONSET_MEMORY_BYTES

        machine = MACHINE_TYPES[pool.machine_type]
        if fits(machine):
            continue
        alloc_cpu, alloc_memory = pool.platform.allocatable(machine)
        larger = [
            m.name
            for m in sorted(MACHINE_TYPES.values(), key=lambda m: (m.vcpus, m.memory_bytes))
            if m.cloud == machine.cloud and m.gpu == machine.gpu and m.gpus == machine.gpus and fits(m)
        ]
        problems.append(
            Problem(
                f"pools.{pool.name}.machineType",
                pool.machine_type,
                f"up to {pods} pods on one node request {cpu}m CPU and {_gib(memory)} memory, but a {machine.name} node "
                f"has {alloc_cpu}m and {_gib(alloc_memory)} allocatable on {pool.platform.name}, less "
                f"{DAEMONSET_CPU_MILLICORES}m and {_gib(DAEMONSET_MEMORY_BYTES)} for DaemonSets",
                set_fix(f"pools.{pool.name}.machineType", larger[0])
                if larger
                else "lower the pool's variants' maxReplicas (or replicas), or pick a machine type with more CPUs and memory",
            )
        )
    return problems
