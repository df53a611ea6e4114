"""Sizing: the formulas on known numbers, and invariants over every stack."""

from __future__ import annotations

import pytest

from infra.core.accelerators import GIB, GPU_MODELS, MIB, gpu_slice
from infra.core.catalog import MERGED_DOWNLOAD_BYTES, SHAPE
from infra.core.plan import measured_constants
from infra.core.sizing import (
    SizingConstants,
    SizingRequest,
    SliceTooSmall,
    size,
    sizing_request,
)
from infra.core.stackfile import load_stack, stack_names

# Round constants so every expected figure below can be checked by hand.
KNOWN = SizingConstants(
    weights_bytes=1 * GIB,
    runtime_overhead_bytes=1 * GIB,
    activation_bytes_per_batched_token=64 * 1024,
    cold_start_seconds=60,
    outside_utilization_bytes=1 * GIB,
    weight_load_bytes_per_second=1 * GIB,
    utilization_headroom=0.08,
    kv_batches=2,
    host_base_bytes=4 * GIB,
    cpu_base_millicores=2000,
    cpu_per_gpu_millicores=4000,
    shm_bytes=1 * GIB,
    home_bytes=2 * GIB,
    tmp_bytes=1 * GIB,
    writable_layer_bytes=512 * MIB,
    startup_probe_period_seconds=10,
    startup_safety_factor=2.0,
)
CONSTANTS = measured_constants()
H100 = GPU_MODELS["nvidia-h100-80gb"]


def test_kv_bytes_per_token_of_qwen3_0_6b():
    # 2 (K and V) x 28 layers x 8 KV heads x 128 dims x 2 bytes (bf16)
    assert SHAPE.kv_bytes_per_token == 2 * 28 * 8 * 128 * 2 == 114_688


def test_whole_h100_known_numbers():
    whole = gpu_slice(H100, "whole")
    s = size(
        SizingRequest(
            whole,
            max_model_len=8192,
            download_bytes=1_000_000_000,
            weights_on_volume=False,
            download_bytes_per_second=100e6,
        ),
        KNOWN,
    )
    assert s.max_num_batched_tokens == 16384  # a whole large GPU gets the large batch budget
    assert s.max_num_seqs == 16384 // 32 == 512
    # (budget - 1 GiB vLLM does not count) x 0.92 of what the process sees: (81559 - 1024) MiB x 0.92 / 81559 MiB
    assert s.gpu_memory_utilization == 0.90
    assert s.activation_bytes == 16384 * 64 * 1024 == 1 * GIB
    assert s.kv_required_bytes == 2 * 16384 * 114_688  # max(8192, 2 x 16384) tokens
    assert s.cpu_request_millicores == 6000 and s.cpu_limit_millicores == 12000
    assert s.memory_bytes == 6 * GIB  # host 4 + weights 1 + shm 1
    # download 10 s (1 GB at 100 MB/s) + load 1 s + cold start 60 s = 71 s, x2 = 142 -> 150 s
    assert s.startup_seconds_estimate == 71
    assert s.startup_budget_seconds == 150 and s.startup_failure_threshold == 15
    assert s.model_cache_bytes == 1_280 * MIB  # 1 GB x 1.2 rounded up to 256 MiB
    assert (
        s.ephemeral_storage_bytes == s.model_cache_bytes + 2 * GIB + 1 * GIB + 512 * MIB
    )  # home, /tmp, writable layer


def test_time_sliced_share_sets_the_utilization_fraction():
    l4 = GPU_MODELS["nvidia-l4"]
    quarter = gpu_slice(l4, "time-sliced", shared_replicas=4)
    s = size(
        SizingRequest(
            quarter, max_model_len=4096, download_bytes=0, weights_on_volume=True, download_bytes_per_second=100e6
        ),
        KNOWN,
    )
    # each pod may use (1/4 of the GPU - 1 GiB) x 0.92: (5758.5 - 1024) MiB x 0.92 / 23034 MiB = 0.189
    assert s.gpu_memory_utilization == 0.18
    assert s.max_num_batched_tokens == 8192
    assert s.cpu_request_millicores == 3000  # 2000 + 4000 x 1/4
    assert s.model_cache_bytes == 0 and s.startup_seconds_estimate == 61  # nothing to download
    # co-tenants share the memory this pod sees: the KV cache is fixed in bytes, no start-up profiling estimate
    assert s.kv_cache_memory_bytes == s.kv_cache_tokens * 114688
    assert "--kv-cache-memory-bytes" in " ".join(s.explain())


def test_mig_slice_uses_its_own_memory():
    mig = gpu_slice(H100, "mig", mig_profile="1g.10gb")
    assert mig.resource_name == "nvidia.com/mig-1g.10gb" and mig.per_gpu == 7
    s = size(
        SizingRequest(
            mig, max_model_len=8192, download_bytes=0, weights_on_volume=True, download_bytes_per_second=100e6
        ),
        KNOWN,
    )
    assert s.gpu_memory_utilization == 0.82  # (10 GB - 1 GiB) x 0.92 / 10 GB = 0.821
    assert s.usable_bytes == int((10e9 - GIB) * 0.92)
    assert s.cpu_request_millicores == 2600  # 2000 + 4000/7 rounded up to 100m
    assert s.kv_cache_memory_bytes is None  # a MIG slice's memory is its own: vLLM's profiling sizes the KV cache


def test_a_slice_the_model_cannot_fit_is_refused_with_the_numbers():
    eighth = gpu_slice(GPU_MODELS["nvidia-l4"], "time-sliced", shared_replicas=8)
    with pytest.raises(SliceTooSmall) as err:
        size(
            SizingRequest(
                eighth, max_model_len=32768, download_bytes=0, weights_on_volume=True, download_bytes_per_second=100e6
            ),
            KNOWN,
        )
    message = str(err.value)
    assert "cannot hold the model" in message and "32768 tokens" in message and "GiB" in message
    assert err.value.fitting_batched_tokens == 2048


def test_refusal_suggests_a_context_that_really_fits():
    sixth = gpu_slice(GPU_MODELS["nvidia-l4"], "time-sliced", shared_replicas=5)  # a fifth of an L4
    with pytest.raises(SliceTooSmall) as err:
        size(
            SizingRequest(
                sixth, max_model_len=16384, download_bytes=0, weights_on_volume=True, download_bytes_per_second=25e6
            ),
            CONSTANTS,
        )
    fits = err.value.fitting_max_model_len
    assert fits > 0
    size(
        SizingRequest(
            sixth,
            max_model_len=fits,
            download_bytes=0,
            weights_on_volume=True,
            download_bytes_per_second=25e6,
            max_num_batched_tokens=2048,
        ),
        CONSTANTS,
    )


@pytest.mark.parametrize("env", stack_names())
def test_every_stack_variant_fits_its_slice_with_headroom(env):
    cfg = load_stack(env)
    for variant in cfg.variants.values():
        pool = cfg.pool_of(variant)
        s = size(sizing_request(variant, pool.slice, cfg.weights), CONSTANTS)
        used = s.weights_bytes + s.runtime_overhead_bytes + s.activation_bytes + s.kv_required_bytes
        assert used <= s.usable_bytes <= pool.slice.memory_budget_bytes * 0.92 + 1, (env, variant.name)
        # what vLLM may take never exceeds this pod's share of a shared GPU
        assert s.gpu_memory_utilization * pool.slice.visible_memory_bytes <= pool.slice.memory_budget_bytes, (
            env,
            variant.name,
        )
        assert s.kv_cache_tokens >= variant.max_model_len, (env, variant.name)
        assert s.startup_budget_seconds >= s.startup_seconds_estimate, (env, variant.name)


def test_download_size_drives_the_startup_budget():
    whole = gpu_slice(H100, "whole")
    fast = size(SizingRequest(whole, 8192, MERGED_DOWNLOAD_BYTES, False, download_bytes_per_second=1e9), CONSTANTS)
    slow = size(SizingRequest(whole, 8192, MERGED_DOWNLOAD_BYTES, False, download_bytes_per_second=10e6), CONSTANTS)
    assert slow.startup_budget_seconds > fast.startup_budget_seconds + 200
