"""Measured figures of the model's exact shape on a real GPU (bench/gpu_sizing_benchmark.py).

The benchmark ran on an NVIDIA H100 80GB HBM3 with random bf16 weights of the Qwen3-0.6B shape
(bench/README.md). Its JSON result is committed; this module reads it, so sizing and capacity
planning rest on measurements, and a new run (another GPU, a new vLLM) updates them in one place.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from infra.core.paths import BENCH_RESULT, ENGINE_RESULT


@dataclass(frozen=True)
class ThroughputPoint:
    batch: int
    seq_len: int
    tokens_per_second: float
    sequences_per_second: float
    fraction_of_peak: float


@dataclass(frozen=True)
class Calibration:
    gpu_name: str
    dense_bf16_peak_tflops: float
    weights_bytes: int
    non_torch_bytes: int  # CUDA context, kernels, cuBLAS workspaces: the largest seen during the run
    activation_bytes_per_token: int  # the largest per-token activation peak over the grid
    cold_load_bytes_per_second: float
    throughput: tuple[ThroughputPoint, ...]

    def best_throughput_at(self, mean_input_tokens: int) -> ThroughputPoint:
        """The best measured point at the shortest measured length that covers the mean input."""
        lengths = sorted({p.seq_len for p in self.throughput})
        seq_len = next((n for n in lengths if n >= mean_input_tokens), lengths[-1])
        return max((p for p in self.throughput if p.seq_len == seq_len), key=lambda p: p.tokens_per_second)


@cache
def load(path: Path = BENCH_RESULT) -> Calibration:
    data = json.loads(path.read_text())
    return Calibration(
        gpu_name=data["env"]["gpu_name"],
        dense_bf16_peak_tflops=data["vendor_dense_bf16_peak"]["tflops"],
        weights_bytes=data["weights"]["param_bytes"],
        non_torch_bytes=data["memory"]["non_torch_bytes_max"],
        activation_bytes_per_token=int(data["activation_summary"]["max_bytes_per_token"]),
        cold_load_bytes_per_second=data["load"]["cold_load_GBps"] * 1e9,
        throughput=tuple(
            ThroughputPoint(g["batch"], g["seq_len"], g["tokens_per_s"], g["seqs_per_s"], g["fraction_of_vendor_peak"])
            for g in data["grid"]
        ),
    )


# ---------------------------------------------------------------------------------------------
# The serving engine itself: vLLM on a real GPU (bench/vllm_gpu_benchmark.py, docs/gpu-results.md)
# ---------------------------------------------------------------------------------------------

# The benchmark's input shapes and the mean input length (tokens) of each.
SHAPE_MEAN_TOKENS = {"query": 40, "doc512": 512, "long": 8191}


@dataclass(frozen=True)
class EnginePoint:
    """One measured throughput of the served engine: `servers` vLLM servers time-sharing one GPU, each
    sized for a whole GPU (`whole_gpu`) or for a slice's memory budget."""

    phase: str
    shape: str
    servers: int
    whole_gpu: bool
    tokens_per_second_per_server: float


@dataclass(frozen=True)
class EngineCalibration:
    """vLLM's throughput for the model, measured with the flags the stacks render.

    - `gpu_tokens_per_second[shape]`: the most one GPU delivered, over one or several servers (the GPU's limit);
    - `server_tokens_per_second[shape]`: what one server delivered alone on a whole GPU (one server's limit: its
      API-server process tokenizes and serialises, so short queries stop there long before the GPU does);
    - `slice_server_tokens_per_second[shape]`: one server sized for a slice's memory budget, the median over the
      packing runs (1, 2 and 4 such servers on one GPU): servers that share a host lose front-end throughput
      (short queries: 22.9K tokens/s alone, 17.8-18.5K with others), and the median is the typical figure.
    """

    gpu_name: str
    vllm_version: str
    gpu_tokens_per_second: dict[str, float]
    server_tokens_per_second: dict[str, float]
    slice_server_tokens_per_second: dict[str, float]
    points: tuple[EnginePoint, ...]

    @staticmethod
    def shape_for(mean_input_tokens: int) -> str:
        """The shortest measured shape whose mean input covers `mean_input_tokens` (the longest beyond them)."""
        for shape, tokens in sorted(SHAPE_MEAN_TOKENS.items(), key=lambda kv: kv[1]):
            if tokens >= mean_input_tokens:
                return shape
        return max(SHAPE_MEAN_TOKENS, key=SHAPE_MEAN_TOKENS.__getitem__)


def parse_engine(data: dict) -> EngineCalibration:
    """The committed vLLM result (bench/results/vllm-*.json): the single-server phase with the prod stack's flags
    (`prod`) and the packing phase (`pack-mig`, N servers at the MIG slice's memory budget on one GPU)."""
    single: dict[str, float] = {}
    for point in data["phases"]["prod"]["points"]:
        if not point["errors"] and point["encoding_format"] == "float":
            single[point["shape"]] = max(single.get(point["shape"], 0.0), point["tokens_per_s"])
    points = [EnginePoint("prod", shape, 1, True, rate) for shape, rate in single.items()]
    gpu = dict(single)
    packed: dict[str, list[float]] = {}
    for n, shapes in sorted(data["phases"]["pack-mig"]["points"].items(), key=lambda kv: int(kv[0])):
        for shape, result in shapes.items():
            if shape not in SHAPE_MEAN_TOKENS or result["errors"]:
                continue
            per_server = [s["tokens_per_s"] for s in result["per_server"]]
            points.append(EnginePoint("pack-mig", shape, int(n), False, sum(per_server) / len(per_server)))
            gpu[shape] = max(gpu.get(shape, 0.0), result["aggregate_tokens_per_s"])
            packed.setdefault(shape, []).append(sum(per_server) / len(per_server))
    slice_server = {shape: statistics.median(rates) for shape, rates in packed.items()}
    # A token of a shorter input costs the GPU no more than one of a longer input (attention grows with length), so
    # the GPU's limit at a shorter shape is at least its limit at a longer one; short queries never saturated it.
    ordered = sorted(SHAPE_MEAN_TOKENS, key=SHAPE_MEAN_TOKENS.__getitem__)
    for shorter, longer in zip(ordered, ordered[1:], strict=False):
        if shorter in gpu and longer in gpu:
            gpu[shorter] = max(gpu[shorter], gpu[longer])
    return EngineCalibration(
        gpu_name=data["host"]["gpu"]["name"],
        vllm_version=data["host"]["vllm"],
        gpu_tokens_per_second=gpu,
        server_tokens_per_second=single,
        slice_server_tokens_per_second=slice_server,
        points=tuple(points),
    )


@cache
def load_engine(path: Path = ENGINE_RESULT) -> EngineCalibration:
    return parse_engine(json.loads(path.read_text()))
