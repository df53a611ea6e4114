"""Capacity planning arithmetic, and the calibration it rests on."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from infra.core import calibration
from infra.core.accelerators import GPU_MODELS, gpu_slice
from infra.core.capacity import (
    MIN_HA_REPLICAS,
    TARGET_UTILIZATION,
    parse_slice,
    plan_capacity,
    plan_pool,
    plan_variant,
    slice_capacity,
)
from infra.core.paths import BENCH_RESULT, REPO_ROOT
from infra.core.plan import measured_constants
from infra.core.sizing import VLLM_CUDA_GRAPH_ALLOWANCE
from infra.core.stackfile import load_stack

CAL = calibration.load()
CONSTANTS = measured_constants()
H100 = GPU_MODELS["nvidia-h100-80gb"]


def test_sizing_constants_are_the_measured_ones():
    raw = json.loads(BENCH_RESULT.read_text())
    assert raw["env"]["gpu_name"].startswith("NVIDIA H100")
    assert CONSTANTS.weights_bytes == raw["weights"]["param_bytes"] == 596_049_920 * 2
    assert CONSTANTS.activation_bytes_per_batched_token == raw["activation_summary"]["max_bytes_per_token"]
    assert CONSTANTS.runtime_overhead_bytes == raw["memory"]["non_torch_bytes_max"] + VLLM_CUDA_GRAPH_ALLOWANCE
    assert (
        raw["kv_cache"]["measured"]["allocated_delta_bytes_per_token"] == 114_688
    )  # the arithmetic KV figure, measured


def test_best_throughput_uses_the_shortest_measured_length_covering_the_mean():
    point = CAL.best_throughput_at(300)
    assert point.seq_len == 512
    assert point.tokens_per_second == max(p.tokens_per_second for p in CAL.throughput if p.seq_len == 512)
    assert CAL.best_throughput_at(100_000).seq_len == max(p.seq_len for p in CAL.throughput)


def test_slice_throughput_scales_by_peak_and_share():
    whole = slice_capacity(H100, gpu_slice(H100, "whole"), 256, CAL)
    mig = slice_capacity(H100, gpu_slice(H100, "mig", mig_profile="1g.10gb"), 256, CAL)
    assert whole.tokens_per_second == pytest.approx(whole.measured.tokens_per_second * TARGET_UTILIZATION)
    assert mig.tokens_per_second == pytest.approx(whole.tokens_per_second / 7)
    l4 = GPU_MODELS["nvidia-l4"]
    quarter = slice_capacity(l4, gpu_slice(l4, "time-sliced", shared_replicas=4), 256, CAL)
    assert quarter.tokens_per_second == pytest.approx(whole.tokens_per_second * 121.0 / 989.4 / 4)


def test_replicas_and_hpa_bounds_known_numbers():
    capacity = slice_capacity(H100, gpu_slice(H100, "whole"), 256, CAL)
    per = capacity.tokens_per_second
    v = plan_variant("retrieval", "p", capacity, peak_tokens_per_second=10 * per, off_peak_fraction=0.25)
    assert v.peak_replicas == 10 and v.min_replicas == 3  # ceil(2.5)
    small = plan_variant("retrieval", "p", capacity, peak_tokens_per_second=0.1 * per, off_peak_fraction=0.25)
    assert small.min_replicas == MIN_HA_REPLICAS and small.peak_replicas == MIN_HA_REPLICAS + 1  # HPA max > min


def test_pool_gpus_and_nodes_known_numbers():
    mig = gpu_slice(H100, "mig", mig_profile="1g.10gb")
    pool = plan_pool("p", mig, gpus_per_node=8, replicas=15, configured=None)
    assert (pool.slices, pool.gpus, pool.nodes) == (15, math.ceil(15 / 7), 1)


def test_prod_packs_seven_variant_replicas_per_gpu():
    cfg = load_stack("prod")
    plan = plan_capacity(cfg, CAL, CONSTANTS, peak_tokens_per_second=50_000, mean_input_tokens=256)
    (pool,) = plan.pools
    assert pool.gpus == math.ceil(pool.slices / 7)
    assert sum(v.peak_replicas for v in plan.variants) == pool.slices


def test_parse_slice_errors_name_the_allowed_values():
    assert parse_slice("nvidia-h100-80gb:mig:1g.10gb")[1].resource_name == "nvidia.com/mig-1g.10gb"
    for bad in ("h100:whole", "nvidia-h100-80gb:half", "nvidia-l4:mig:1g.10gb", "nvidia-l4:time-sliced"):
        with pytest.raises(ValueError, match="--slice"):
            parse_slice(bad)


def run_capacity(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra", "capacity", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )


README_COMMANDS = [  # docs/sizing.md, "Capacity planning"
    line.split("#")[0].split()[4:]
    for line in (REPO_ROOT / "docs" / "sizing.md").read_text().splitlines()
    if line.startswith(".venv/bin/python -m infra capacity")
]


@pytest.mark.parametrize("args", README_COMMANDS, ids=[" ".join(a) for a in README_COMMANDS])
def test_the_readme_capacity_commands_print_replicas_and_gpus(args):
    proc = run_capacity(*args)
    assert proc.returncode == 0, proc.stderr
    for fragment in ("HPA min", "HPA max", "retrieval", "nvidia.com/", "GPUs", "tokens/s per replica"):
        assert fragment in proc.stdout


def test_the_readme_shows_capacity_commands():
    assert len(README_COMMANDS) >= 2


def test_capacity_refuses_a_slice_the_model_cannot_fit():
    proc = run_capacity("--env", "prod", "--tokens-per-second", "1000", "--slice", "nvidia-l4:time-sliced:8")
    assert proc.returncode == 2 and "cannot hold the model" in proc.stderr


def test_capacity_rejects_non_positive_demand():
    proc = run_capacity("--tokens-per-second", "0")
    assert proc.returncode == 2 and "must be > 0" in proc.stderr
