"""Measured figures of the model's exact shape on a real GPU (bench/gpu_sizing_benchmark.py).

The benchmark ran on an NVIDIA H100 80GB HBM3 with random bf16 weights of the Qwen3-0.6B shape
(bench/README.md). Its JSON result is committed; this module reads it, so sizing and capacity
planning rest on measurements, and a new run (another GPU, a new vLLM) updates them in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from infra.core.paths import BENCH_RESULT


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
