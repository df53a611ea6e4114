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
from infra.core.sizing import VLLM_CUDA_GRAPH_ALLOWANCE, VLLM_SERVING_GROWTH
from infra.core.stackfile import load_stack

CAL = calibration.load()
ENGINE = calibration.load_engine()
CONSTANTS = measured_constants()
H100 = GPU_MODELS["nvidia-h100-80gb"]


def test_sizing_constants_are_the_measured_ones():
    raw = json.loads(BENCH_RESULT.read_text())
    assert raw["env"]["gpu_name"].startswith("NVIDIA H100")
    assert CONSTANTS.weights_bytes == raw["weights"]["param_bytes"] == 596_049_920 * 2
    assert CONSTANTS.activation_bytes_per_batched_token == raw["activation_summary"]["max_bytes_per_token"]
    assert (
        CONSTANTS.runtime_overhead_bytes
        == raw["memory"]["non_torch_bytes_max"] + VLLM_CUDA_GRAPH_ALLOWANCE + VLLM_SERVING_GROWTH
    )
    assert (
        raw["kv_cache"]["measured"]["allocated_delta_bytes_per_token"] == 114_688
    )  # the arithmetic KV figure, measured


def test_the_engine_shape_is_the_shortest_measured_one_covering_the_mean():
    assert ENGINE.shape_for(300) == "doc512" and ENGINE.shape_for(30) == "query" and ENGINE.shape_for(100_000) == "long"


def test_slice_throughput_is_the_smaller_of_the_gpus_share_and_one_servers_limit():
    h200 = GPU_MODELS["nvidia-h200"]
    whole = slice_capacity(h200, gpu_slice(h200, "whole"), 256, ENGINE)
    assert whole.replica_tokens_per_second == ENGINE.server_tokens_per_second["doc512"]  # one server's limit
    assert whole.tokens_per_second == pytest.approx(whole.replica_tokens_per_second * TARGET_UTILIZATION)
    mig = slice_capacity(H100, gpu_slice(H100, "mig", mig_profile="1g.10gb"), 256, ENGINE)
    assert mig.limited_by == "GPU" and mig.gpu_limit == pytest.approx(ENGINE.gpu_tokens_per_second["doc512"] / 7)
    queries = slice_capacity(h200, gpu_slice(h200, "whole"), 32, ENGINE)
    assert queries.limited_by == "server"  # short queries stop at the API server, far below the GPU
    l4 = GPU_MODELS["nvidia-l4"]
    quarter = slice_capacity(l4, gpu_slice(l4, "time-sliced", shared_replicas=4), 256, ENGINE)
    assert quarter.gpu_limit == pytest.approx(ENGINE.gpu_tokens_per_second["doc512"] * 121.0 / 989.4 / 4)


def test_the_planner_is_within_20_percent_of_every_measured_throughput(capsys):
    """Issue 18: each measured point (one server on a whole GPU; 1, 2 and 4 slice-sized servers time-sharing one
    GPU) against what the planner predicts for that replica, with the same GPU and share."""
    import dataclasses

    from infra.core.calibration import SHAPE_MEAN_TOKENS
    from infra.core.capacity import measured_gpu

    gpu = measured_gpu(ENGINE)
    whole = gpu_slice(gpu, "whole")
    mig = gpu_slice(H100, "mig", mig_profile="1g.10gb")
    for point in ENGINE.points:
        # Packed servers were each sized for the MIG 1g.10gb budget and time-shared the whole GPU.
        slice_ = (
            whole
            if point.whole_gpu
            else dataclasses.replace(
                whole, compute_share=1 / point.servers, memory_budget_bytes=mig.memory_budget_bytes
            )
        )
        predicted = slice_capacity(gpu, slice_, SHAPE_MEAN_TOKENS[point.shape], ENGINE).replica_tokens_per_second
        error = predicted / point.tokens_per_second_per_server - 1
        print(
            f"{point.phase} {point.shape} x{point.servers}: measured {point.tokens_per_second_per_server:,.0f} "
            f"tokens/s per server, planned {predicted:,.0f} ({error:+.1%})"
        )
        assert abs(error) <= 0.20, f"{point}: planned {predicted:,.0f} ({error:+.1%})"


def test_replicas_and_hpa_bounds_known_numbers():
    capacity = slice_capacity(H100, gpu_slice(H100, "whole"), 256, ENGINE)
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
    plan = plan_capacity(cfg, ENGINE, CONSTANTS, peak_tokens_per_second=50_000, mean_input_tokens=256)
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
