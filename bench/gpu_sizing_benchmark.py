#!/usr/bin/env python3
"""GPU memory and throughput benchmark for the exact shape of jina-embeddings-v5-text-small.

The model is jinaai/jina-embeddings-v5-text-small: a Qwen3-0.6B backbone with
last-token pooling and 1024-dim output, served in bf16. The weights are not
downloaded. The backbone is built from its exact config (transformers
``Qwen3Model``, no LM head) with random bf16 weights; memory and compute depend
only on the shape. The script measures:

* weight bytes, and the CUDA context / non-torch overhead;
* peak activation memory of one forward pass over a batch x sequence-length
  grid, and a linear fit of activation bytes per batched token;
* throughput in tokens/s and sequences/s, with last-token pooling and L2
  normalisation inside the timed region, plus achieved TFLOP/s against the
  vendor's dense bf16 peak and a measured matmul ceiling;
* KV-cache bytes per token, by arithmetic and checked with a DynamicCache;
* the time to load the weights from a local safetensors file onto the GPU
  (warm and cold page cache).

All numbers go to one JSON file (sorted keys, indent 2).

This is a manual tool: it needs a CUDA GPU and is never run in CI. ``--tiny``
runs a toy shape on CPU in seconds, for checking the script itself.

    python3 bench/gpu_sizing_benchmark.py --out 'bench/results/{slug}.json'
    python3 bench/gpu_sizing_benchmark.py --tiny --device cpu --out /tmp/tiny.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch
import torch.nn.functional as F

GiB = 1024**3

# Qwen3-0.6B backbone as used by jina-embeddings-v5-text-small
# (/work/shared/research/vllm-jina-facts.md section 2). This script runs without the infra package;
# tests/unit/test_bench_constants.py keeps this shape, the KV arithmetic below and the peaks table
# equal to infra.core.catalog.ModelShape and infra.core.accelerators.GPU_MODELS.
FULL_SHAPE = dict(
    hidden_size=1024,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    intermediate_size=3072,
    vocab_size=151936,
    tie_word_embeddings=True,
    rms_norm_eps=1e-6,
    max_position_embeddings=32768,
    rope_theta=1_000_000.0,
)

# A toy shape to check the script on CPU.
TINY_SHAPE = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    intermediate_size=192,
    vocab_size=1000,
    tie_word_embeddings=True,
    rms_norm_eps=1e-6,
    max_position_embeddings=4096,
    rope_theta=1_000_000.0,
)

# Vendor-stated dense (no sparsity) bf16 tensor-core peaks in TFLOP/s.
# The matching is by substring of torch.cuda.get_device_name(), first match
# wins, so the more specific names come first.
VENDOR_DENSE_BF16_TFLOPS = [
    ("H100 NVL", 835.0, "NVIDIA H100 NVL datasheet (1671 sparse / 2)"),
    ("H100 PCIe", 756.0, "NVIDIA H100 PCIe datasheet (1513 sparse / 2)"),
    ("H100", 989.4, "NVIDIA H100 SXM5 datasheet (1979 sparse / 2)"),
    ("H200", 989.4, "NVIDIA H200 SXM datasheet (1979 sparse / 2)"),
    ("H20", 148.0, "NVIDIA H20 (296 sparse / 2)"),
    ("B200", 2250.0, "NVIDIA B200 (HGX B200: 4.5 PF sparse / 2)"),
    ("A100", 312.0, "NVIDIA A100 datasheet"),
    ("L40S", 362.05, "NVIDIA L40S datasheet (733 sparse / 2)"),
    ("L4", 121.0, "NVIDIA L4 datasheet (242 sparse / 2)"),
    ("A10G", 70.0, "AWS A10G (approx.)"),
    ("A10", 125.0, "NVIDIA A10 datasheet (250 sparse / 2)"),
]

DEFAULT_BATCHES = [1, 8, 32, 128, 256]
DEFAULT_SEQS = [128, 512, 2048, 8192]
# Single long sequences, as vLLM's profiling run sees them when
# max_num_batched_tokens == max_model_len (pooling models run without chunked prefill).
DEFAULT_EXTRA = [(1, 16384), (1, 32768)]
DEFAULT_TOKEN_CAP = 262144


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_config(shape: dict):
    from transformers import Qwen3Config

    kw = dict(shape)
    rope_theta = kw.pop("rope_theta")
    cfg = Qwen3Config(
        **kw,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        use_cache=False,
        attention_bias=False,
        use_sliding_window=False,
    )
    cfg._attn_implementation = "sdpa"
    return cfg


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def cuda_mem(dev: torch.device) -> dict | None:
    """Snapshot of the device memory: torch's allocator and the driver's view."""
    if dev.type != "cuda":
        return None
    sync(dev)
    free, total = torch.cuda.mem_get_info(dev)
    reserved = torch.cuda.memory_reserved(dev)
    return {
        "allocated_bytes": torch.cuda.memory_allocated(dev),
        "reserved_bytes": reserved,
        "driver_used_bytes": total - free,
        "non_torch_bytes": (total - free) - reserved,
        "total_bytes": total,
        "free_bytes": free,
    }


def param_bytes(model: torch.nn.Module) -> dict:
    seen = set()
    params = 0
    pbytes = 0
    embed = 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        params += p.numel()
        pbytes += p.numel() * p.element_size()
        if "embed_tokens" in name:
            embed += p.numel()
    bbytes = sum(b.numel() * b.element_size() for b in model.buffers())
    return {
        "params": params,
        "embedding_params": embed,
        "non_embedding_params": params - embed,
        "param_bytes": pbytes,
        "buffer_bytes": bbytes,
    }


def linear_fit(xs: list[float], ys: list[float]) -> dict:
    n = len(xs)
    if n < 2:
        return {"slope": ys[0] / xs[0] if n else None, "intercept": 0.0, "r2": None, "n": n}
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False))
    slope = sxy / sxx if sxx else 0.0
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=False))
    r2 = 1 - ss_res / ss_tot if ss_tot else None
    return {"slope": slope, "intercept": intercept, "r2": r2, "n": n}


def model_flops(cfg, batch: int, seq: int, non_emb_params: int) -> dict:
    """Forward FLOPs of one batch.

    linear    = 2 * N_nonembed * B * S        (every matmul weight used once per token)
    attn_full = 4 * L * B * S^2 * d_attn      (QK^T and PV, 2 FLOPs per MAC, full square)
    attn_causal = attn_full / 2               (what a causal flash kernel computes)
    with d_attn = num_attention_heads * head_dim = 2048.
    'model' (the figure used for TFLOP/s) = linear + attn_causal.
    """
    d_attn = cfg.num_attention_heads * cfg.head_dim
    L = cfg.num_hidden_layers
    linear = 2.0 * non_emb_params * batch * seq
    attn_full = 4.0 * L * batch * seq * seq * d_attn
    return {
        "linear": linear,
        "attn_full": attn_full,
        "attn_causal": attn_full / 2,
        "model": linear + attn_full / 2,
    }


def pooled_forward(model, ids: torch.Tensor) -> torch.Tensor:
    """Backbone forward, last-token pooling and L2 normalisation (what the server returns)."""
    # A ready mask mapping with None makes SDPA run with is_causal=True and no mask tensor.
    # Eager HF does the same on its own for unpadded input, but under CUDA-graph capture
    # transformers' is_tracing() is true and it would build an explicit BxSxS causal mask
    # (full S^2 attention work plus the mask's memory). vLLM batches unpadded sequences.
    out = model(input_ids=ids, attention_mask={"full_attention": None}, use_cache=False)
    last = out.last_hidden_state[:, -1, :]
    return F.normalize(last.float(), p=2, dim=-1)


def time_iters(fn, dev: torch.device, min_iters: int, max_iters: int, target_s: float) -> list[float]:
    """Run fn repeatedly; return per-iteration seconds (CUDA events on GPU)."""
    times: list[float] = []
    t_start = time.perf_counter()
    while len(times) < max_iters:
        if dev.type == "cuda":
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e) / 1000.0)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if len(times) >= min_iters and time.perf_counter() - t_start >= target_s:
            break
    return times


def matmul_ceiling(dev: torch.device, n: int) -> dict | None:
    """bf16 n x n x n matmul rate on random data: the achievable tensor-core ceiling."""
    if dev.type != "cuda":
        return None
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        _ = a @ b
    sync(dev)
    times = time_iters(lambda: a @ b, dev, 10, 50, 1.0)
    med = statistics.median(times)
    a = b = None  # free the GPU memory before empty_cache()
    torch.cuda.empty_cache()
    return {"n": n, "median_s": med, "tflops": 2.0 * n**3 / med / 1e12, "iters": len(times)}


def measure_kv_cache(model, cfg, dev: torch.device, seq: int) -> dict:
    """Run one sequence with a DynamicCache and count the bytes it holds."""
    from transformers import DynamicCache

    ids = torch.randint(0, cfg.vocab_size, (1, seq), device=dev)
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    before = cuda_mem(dev)
    cache = DynamicCache(config=cfg)
    with torch.inference_mode():
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    sync(dev)
    after = cuda_mem(dev)
    tensor_bytes = 0
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for layer in layers:
            for attr in ("keys", "values"):
                t = getattr(layer, attr, None)
                if isinstance(t, torch.Tensor):
                    tensor_bytes += t.numel() * t.element_size()
    else:  # older transformers
        for t in list(getattr(cache, "key_cache", [])) + list(getattr(cache, "value_cache", [])):
            tensor_bytes += t.numel() * t.element_size()
    lh_bytes = out.last_hidden_state.numel() * out.last_hidden_state.element_size()
    res = {
        "seq_len": seq,
        "cache_tensor_bytes": tensor_bytes,
        "cache_tensor_bytes_per_token": tensor_bytes / seq,
    }
    if before and after:
        delta = after["allocated_bytes"] - before["allocated_bytes"] - lh_bytes
        res["allocated_delta_bytes_minus_output"] = delta
        res["allocated_delta_bytes_per_token"] = delta / seq
    del out, cache, ids
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return res


def graph_point(model, cfg, dev, ids, args) -> dict:
    """Capture the pooled forward in a CUDA graph and time its replays.

    This removes the Python/launch overhead of the HF eager forward (as vLLM's CUDA
    graphs do) and measures the memory the graph's private pool keeps.
    """
    b, s = ids.shape
    res: dict = {}
    static_ids = ids.clone()
    with torch.inference_mode():
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(3):
                pooled_forward(model, static_ids)
        torch.cuda.current_stream(dev).wait_stream(side)
        sync(dev)
        gc.collect()
        torch.cuda.empty_cache()
        before = cuda_mem(dev)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static_out = pooled_forward(model, static_ids)
        sync(dev)
        after = cuda_mem(dev)
        if before is None or after is None:  # cuda_mem is None off CUDA; graph capture needs CUDA anyway
            raise RuntimeError(f"CUDA graphs need a CUDA device, not {dev}")
        res["graph_pool_reserved_bytes"] = after["reserved_bytes"] - before["reserved_bytes"]
        res["graph_non_torch_delta_bytes"] = after["non_torch_bytes"] - before["non_torch_bytes"]
        # Correctness on fresh inputs: replay vs eager.
        fresh = torch.randint(0, cfg.vocab_size, (b, s), device=dev)
        static_ids.copy_(fresh)
        static_out.fill_(float("nan"))
        g.replay()
        ref = pooled_forward(model, fresh)
        sync(dev)
        cos = F.cosine_similarity(static_out, ref, dim=-1)
        res["graph_vs_eager_min_cosine"] = float(cos.min())
        res["graph_output_finite"] = bool(torch.isfinite(static_out).all().item())
        del ref, fresh, cos
        times = time_iters(g.replay, dev, args.min_iters, args.max_iters, args.target_s)
    med = statistics.median(times)
    res.update(
        graph_iters=len(times),
        graph_median_s=med,
        graph_tokens_per_s=b * s / med,
        graph_seqs_per_s=b / med,
    )
    del g, static_out, static_ids
    gc.collect()
    torch.cuda.empty_cache()
    return res


def sdpa_backend_probe(cfg, dev: torch.device) -> dict:
    """Which SDPA kernels accept this model's GQA attention (16 q heads, 8 kv heads, causal, no mask)."""
    if dev.type != "cuda":
        return {}
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(2, cfg.num_attention_heads, 512, cfg.head_dim, device=dev, dtype=torch.bfloat16)
    k = torch.randn(2, cfg.num_key_value_heads, 512, cfg.head_dim, device=dev, dtype=torch.bfloat16)
    res = {}
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "MATH"):
        be = getattr(SDPBackend, name, None)
        if be is None:
            continue
        try:
            with sdpa_kernel([be]):
                F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
            sync(dev)
            res[name] = "ok"
        except Exception as e:
            res[name] = f"refused: {str(e).splitlines()[0][:160]}"
    return res


def fs_type(path: str) -> str:
    try:
        q = subprocess.run(["df", "-T", path], capture_output=True, text=True, timeout=10)
        return " ".join(q.stdout.strip().splitlines()[-1].split()[:2])
    except Exception as e:  # pragma: no cover
        return repr(e)


def drop_file_cache(path: str) -> bool:
    """Evict one file's pages from the OS page cache (posix_fadvise DONTNEED); no root needed."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return True
    except (OSError, AttributeError):
        return False


def measure_load(model, dev: torch.device, workdir: str, repeats: int) -> dict:
    """Save the random state dict to a local safetensors file, then time loading it onto the device."""
    from safetensors.torch import load_file, save_file

    path = os.path.join(workdir, "model.safetensors")
    sd = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    save_file(sd, path)
    save_s = time.perf_counter() - t0
    del sd
    size = os.path.getsize(path)
    dev_str = str(dev) if dev.type != "cuda" else f"cuda:{dev.index or 0}"

    def one_load() -> float:
        sync(dev)
        t = time.perf_counter()
        loaded = load_file(path, device=dev_str)
        sync(dev)
        el = time.perf_counter() - t
        del loaded
        return el

    cold: list[float] = []
    warm: list[float] = []
    cold_ok = True
    for _ in range(repeats):
        cold_ok = drop_file_cache(path) and cold_ok
        cold.append(one_load())
        gc.collect()
    for _ in range(repeats):
        warm.append(one_load())
        gc.collect()
    # Load into the live model too (load_file + load_state_dict copy), warm cache.
    sync(dev)
    t = time.perf_counter()
    loaded = load_file(path, device=dev_str)
    model.load_state_dict(loaded, strict=True)
    sync(dev)
    into_model = time.perf_counter() - t
    del loaded
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    os.remove(path)
    return {
        "file_bytes": size,
        "save_s": save_s,
        "cold_cache_evicted": cold_ok,
        "cold_load_s": cold,
        "cold_load_median_s": statistics.median(cold),
        "cold_load_GBps": size / statistics.median(cold) / 1e9,
        "warm_load_s": warm,
        "warm_load_median_s": statistics.median(warm),
        "warm_load_GBps": size / statistics.median(warm) / 1e9,
        "warm_load_into_model_s": into_model,
        "method": "safetensors.torch.load_file(path, device=<device>) with synchronize, "
        "cold = file pages evicted by posix_fadvise(DONTNEED) before each load",
    }


def env_info(dev: torch.device) -> dict:
    import transformers

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "hostname_cpu_count": os.cpu_count(),
    }
    try:
        import safetensors

        info["safetensors"] = safetensors.__version__
    except Exception:  # pragma: no cover
        pass
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update(
            gpu_name=p.name,
            gpu_total_memory_bytes=p.total_memory,
            gpu_sm_count=p.multi_processor_count,
            gpu_capability=f"{p.major}.{p.minor}",
            cudnn=torch.backends.cudnn.version(),
        )
        try:
            q = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=driver_version,name,memory.total,clocks.max.sm,power.limit",
                    "--format=csv,noheader",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            info["nvidia_smi"] = q.stdout.strip()
            info["driver"] = q.stdout.split(",")[0].strip() if q.returncode == 0 else None
        except Exception as e:  # pragma: no cover
            info["nvidia_smi_error"] = repr(e)
    return info


def vendor_peak(name: str, override: float | None) -> dict:
    if override:
        return {"tflops": override, "source": "--peak-tflops"}
    for key, val, src in VENDOR_DENSE_BF16_TFLOPS:
        if key.lower() in name.lower():
            return {"tflops": val, "source": src}
    return {"tflops": None, "source": "unknown GPU; pass --peak-tflops"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON path; '{slug}' is replaced by the GPU name slug")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="toy shape (CPU smoke test)")
    ap.add_argument("--batches", type=int, nargs="+", default=None)
    ap.add_argument("--seqs", type=int, nargs="+", default=None)
    ap.add_argument("--extra", type=str, nargs="*", default=None, help="extra BxS points, e.g. 1x16384")
    ap.add_argument("--token-cap", type=int, default=None)
    ap.add_argument("--min-iters", type=int, default=5)
    ap.add_argument("--max-iters", type=int, default=30)
    ap.add_argument("--target-s", type=float, default=1.5, help="timed seconds per grid point (at least min-iters)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--kv-seq", type=int, default=4096)
    ap.add_argument("--load-repeats", type=int, default=3)
    ap.add_argument("--load-dir", default=None, help="local directory for the safetensors file (default: a temp dir)")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--matmul-n", type=int, default=8192)
    ap.add_argument("--peak-tflops", type=float, default=None, help="override vendor dense bf16 peak")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--graph-max-tokens",
        type=int,
        default=16384,
        help="also time CUDA-graph replays for grid points up to this many tokens (0: off)",
    )
    args = ap.parse_args(argv)

    t_script = time.perf_counter()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available; use --tiny --device cpu for a smoke test", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)

    shape = TINY_SHAPE if args.tiny else FULL_SHAPE
    if args.tiny:
        batches = args.batches or [1, 4]
        seqs = args.seqs or [16, 64]
        extra = [(1, 256)]
        cap = args.token_cap or 4096
        kv_seq = min(args.kv_seq, 128)
    else:
        batches = args.batches or DEFAULT_BATCHES
        seqs = args.seqs or DEFAULT_SEQS
        extra = list(DEFAULT_EXTRA)
        cap = args.token_cap or DEFAULT_TOKEN_CAP
        kv_seq = args.kv_seq
    if args.extra is not None:
        extra = [(int(b), int(s)) for b, s in (e.lower().split("x") for e in args.extra)]

    result: dict = {
        "schema": "jina-v5-small-gpu-sizing/1",
        "model": "jinaai/jina-embeddings-v5-text-small (Qwen3-0.6B backbone, random bf16 weights, exact shape)",
        "shape": shape,
        "tiny": args.tiny,
        "dtype": "bfloat16",
        "attn_implementation": "sdpa",
        "env": env_info(dev),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    gpu_name = result["env"].get("gpu_name", "cpu")
    slug = slugify(gpu_name)
    result["gpu_slug"] = slug
    log(f"device {dev} ({gpu_name}), torch {torch.__version__}")

    # --- CUDA init, context overhead -----------------------------------------------------
    mem: dict[str, Any] = {}  # a JSON record: snapshots by stage, counters and a note
    if dev.type == "cuda":
        torch.cuda.init()
        torch.empty(1, device=dev)  # create the primary context
        mem["after_cuda_init"] = cuda_mem(dev)

    # --- build the model -------------------------------------------------------------------
    from transformers import Qwen3Model

    cfg = build_config(shape)
    t0 = time.perf_counter()
    prev_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(dev):
        model = Qwen3Model(cfg)
    torch.set_default_dtype(prev_dtype)
    model = model.to(device=dev, dtype=torch.bfloat16).eval()
    # Random (never zero) weights; norms at 1 as in a trained model's scale.
    with torch.no_grad():
        for _name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
            else:
                p.fill_(1.0)
    sync(dev)
    build_s = time.perf_counter() - t0
    assert not hasattr(model, "lm_head"), "pooling model: no LM head expected"
    pinfo = param_bytes(model)
    pinfo["build_random_init_s"] = build_s
    pinfo["param_dtypes"] = sorted({str(p.dtype) for p in model.parameters()})
    result["weights"] = pinfo
    log(
        f"params {pinfo['params'] / 1e6:.2f}M (non-emb {pinfo['non_embedding_params'] / 1e6:.2f}M), "
        f"{pinfo['param_bytes'] / GiB:.4f} GiB"
    )
    if dev.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        mem["after_model_load"] = cuda_mem(dev)
        torch.cuda.reset_peak_memory_stats(dev)

    result["matmul_ceiling"] = matmul_ceiling(dev, args.matmul_n if not args.tiny else 256)
    if result["matmul_ceiling"]:
        log(f"matmul ceiling {result['matmul_ceiling']['tflops']:.1f} TFLOP/s")

    result["sdpa_gqa_backend_probe"] = sdpa_backend_probe(cfg, dev)
    if result["sdpa_gqa_backend_probe"]:
        log(f"sdpa GQA probe: {result['sdpa_gqa_backend_probe']}")

    # --- first (cold) forward --------------------------------------------------------------
    ids = torch.randint(0, cfg.vocab_size, (1, 128), device=dev)
    sync(dev)
    t0 = time.perf_counter()
    with torch.inference_mode():
        pooled_forward(model, ids)
    sync(dev)
    result["first_forward_1x128_s"] = time.perf_counter() - t0
    del ids

    # --- grid -------------------------------------------------------------------------------
    points = [(b, s) for s in seqs for b in batches if b * s <= cap]
    for b, s in extra:
        if (b, s) not in points and b * s <= max(cap, s):
            points.append((b, s))
    skipped = [(b, s) for s in seqs for b in batches if b * s > cap]
    result["grid_token_cap"] = cap
    result["grid_skipped"] = [{"batch": b, "seq_len": s} for b, s in skipped]
    peak = vendor_peak(gpu_name, args.peak_tflops)
    result["vendor_dense_bf16_peak"] = peak

    rows = []
    for b, s in points:
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        ids = torch.randint(0, cfg.vocab_size, (b, s), device=dev)
        row = {"batch": b, "seq_len": s, "tokens": b * s}
        try:
            with torch.inference_mode():
                for _ in range(args.warmup):
                    pooled_forward(model, ids)
                sync(dev)
                if dev.type == "cuda":
                    base = torch.cuda.memory_allocated(dev)
                    torch.cuda.reset_peak_memory_stats(dev)
                    emb = pooled_forward(model, ids)
                    sync(dev)
                    pk = torch.cuda.max_memory_allocated(dev)
                    row["mem_baseline_allocated_bytes"] = base
                    row["mem_peak_allocated_bytes"] = pk
                    row["activation_peak_bytes"] = pk - base
                    row["peak_minus_weights_bytes"] = pk - pinfo["param_bytes"]
                    row["activation_bytes_per_token"] = (pk - base) / (b * s)
                    row["reserved_bytes_after"] = torch.cuda.memory_reserved(dev)
                else:
                    emb = pooled_forward(model, ids)
                assert emb.shape == (b, cfg.hidden_size)
                assert torch.isfinite(emb).all().item(), "non-finite embeddings"
                row["embedding_norm_mean"] = float(emb.norm(dim=-1).mean())
                del emb
                times = time_iters(
                    lambda: pooled_forward(model, ids), dev, args.min_iters, args.max_iters, args.target_s
                )
        except torch.OutOfMemoryError as e:  # pragma: no cover - only on small GPUs
            row["error"] = f"OOM: {e}"[:300]
            rows.append(row)
            log(f"B={b} S={s}: OOM")
            del ids
            continue
        med = statistics.median(times)
        fl = model_flops(cfg, b, s, pinfo["non_embedding_params"])
        row.update(
            iters=len(times),
            median_s=med,
            min_s=min(times),
            max_s=max(times),
            tokens_per_s=b * s / med,
            seqs_per_s=b / med,
            flops_model=fl["model"],
            flops_linear=fl["linear"],
            flops_attn_causal=fl["attn_causal"],
            tflops_achieved=fl["model"] / med / 1e12,
            tflops_achieved_full_attn_count=(fl["linear"] + fl["attn_full"]) / med / 1e12,
        )
        if peak["tflops"]:
            row["fraction_of_vendor_peak"] = row["tflops_achieved"] / peak["tflops"]
        if result["matmul_ceiling"]:
            row["fraction_of_matmul_ceiling"] = row["tflops_achieved"] / result["matmul_ceiling"]["tflops"]
        rows.append(row)
        act = row.get("activation_peak_bytes")
        log(
            f"B={b:4d} S={s:6d} tok={b * s:7d}  {med * 1e3:9.2f} ms  {row['tokens_per_s']:12.0f} tok/s  "
            f"{row['seqs_per_s']:10.1f} seq/s  {row['tflops_achieved']:7.1f} TFLOP/s"
            + (f"  act {act / 2**20:9.1f} MiB ({act / (b * s):8.0f} B/tok)" if act is not None else "")
        )
        del ids

    # CUDA-graph replays, after all eager points (a capture changed later eager timings of
    # launch-bound points in an earlier run, so the two passes are kept apart).
    if dev.type == "cuda" and args.graph_max_tokens > 0:
        for row in rows:
            b, s = row["batch"], row["seq_len"]
            if "error" in row or b * s > args.graph_max_tokens:
                continue
            ids = torch.randint(0, cfg.vocab_size, (b, s), device=dev)
            try:
                row.update(graph_point(model, cfg, dev, ids, args))
                row["graph_tflops_achieved"] = row["flops_model"] / row["graph_median_s"] / 1e12
            except Exception as e:  # graph capture is best effort
                row["graph_error"] = repr(e)[:300]
                gc.collect()
                torch.cuda.empty_cache()
            del ids
            log(
                f"graph B={b:4d} S={s:6d}: {row.get('graph_median_s', float('nan')) * 1e3:9.2f} ms "
                f"{row.get('graph_tokens_per_s', float('nan')):12.0f} tok/s  pool "
                f"{row.get('graph_pool_reserved_bytes', 0) / 2**20:.1f} MiB  min cos {row.get('graph_vs_eager_min_cosine')} "
                f"{row.get('graph_error', '')}"
            )
    result["grid"] = rows

    ok = [r for r in rows if "error" not in r]
    if ok and "activation_peak_bytes" in ok[0]:
        xs = [float(r["tokens"]) for r in ok]
        ys = [float(r["activation_peak_bytes"]) for r in ok]
        fit = linear_fit(xs, ys)
        big = [r for r in ok if r["tokens"] >= 8192]
        result["activation_summary"] = {
            "fit_all": fit,
            "fit_tokens_ge_8192": linear_fit(
                [float(r["tokens"]) for r in big], [float(r["activation_peak_bytes"]) for r in big]
            )
            if len(big) >= 2
            else None,
            "max_bytes_per_token": max(r["activation_bytes_per_token"] for r in ok),
            "max_bytes_per_token_tokens_ge_8192": max((r["activation_bytes_per_token"] for r in big), default=None),
            "note": "activation_peak_bytes = max_memory_allocated during one pooled forward minus "
            "memory_allocated just before it (weights + inputs + persistent workspaces). "
            "bytes/token from the slope of a least-squares fit over the grid; the max is the "
            "conservative figure (small batches carry fixed costs).",
        }
    if ok:
        best = max(ok, key=lambda r: r["tokens_per_s"])
        best_tf = max(ok, key=lambda r: r["tflops_achieved"])
        result["throughput_summary"] = {
            "best_tokens_per_s": {
                k: best[k] for k in ("batch", "seq_len", "tokens_per_s", "seqs_per_s", "tflops_achieved")
            },
            "best_tflops": {k: best_tf[k] for k in ("batch", "seq_len", "tokens_per_s", "tflops_achieved")}
            | ({"fraction_of_vendor_peak": best_tf.get("fraction_of_vendor_peak")}),
            "flops_formula": "model FLOPs = 2*N_nonembed*B*S + 2*L*B*S^2*d_attn (causal half of "
            "4*L*B*S^2*d_attn), N_nonembed = non-embedding params, L = layers, "
            "d_attn = heads*head_dim = 2048; tflops_achieved_full_attn_count uses the full square",
        }

    # --- KV cache per token ------------------------------------------------------------------
    kv_arith = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 2
    kv = {
        "arithmetic_bytes_per_token": kv_arith,
        "arithmetic_formula": "2 (K,V) * layers * kv_heads * head_dim * 2 bytes (bf16)",
        "full_request_bytes": {str(n): kv_arith * n for n in (2048, 8192, 32768)},
    }
    try:
        kv["measured"] = measure_kv_cache(model, cfg, dev, kv_seq)
    except Exception as e:  # pragma: no cover
        kv["measured_error"] = repr(e)
    result["kv_cache"] = kv
    log(f"KV bytes/token arithmetic {kv_arith}, measured {kv.get('measured', {}).get('cache_tensor_bytes_per_token')}")

    if dev.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        mem["after_grid"] = cuda_mem(dev)
        mem["max_allocated_bytes_whole_run"] = torch.cuda.max_memory_allocated(dev)

    # --- weight load from local safetensors -----------------------------------------------------
    if not args.skip_load:
        tmp = None
        if args.load_dir:
            os.makedirs(args.load_dir, exist_ok=True)
            workdir = args.load_dir
        else:
            tmp = tempfile.TemporaryDirectory(prefix="jina-sizing-")
            workdir = tmp.name
        try:
            result["load"] = measure_load(model, dev, workdir, args.load_repeats)
            result["load"]["dir"] = workdir
            result["load"]["dir_filesystem"] = fs_type(workdir)
            log(
                f"load {result['load']['file_bytes'] / 1e9:.3f} GB: cold {result['load']['cold_load_median_s']:.3f} s, "
                f"warm {result['load']['warm_load_median_s']:.3f} s"
            )
        finally:
            if tmp:
                tmp.cleanup()

    if dev.type == "cuda":
        mem["end"] = cuda_mem(dev)
        ctx = {k: v["non_torch_bytes"] for k, v in mem.items() if isinstance(v, dict) and "non_torch_bytes" in v}
        mem["non_torch_bytes_by_stage"] = ctx
        mem["non_torch_bytes_max"] = max(ctx.values())
        mem["note"] = (
            "non_torch = (total - free from cudaMemGetInfo) - torch reserved: CUDA context, "
            "loaded kernel modules (lazy loading grows it as new kernels run), cuBLAS/cuDNN handles "
            "and anything else outside torch's caching allocator"
        )
    result["memory"] = mem or None
    result["script_wall_s"] = time.perf_counter() - t_script

    out = args.out.replace("{slug}", slug)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, sort_keys=True, indent=2, default=str)
        f.write("\n")
    log(f"wrote {out}")

    # Short table last (the device tool returns the tail of the output).
    w = result["weights"]
    print("\n=== summary ===")
    print(f"gpu {gpu_name}  slug {slug}")
    print(f"weights {w['param_bytes'] / GiB:.4f} GiB ({w['params'] / 1e6:.2f}M params)")
    if result.get("memory"):
        m = result["memory"]
        print(
            "non-torch GiB by stage: "
            + ", ".join(f"{k}={v / GiB:.3f}" for k, v in m["non_torch_bytes_by_stage"].items())
        )
    if result.get("activation_summary"):
        a = result["activation_summary"]
        print(
            f"activation B/token: fit slope {a['fit_all']['slope']:.0f} (intercept {a['fit_all']['intercept'] / 2**20:.1f} MiB, "
            f"r2 {a['fit_all']['r2']}), max {a['max_bytes_per_token']:.0f}"
        )
    print(f"KV B/token: {kv_arith} arithmetic, measured {kv.get('measured', {}).get('cache_tensor_bytes_per_token')}")
    if "load" in result:
        L = result["load"]
        print(
            f"load {L['file_bytes'] / 1e9:.3f} GB: cold {L['cold_load_median_s']:.3f}s warm {L['warm_load_median_s']:.3f}s"
        )
    print(
        f"{'B':>5} {'S':>6} {'ms':>9} {'tok/s':>11} {'seq/s':>9} {'TFLOP/s':>8} {'act MiB':>9} {'B/tok':>7}"
        f" {'graph ms':>9} {'graph tok/s':>11} {'pool MiB':>8}"
    )
    for r in rows:
        if "error" in r:
            print(f"{r['batch']:5d} {r['seq_len']:6d} {r['error'][:40]}")
            continue
        act = r.get("activation_peak_bytes")
        print(
            f"{r['batch']:5d} {r['seq_len']:6d} {r['median_s'] * 1e3:9.2f} {r['tokens_per_s']:11.0f} "
            f"{r['seqs_per_s']:9.1f} {r['tflops_achieved']:8.1f} "
            + (f"{act / 2**20:9.1f} {act / r['tokens']:7.0f}" if act is not None else "")
            + (
                f" {r['graph_median_s'] * 1e3:9.2f} {r['graph_tokens_per_s']:11.0f} {r['graph_pool_reserved_bytes'] / 2**20:8.1f}"
                if "graph_median_s" in r
                else (" graph error" if "graph_error" in r else "")
            )
        )
    print(f"script wall {result['script_wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
