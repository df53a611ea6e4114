#!/usr/bin/env python3
"""Which kernels dominate one pooled forward, eager vs CUDA-graph replay (manual GPU tool).

gpu_sizing_benchmark.py found graph replays slower than eager for long sequences
(1x8192: 96 ms vs 59 ms on an H100). This profiles both at one shape and prints the
top kernels by GPU time, to see whether a different attention kernel is chosen
during capture. The cause was transformers building an explicit BxSxS causal mask under
stream capture; the benchmark's pooled_forward now passes a ready mask mapping. Use
--hf-mask to reproduce the old path (HF builds the mask itself).

    python3 bench/graph_attention_probe.py --batch 1 --seq 8192
"""

import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import gpu_sizing_benchmark as gsb  # noqa: E402


def top(prof, n=10):
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if t and e.device_type == torch.autograd.DeviceType.CUDA:
            rows.append((t, e.count, e.key))
    rows.sort(reverse=True)
    tot = sum(r[0] for r in rows)
    for t, c, k in rows[:n]:
        print(f"  {t / 1e3:9.2f} ms  {100 * t / tot:5.1f}%  x{c:<5d} {k[:110]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=8192)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--hf-mask", action="store_true", help="let HF build the mask (old path)")
    a = ap.parse_args()
    dev = torch.device("cuda")
    cfg = gsb.build_config(gsb.FULL_SHAPE)
    from transformers import Qwen3Model

    torch.set_default_dtype(torch.bfloat16)
    with dev:
        model = Qwen3Model(cfg).eval()
    torch.set_default_dtype(torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02) if p.dim() >= 2 else p.fill_(1.0)
    if a.hf_mask:

        def fwd(m, x):
            out = m(input_ids=x, use_cache=False).last_hidden_state[:, -1, :]
            return torch.nn.functional.normalize(out.float(), dim=-1)

        gsb.pooled_forward = fwd
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device=dev)
    with torch.inference_mode():
        for _ in range(2):
            gsb.pooled_forward(model, ids)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as p_eager:
            for _ in range(a.iters):
                gsb.pooled_forward(model, ids)
            torch.cuda.synchronize()
        print(f"eager B={a.batch} S={a.seq}, {a.iters} iters:")
        top(p_eager)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                gsb.pooled_forward(model, ids)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            gsb.pooled_forward(model, ids)
        g.replay()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as p_graph:
            for _ in range(a.iters):
                g.replay()
            torch.cuda.synchronize()
        print(f"graph replay B={a.batch} S={a.seq}, {a.iters} iters:")
        top(p_graph)


if __name__ == "__main__":
    main()
