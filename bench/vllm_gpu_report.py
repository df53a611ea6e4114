"""Turn the GPU runs of bench/vllm_gpu_benchmark.py into the committed result and the docs page's figures.

merge RESULT.json... --logs DIR... --out bench/results/vllm-0.25.0-nvidia-h200.json
    Merge the per-call results.json files (a later file's phase replaces an earlier one's), re-parse every server
    log (start-up timeline from the log timestamps, memory and compile figures), write one JSON with sorted keys.
docs [--result ...] [--plot docs/gpu-results.png]
    Print the Markdown tables of docs/gpu-results.md and draw its plot (needs matplotlib: see bench/README.md).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from datetime import datetime
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULT = os.path.join(HERE, "results", "vllm-0.25.0-nvidia-h200.json")
sys.path.insert(0, HERE)

# Log lines that mark the stages of a start (vLLM 0.25.0 wording), in order.
EVENTS = [
    ("api_server_args_parsed", r"non-default args"),
    ("architecture_resolved", r"Resolved architecture"),
    ("engine_core_started", r"Initializing a V1 LLM engine"),
    ("weights_loading", r"Starting to load model"),
    ("weights_loaded", r"Model loading took"),
    ("torch_compile_done", r"torch\.compile t(?:akes|ook)"),
    ("kv_cache_allocated", r"GPU KV cache size"),
    ("cuda_graphs_captured", r"Graph capturing finished"),
    ("engine_ready", r"init engine"),
    ("http_listening", r"Starting vLLM server on"),
]
TS = re.compile(r"(\d\d-\d\d \d\d:\d\d:\d\d)")


def timeline(log: str, ready_s: float | None) -> dict:
    """Seconds from process start for each stage. Log stamps are whole seconds; the process start is taken as
    (the 'listening' stamp - the measured time to /health 200), so 'api_server_args_parsed' includes Python imports."""
    stamps = {}
    for line in open(log, errors="replace"):
        for name, pat in EVENTS:
            if name not in stamps and re.search(pat, line):
                m = TS.search(line)
                if m:
                    stamps[name] = datetime.strptime("2026-" + m.group(1), "%Y-%m-%d %H:%M:%S")
    if "http_listening" not in stamps or ready_s is None:
        return {}
    t0 = stamps["http_listening"].timestamp() - ready_s
    return {k: round(v.timestamp() - t0, 1) for k, v in stamps.items()}


def merge(results: list[str], logdirs: list[str], out: str) -> None:
    from vllm_gpu_benchmark import parse_log

    merged: dict[str, Any] = {"phases": {}}
    for path in results:
        r = json.load(open(path))
        merged.setdefault("host", r.get("host"))
        merged["phases"].update(r["phases"])
    logs = {}
    for d in logdirs:
        for log_path in glob.glob(os.path.join(d, "*.log")):
            logs[os.path.basename(log_path)[:-4]] = log_path
    for _name, ph in merged["phases"].items():
        servers = ([ph["server"]] if "server" in ph else []) + ph.get("servers", [])
        for s in servers:
            log = logs.get(s.get("tag", ""))
            if log:
                s.update(parse_log(log))
                s["timeline_s"] = timeline(log, s.get("ready_s"))
    merged["about"] = (
        "vLLM 0.25.0 on one NVIDIA H200 (143,771 MiB, 16 CPU cores), full-size random-weight checkpoint "
        "of jina-embeddings-v5-text-small (bench/make_checkpoint.py), flags from bench/stack_flags.json. "
        "Made by bench/vllm_gpu_benchmark.py; merged by bench/vllm_gpu_report.py. See bench/README.md."
    )
    with open(out, "w") as f:
        json.dump(merged, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {out}")


# ------------------------------------------------------------------------------------------------------------ docs


def pts(phase: dict, shape: str) -> list[dict]:
    return sorted((p for p in phase.get("points", []) if p.get("shape") == shape), key=lambda p: p["concurrency"])


def best(phase: dict, shape: str) -> dict:
    ok = [p for p in pts(phase, shape) if not p.get("errors")]
    return max(ok, key=lambda p: p["tokens_per_s"]) if ok else {}


def packing_points(ph: dict) -> list[tuple[str, dict]]:
    """pack-mig's N = 1, 2, 4 (started one after another), then N = 7 from pack-mig7-kv (started together, each
    with the KV cache fixed in bytes: the only way 7 concurrent starts come up on one device, see concurrent_starts)."""
    points = dict(ph.get("pack-mig", {}).get("points", {}))
    points.update(ph.get("pack-mig7-kv", {}).get("points", {}))
    return sorted(points.items(), key=lambda x: int(x[0]))


def concurrent_starts(ph: dict) -> None:
    """One row per server of the two 'started together' phases: which came up, and with how much KV cache."""
    print("\n### Seven servers started at the same moment on one GPU\n")
    print("| phase | KV cache flag | servers ready | ready s (slowest) | KV cache tokens per server | failure |")
    print("|---|---|---|---|---|---|")
    for name, flag in (("pack-mig7", "profiled (util only)"), ("pack-mig7-kv", "--kv-cache-memory-bytes")):
        servers = ph.get(name, {}).get("servers", [])
        if not servers:
            continue
        up = [s for s in servers if s.get("ready")]
        tokens = sorted({int(s["kv_cache_tokens"]) for s in up if s.get("kv_cache_tokens")})
        failure = ""
        if len(up) < len(servers):
            failure = "Available KV cache memory < 0: No available memory for the cache blocks"
        print(
            f"| {name} | {flag} | {len(up)} of {len(servers)} | {max((s.get('ready_s') or 0) for s in up) if up else '–'} "
            f"| {', '.join(f'{t:,}' for t in tokens) or '–'} | {failure or 'none'} |"
        )


def gib(mib) -> str:
    return f"{mib / 1024:.2f}" if mib else "–"


def docs(result: str, plot: str | None) -> None:
    r = json.load(open(result))
    flags = json.load(open(os.path.join(HERE, "stack_flags.json")))
    ph = r["phases"]
    total_mib = r["host"]["gpu"]["total_mib"]
    print("### Start-up and memory, one server per row\n")
    print(
        "| server | flags | GPU budget GiB | ready s | Python + process start s | torch.compile s | CUDA graphs s / GiB "
        "| weights GiB | KV cache GiB (tokens) | process GiB at ready / after load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = [
        (k, ph[k]["server"], ph[k]) for k in ("prod", "recipe", "prod-base", "prod-amd") if "server" in ph.get(k, {})
    ]
    rows += [(s["tag"], s, None) for s in ph.get("pack-mig", {}).get("servers", [])]
    for name, s, whole in rows:
        args = s["args"]
        util = next((float(a.split("=")[1]) for a in args if a.startswith("--gpu-memory-utilization=")), 0.92)
        mml = next((a.split("=")[1] for a in args if a.startswith("--max-model-len=")), "32768 (default)")
        tl = s.get("timeline_s", {})
        pre = tl.get("engine_core_started")
        mem = (whole or {}).get("gpu_memory_after_ready", s.get("gpu_memory_after_ready", {}))
        after = (whole or {}).get("gpu_memory_after_load", {})
        if whole is None:  # a packed server: its size once it has served traffic, from the last packing point
            last = max(ph["pack-mig"]["points"].items(), key=lambda x: int(x[0]))[1]["gpu_memory"]
            after = {"apps_mib": [max(last.get("apps_mib") or [0])]}
        apps_ready = mem.get("apps_mib") or []
        apps_after = after.get("apps_mib") or []
        own_ready = apps_ready[-1] if whole is None and apps_ready else (apps_ready[0] if apps_ready else None)
        print(
            f"| {name} | util {util:g}, max-model-len {mml} | {util * total_mib / 1024:.2f} | {s.get('ready_s')} "
            f"| {pre if pre is not None else '–'} | {s.get('compilation_in_init_s', '–')} "
            f"| {s.get('cuda_graph_s', '–')} / {s.get('cuda_graph_gib', '–')} | {s.get('weights_gib', '–')} "
            f"| {s.get('kv_cache_gib', '–')} ({int(s.get('kv_cache_tokens', 0)):,}) "
            f"| {gib(own_ready)} / {gib(apps_after[0] if apps_after else None)} |"
        )
    print("\n### Throughput, one server on the whole GPU\n")
    print("| server | shape | clients | tokens/s | inputs/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for k in ("prod", "recipe", "prod-base", "prod-amd"):
        for p in ph.get(k, {}).get("points", []):
            print(
                f"| {k} | {p['shape']} ({p['batch']} × {p['len_lo']}–{p['len_hi']} tok) | {p.get('concurrency')} "
                f"| {p['tokens_per_s']:,.0f} | {p['inputs_per_s']:,.1f} | {p['p50_ms']} | {p['p99_ms']} "
                f"| {p['errors']} |"
            )
    pm = ph.get("pack-mig", {})
    print(
        f"\n### Packing: N servers on one unpartitioned GPU, each at util {pm.get('util', 0):.4f} ({pm.get('slice')})\n"
    )
    print(
        "| N | shape | aggregate tokens/s | × one server | per-server tokens/s | worst p99 ms | GPU used GiB | errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    one: dict[str, float] = {}
    for n, pt in packing_points(ph):
        for shape in ("doc512", "query"):
            if shape not in pt:
                continue
            agg = pt[shape]["aggregate_tokens_per_s"]
            one.setdefault(shape, agg)
            per = ", ".join(f"{p.get('tokens_per_s', 0):,.0f}" for p in pt[shape]["per_server"])
            print(
                f"| {n} | {shape} | {agg:,.0f} | {agg / one[shape]:.2f} | {per} | {pt[shape]['max_p99_ms']} "
                f"| {gib(pt['gpu_memory'].get('used_mib'))} | {pt[shape]['errors']} |"
            )
    concurrent_starts(ph)
    print("\n### What the plan renders today (bench/stack_flags.json)\n")
    print("| stack | slice | util | predicted KV GiB budget | predicted KV tokens | startup probe window s |")
    print("|---|---|---|---|---|---|")
    for env in ("dev", "staging", "prod", "prod-amd"):
        v = flags[env]["retrieval"]
        util = next(a.split("=")[1] for a in v["vllm_args"] if a.startswith("--gpu-memory-utilization="))
        kv_line = next((x for x in v["sizing"] if "leaves" in x), "")
        m = re.search(r"leaves ([\d.]+) GiB", kv_line)
        print(
            f"| {env} | {v['gpu']['slice']} | {util} | {m.group(1) if m else '–'} | {v['kv_cache_tokens_predicted']:,} "
            f"| {v['startup_probe_window_s']} |"
        )
    if plot:
        draw(r, plot)


def draw(r: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ph = r["phases"]
    fig, ax = plt.subplots(1, 3, figsize=(15, 5.0))
    # 1. throughput against clients, per shape, bundle (prod) vs recipe
    for k, style in (("prod", "-o"), ("recipe", "--s")):
        for shape, color in (("doc512", "C0"), ("long", "C1"), ("query", "C2")):
            p = [x for x in pts(ph.get(k, {}), shape)]
            if p:
                toks = p[0]["len_hi"] if shape == "long" else ""
                ax[0].plot(
                    [x["concurrency"] for x in p],
                    [x["tokens_per_s"] / 1e3 for x in p],
                    style,
                    color=color,
                    label=f"{k}: {shape} {toks}".rstrip(),
                )
    ax[0].axhline(195.534, color="grey", lw=0.8, ls=":")
    ax[0].text(1, 200, "HF eager calibration (H100, 256×512)", fontsize=7, color="grey")
    ax[0].set(
        xscale="log",
        xlabel="concurrent requests",
        ylabel="thousand tokens/s",
        title="One server, whole H200 (util 0.92)",
    )
    ax[0].legend(fontsize=7)
    # 2. packing
    pm = dict(packing_points(ph))
    ns = sorted(int(n) for n in pm)
    for shape, color in (("doc512", "C0"), ("query", "C2")):
        ys = [pm[str(n)][shape]["aggregate_tokens_per_s"] / 1e3 for n in ns if shape in pm[str(n)]]
        ax[1].plot(ns[: len(ys)], ys, "-o", color=color, label=f"{shape}: aggregate")
    ax[1].set(
        xlabel="servers on one GPU (MIG-1g.10gb memory budget each)",
        ylabel="thousand tokens/s",
        title="Packing, time-shared H200",
        xticks=ns,
    )
    ax[1].legend(fontsize=7)
    # 3. start-up breakdown
    names, parts = [], []
    rows = [(k, ph[k]["server"]) for k in ("prod", "recipe", "prod-base", "prod-amd") if "server" in ph.get(k, {})]
    rows += [(s["tag"], s) for s in ph.get("pack-mig", {}).get("servers", [])]
    for name, s in rows:
        tl = s.get("timeline_s") or {}
        if not tl:
            continue
        eng = tl.get("engine_core_started", 0)
        comp = s.get("compilation_in_init_s", 0) or 0
        graphs = s.get("cuda_graph_s", 0) or 0
        rest = max(0, (s.get("ready_s") or 0) - eng - comp - graphs)
        names.append(name)
        parts.append((eng, comp, graphs, rest))
    left = [0] * len(parts)
    for i, (label, color) in enumerate(
        (
            ("Python imports, API server, config", "0.6"),
            ("torch.compile", "C3"),
            ("CUDA graphs", "C4"),
            ("weights, profiling, rest", "C5"),
        )
    ):
        vals = [p[i] for p in parts]
        ax[2].barh(names, vals, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, vals, strict=False)]
    for x, label in ((90, "sizing's cold start 90 s"), (190, "prod startup probe 190 s")):
        ax[2].axvline(x, color="grey", ls=":", lw=0.8)
        ax[2].text(x + 1, len(names) - 0.6, label, fontsize=7, color="grey")
    ax[2].set(xlabel="seconds to /health 200 (prod: first start on a fresh host)", title="Start-up", xlim=(0, 230))
    ax[2].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    fig.suptitle(
        "vLLM 0.25.0, jina-embeddings-v5-text-small shape, NVIDIA H200 (bench/results/vllm-0.25.0-nvidia-h200.json)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("merge")
    p.add_argument("results", nargs="+")
    p.add_argument("--logs", nargs="+", default=[])
    p.add_argument("--out", default=RESULT)
    p = sub.add_parser("docs")
    p.add_argument("--result", default=RESULT)
    p.add_argument("--plot", default=os.path.join(REPO, "docs", "gpu-results.png"))
    a = ap.parse_args()
    if a.cmd == "merge":
        merge(a.results, a.logs, a.out)
    else:
        docs(a.result, a.plot)


if __name__ == "__main__":
    main()
