"""The real engine on a real GPU: vLLM start-up, memory, throughput and packing for jina-embeddings-v5-text-small.

It serves a full-size random-weight checkpoint (bench/make_checkpoint.py) with the exact `vllm serve` flags that the
shipped stacks render (bench/stack_flags.json, written by `render-flags` from `python -m infra plan --json`), and
measures each server from an OpenAI-compatible load generator with bounded request counts. See bench/README.md.

Subcommands:
  render-flags               (here, with the bundle's .venv) write bench/stack_flags.json from the rendered plans
  install --parts DIR        (GPU host) reassemble vLLM + wheels from DIR/part.*, install what the image lacks
  checkpoint                 (GPU host) make the random-weight checkpoints (bench/make_checkpoint.py)
  run --phases a,b --deadline S   (GPU host) run measurement phases; results accumulate in --work/results.json
  load URL ...               (internal) one load point against one server; prints one JSON line
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
from infra.core.catalog import SHAPE  # noqa: E402  (pure dataclasses: runs on the GPU host too)

FLAGS_FILE = os.path.join(HERE, "stack_flags.json")
ENVS = ("dev", "staging", "prod", "prod-amd")
WORDS = [f"w{n}" for n in range(3000)]  # the word-level tokenizer of make_checkpoint.py: 1 word = 1 token
GIB = 2**30

# ---------------------------------------------------------------------------------------------------------- flags


def render_flags() -> None:
    """Record, per stack and variant, the vllm args and the plan's own predictions, from `infra plan --json`."""
    py = os.path.join(REPO, ".venv", "bin", "python")
    out: dict[str, Any] = {}
    for env in ENVS:
        plan = json.loads(
            subprocess.run(
                [py, "-m", "infra", "plan", "--env", env, "--json"],
                cwd=REPO,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        out[env] = {}
        for name, v in plan["variants"].items():
            out[env][name] = {
                "vllm_args": v["vllm_args"],
                "gpu": v["gpu"],
                "serving_mode": v.get("serving_mode"),
                "kv_cache_tokens_predicted": v.get("kv_cache_tokens"),
                "gpu_memory_usable_gib_predicted": v.get("gpu_memory_usable_gib"),
                "startup_probe_window_s": v["probes"]["startup"]["window_s"],
                "sizing": v.get("sizing"),
            }
    with open(FLAGS_FILE, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {FLAGS_FILE}")


def served_args(args: list[str], model_dir: str, port: int, util: float | None = None) -> list[str]:
    """The rendered args with the model pointed at the local checkpoint and the server on 127.0.0.1:port.

    Everything else is kept as rendered. --revision/--tokenizer-revision are dropped (a local directory has none);
    --gpu-memory-utilization is replaced only when `util` is given (slice emulation on an unpartitioned GPU)."""
    out = [model_dir]
    for a in args[1:]:
        k = a.split("=", 1)[0]
        if k in ("--revision", "--tokenizer-revision", "--host", "--port"):
            continue
        if k == "--gpu-memory-utilization" and util is not None:
            a = f"--gpu-memory-utilization={util:.4f}"
        out.append(a)
    return out + ["--host=127.0.0.1", f"--port={port}"]


def recipe_args(model_dir: str, served: str, port: int) -> list[str]:
    """The upstream recipe's command (vllm-project/recipes models/jinaai/jina-embeddings-v5-text-small.yaml):
    `vllm serve <pre-merged repo> --runner pooling --trust-remote-code`; every other flag at vLLM's default."""
    return [
        model_dir,
        f"--served-model-name={served}",
        "--runner=pooling",
        "--trust-remote-code",
        "--host=127.0.0.1",
        f"--port={port}",
    ]


# -------------------------------------------------------------------------------------------------------- install


def install(parts: str, site: str) -> None:
    """parts/part.* -> bundle.tar (vllm.tar.xz + whl/*.whl) -> site/; only wheels of distributions the image lacks."""
    t0 = time.time()
    os.makedirs(site, exist_ok=True)
    stage = "/tmp/vbundle"
    os.makedirs(stage, exist_ok=True)
    sh(f"cat {parts}/part.* | tar -C {stage} -xf - && tar -C {site} -xJf {stage}/vllm.tar.xz")
    from importlib import metadata

    def norm(n):
        return re.sub(r"[-_.]+", "-", n).lower()

    have = {norm(d.metadata["Name"]) for d in metadata.distributions() if d.metadata["Name"]}
    wheels = sorted(glob.glob(f"{stage}/whl/*.whl"))
    todo = [w for w in wheels if norm(os.path.basename(w).split("-")[0]) not in have]
    sh(
        f"{sys.executable} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target {site} "
        + " ".join(todo)
    )
    print(
        json.dumps(
            {
                "step": "install",
                "wheels_carried": len(wheels),
                "wheels_installed": len(todo),
                "seconds": round(time.time() - t0, 1),
            }
        ),
        flush=True,
    )


def sh(cmd: str) -> None:
    r = subprocess.run(cmd, shell=True)
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): {cmd}")


# ----------------------------------------------------------------------------------------------------------- load


def make_text(n: int) -> str:
    return " ".join(random.choices(WORDS, k=n))


async def load_point(
    url: str,
    model: str,
    batch: int,
    lo: int,
    hi: int,
    concurrency: int,
    requests: int,
    max_s: float,
    timeout_s: float,
    encoding: str,
) -> dict:
    """`requests` requests (stop submitting after max_s), `concurrency` in flight, each of `batch` inputs whose
    lengths are uniform in [lo, hi] tokens. Every input is random, so no prefix-cache hits."""
    import aiohttp

    try:
        import orjson

        loads = orjson.loads
    except ImportError:
        loads = json.loads
    lat, tokens, inputs, errors, err_text = [], 0, 0, 0, []
    next_req = 0
    t_stop = time.perf_counter() + max_s

    async def worker(s):
        nonlocal next_req, tokens, inputs, errors
        while next_req < requests and time.perf_counter() < t_stop:
            next_req += 1
            body = {
                "model": model,
                "input": [make_text(random.randint(lo, hi)) for _ in range(batch)],
                "encoding_format": encoding,
            }
            t = time.perf_counter()
            try:
                async with s.post(
                    url + "/v1/embeddings", json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)
                ) as r:
                    raw = await r.read()
                    if r.status != 200:
                        errors += 1
                        err_text.append(f"{r.status} {raw[:200]!r}")
                        continue
                    out = loads(raw)
            except Exception as e:  # timeouts and resets count as errors; the point goes on
                errors += 1
                err_text.append(repr(e)[:200])
                continue
            lat.append(time.perf_counter() - t)
            tokens += out["usage"]["prompt_tokens"]
            inputs += len(out["data"])

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        dt = time.perf_counter() - t0
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3, 1) if lat else None

    return {
        "batch": batch,
        "len_lo": lo,
        "len_hi": hi,
        "concurrency": concurrency,
        "requests_ok": len(lat),
        "requests_planned": requests,
        "errors": errors,
        "error_samples": err_text[:3],
        "seconds": round(dt, 2),
        "tokens": tokens,
        "tokens_per_s": round(tokens / dt, 1),
        "inputs_per_s": round(inputs / dt, 1),
        "requests_per_s": round(len(lat) / dt, 2),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "encoding_format": encoding,
    }


@dataclass
class LoadProc:
    """One running load-point process and the wall-clock time by which collect() stops waiting for it."""

    p: subprocess.Popen[str]
    deadline: float


def run_load(url: str, model: str, spec: dict, timeout: float) -> LoadProc:
    """Start one load point in its own process (one client process per server: the client is not the bottleneck)."""
    cmd = [sys.executable, os.path.abspath(__file__), "load", url, model, json.dumps(spec)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return LoadProc(p, time.time() + timeout)


def collect(procs: list[LoadProc]) -> list[dict]:
    res = []
    for lp in procs:
        p = lp.p
        try:
            out, _ = p.communicate(timeout=max(1, lp.deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            res.append({"error": "client timed out", "tail": (out or "")[-300:]})
            continue
        lines = [ln for ln in (out or "").splitlines() if ln.startswith("{")]
        res.append(json.loads(lines[-1]) if lines else {"error": "no result", "tail": (out or "")[-300:]})
    return res


# ---------------------------------------------------------------------------------------------------------- serve

LOG_PATTERNS = {
    "weights_gib": r"Model loading took ([\d.]+) GiB",
    "weights_load_s": r"Model loading took [\d.]+ GiB(?: memory)? and ([\d.]+) s",
    "dynamo_s": r"Dynamo bytecode transform time: ([\d.]+) s",
    "compile_graph_s": r"Compiling a graph for [^\n]*? takes ([\d.]+) s",
    "compile_cache_load_s": r"[Ll]oad(?:ing|ed)? [^\n]*?compiled graph[^\n]*? took ([\d.]+) s",
    "torch_compile_total_s": r"torch\.compile t(?:akes|ook) ([\d.]+) s in total",
    "compilation_in_init_s": r"init engine \([^)]*\) took [\d.]+ s \(compilation: ([\d.]+) s\)",
    "cuda_graph_s": r"Graph capturing finished in ([\d.]+) sec",
    "cuda_graph_gib": r"Graph capturing finished in [\d.]+ secs?, took ([\-\d.]+) GiB",
    "kv_cache_gib": r"Available KV cache memory: ([\d.]+) GiB",
    "kv_cache_tokens": r"GPU KV cache size: ([\d,]+) tokens",
    "init_engine_s": r"init engine \([^)]*\) took ([\d.]+) s",
    "adapter_tensors": r"Loaded (\d+) adapter tensors",
    "attention_backend": r"Using ([A-Za-z0-9_]+) (?:attention )?backend",
    "cudagraph_mode": r"cudagraph_mode[=:] ?([A-Za-z_.]+)",
}


def parse_log(path: str) -> dict:
    text = open(path, errors="replace").read()
    out: dict[str, Any] = {}
    for k, pat in LOG_PATTERNS.items():
        m = re.findall(pat, text)
        if not m:
            continue
        v = m[-1]
        try:
            out[k] = float(v.replace(",", ""))
        except ValueError:
            out[k] = v
    keep = re.compile(
        r"Model loading took|torch\.compile|Compiling a graph|Dynamo|[Gg]raph captur|KV cache|"
        r"init engine|adapter|Maximum concurrency|[Bb]ackend|cudagraph|orjson|WARNING|ERROR|Error"
    )
    out["log_lines"] = [ln[:300] for ln in text.splitlines() if keep.search(ln)][:60]
    return out


class Server:
    def __init__(self, tag: str, args: list[str], port: int, logdir: str, env: dict, compile_cache_warm: bool = False):
        self.tag, self.port, self.args = tag, port, args
        self.compile_cache_warm = compile_cache_warm  # whether vLLM's torch.compile cache had entries at start
        self.log = os.path.join(logdir, f"{tag}.log")
        self.url = f"http://127.0.0.1:{port}"
        self.model = next(a.split("=", 1)[1] for a in args if a.startswith("--served-model-name="))
        self.t0 = time.time()
        self.f = open(self.log, "w")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", *args],
            stdout=self.f,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.ready_s: float | None = None

    def wait_ready(self, limit_s: float) -> bool:
        while time.time() - self.t0 < limit_s:
            if self.p.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        self.ready_s = round(time.time() - self.t0, 1)
                        return True
            except Exception:
                pass
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=15)
            except Exception:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except Exception:
                    pass
                self.p.wait(timeout=10)
        self.f.close()

    def record(self) -> dict:
        r = {"tag": self.tag, "ready_s": self.ready_s, "args": self.args, "exit_code": self.p.poll()}
        r.update(parse_log(self.log))
        return r


def gpu_memory() -> dict:
    def q(args):
        try:
            return subprocess.run(
                ["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20
            ).stdout.strip()
        except Exception as e:
            return repr(e)

    used_total = q(["--query-gpu=memory.used,memory.total,name"]).splitlines()
    apps = q(["--query-compute-apps=pid,used_memory"]).splitlines()
    out = {"raw": used_total, "apps_mib": []}
    try:
        u, t, name = [x.strip() for x in used_total[0].split(",")]
        out.update(used_mib=int(u), total_mib=int(t), name=name)
        out["apps_mib"] = [int(a.split(",")[1]) for a in apps if "," in a]
    except Exception:
        pass
    return out


# ------------------------------------------------------------------------------------------------------ the phases

QUERY = (1, 16, 64)  # batch, token lengths: one short query per request
DOC = (32, 512, 512)  # 32 documents of 512 tokens per request


def sweep(srv: Server, max_len: int, timeout: float, level: str) -> list[dict]:
    """Throughput points against one server. `level` full|short. Every request is bounded by `timeout`."""
    pts = []
    long = (1, max_len - 1, max_len - 1)  # never exactly max_model_len (vllm-project/vllm#55427)
    grid = [
        (QUERY, 1, 200),
        (QUERY, 32, 3000),
        (QUERY, 128, 6000),
        (DOC, 1, 20),
        (DOC, 4, 60),
        (DOC, 16, 160),
        (long, 1, 20),
        (long, 4, 60),
        (long, 16, 200),
    ]
    if level == "short":
        grid = [(QUERY, 128, 4000), (DOC, 16, 128), (long, 16, 128)]
    if level == "long":  # long inputs first at low concurrency: where chunked prefill of one input happens
        grid = [(long, 1, 20), (long, 4, 60), (long, 16, 128), (DOC, 16, 128)]
    # warm-up: one of each shape, not recorded
    collect(
        [
            run_load(
                srv.url,
                srv.model,
                dict(batch=b, lo=lo, hi=hi, concurrency=2, requests=2, max_s=20, timeout_s=timeout, encoding="float"),
                60,
            )
            for (b, lo, hi) in (QUERY, DOC, long)
        ]
    )
    for (b, lo, hi), c, n in grid:
        spec = dict(batch=b, lo=lo, hi=hi, concurrency=c, requests=n, max_s=15, timeout_s=timeout, encoding="float")
        r = collect([run_load(srv.url, srv.model, spec, 15 + timeout + 30)])[0]
        r["shape"] = {QUERY: "query", DOC: "doc512"}.get((b, lo, hi), "long")
        pts.append(r)
        print(
            json.dumps(
                {
                    k: r.get(k)
                    for k in ("shape", "concurrency", "tokens_per_s", "inputs_per_s", "p50_ms", "p99_ms", "errors")
                }
            ),
            flush=True,
        )
    if level == "full":  # the same short queries with base64 embeddings in the response
        spec = dict(
            batch=1, lo=16, hi=64, concurrency=128, requests=6000, max_s=15, timeout_s=timeout, encoding="base64"
        )
        r = collect([run_load(srv.url, srv.model, spec, 15 + timeout + 30)])[0]
        r["shape"] = "query-base64"
        pts.append(r)
        print(json.dumps({k: r.get(k) for k in ("shape", "tokens_per_s", "inputs_per_s", "p99_ms")}), flush=True)
    return pts


def flag(args: list[str], name: str, default=None):
    for a in args:
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


class Runner:
    def __init__(self, work: str, deadline: float, env: dict):
        self.work, self.deadline, self.env = work, deadline, env
        self.logdir = os.path.join(work, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.path = os.path.join(work, "results.json")
        self.res = json.load(open(self.path)) if os.path.exists(self.path) else {"phases": {}}
        self.flags = json.load(open(FLAGS_FILE))
        self.ckpt = os.path.join(work, "ckpt")
        self.port = 18000 + 10 * len(self.res["phases"])

    def left(self) -> float:
        return self.deadline - time.time()

    def save(self) -> None:
        with open(self.path, "w") as f:
            json.dump(self.res, f, indent=1, sort_keys=True)

    def start(self, tag, build) -> Server:
        """build(port) -> the serve args."""
        self.port += 1
        args = build(self.port)
        cache = os.path.expanduser("~/.cache/vllm/torch_compile_cache")
        warm = os.path.isdir(cache) and any(os.scandir(cache))
        return Server(tag, args, self.port, self.logdir, self.env, compile_cache_warm=warm)

    def single(self, name: str, tag: str, args, level: str, need_s: float) -> None:
        if self.left() < need_s:
            self.res["phases"][name] = {"skipped": f"{self.left():.0f} s left, needs {need_s:.0f}"}
            return
        srv = self.start(tag, args)
        args = srv.args
        ok = srv.wait_ready(min(300, self.left() - 30))
        rec: dict[str, Any] = {
            "server": srv.record(),
            "compile_cache_warm_at_start": srv.compile_cache_warm,
            "ready": ok,
        }
        rec["gpu_memory_after_ready"] = gpu_memory()
        max_len = int(flag(args, "--max-model-len", "32768"))
        if ok:
            rec["points"] = sweep(srv, max_len, 120, level)
            if name == "recipe" and max_len > 8192 and self.left() > 60:
                r = collect(
                    [
                        run_load(
                            srv.url,
                            srv.model,
                            dict(
                                batch=1,
                                lo=8191,
                                hi=8191,
                                concurrency=16,
                                requests=128,
                                max_s=15,
                                timeout_s=120,
                                encoding="float",
                            ),
                            180,
                        )
                    ]
                )[0]
                r["shape"] = "long8191"
                rec["points"].append(r)
            rec["gpu_memory_after_load"] = gpu_memory()
        srv.stop()
        rec["server"] = srv.record()
        self.res["phases"][name] = rec
        self.save()

    def pack(
        self, name: str, base_args: list[str], util: float, counts: list[int], slice_note: str, together: bool = False
    ) -> None:
        """N servers on one GPU, started one after another (each starts only once the previous is ready, so that
        vLLM's memory profiling sees no other process allocating); load on all of them at once at each N.
        together=True starts max(counts) servers at once instead (as pods on a time-sliced GPU do; about 100 s
        instead of 100 s per server), so their memory profiling may overlap."""
        rec: dict[str, Any] = {
            "util": util,
            "slice": slice_note,
            "servers": [],
            "points": {},
            "ready": True,
            "started_together": together,
        }
        self.res["phases"][name] = rec
        servers: list[Server] = []
        per_start = 75.0
        try:
            if together:
                for i in range(max(counts)):
                    servers.append(
                        self.start(
                            f"{name}-{i + 1}", lambda port: served_args(base_args, self.ckpt_for(base_args), port, util)
                        )
                    )
                for s in servers:
                    ok = s.wait_ready(min(300, self.left() - 30))
                    rec["servers"].append(
                        {
                            "ready": ok,
                            **s.record(),
                            "compile_cache_warm_at_start": s.compile_cache_warm,
                            "gpu_memory_after_ready": gpu_memory(),
                        }
                    )
                    rec["ready"] = rec["ready"] and ok
                self.save()
                if not rec["ready"]:
                    return
            for n in counts:
                while len(servers) < n:
                    if self.left() < per_start + 60:
                        rec["stopped"] = f"{self.left():.0f} s left at N={len(servers)}"
                        break
                    s = self.start(
                        f"{name}-{len(servers) + 1}",
                        lambda port: served_args(base_args, self.ckpt_for(base_args), port, util),
                    )
                    servers.append(s)
                    ok = s.wait_ready(min(240, self.left() - 30))
                    rec["servers"].append(
                        {
                            "ready": ok,
                            **s.record(),
                            "compile_cache_warm_at_start": s.compile_cache_warm,
                            "gpu_memory_after_ready": gpu_memory(),
                        }
                    )
                    self.save()
                    if not ok:
                        rec["ready"] = False
                        rec["failed_at_n"] = len(servers)
                        return
                if len(servers) < n:
                    return
                pt: dict[str, Any] = {"gpu_memory": gpu_memory()}
                for shape, (b, lo, hi), c, req in (("doc512", DOC, 4, 48), ("query", QUERY, 32, 1500)):
                    if self.left() < 40:
                        break
                    procs = [
                        run_load(
                            s.url,
                            s.model,
                            dict(
                                batch=b,
                                lo=lo,
                                hi=hi,
                                concurrency=c,
                                requests=req,
                                max_s=15,
                                timeout_s=120,
                                encoding="float",
                            ),
                            180,
                        )
                        for s in servers
                    ]
                    per = collect(procs)
                    pt[shape] = {
                        "per_server": per,
                        "aggregate_tokens_per_s": round(sum(r.get("tokens_per_s", 0) for r in per), 1),
                        "aggregate_inputs_per_s": round(sum(r.get("inputs_per_s", 0) for r in per), 1),
                        "max_p99_ms": max((r.get("p99_ms") or 0) for r in per),
                        "errors": sum(r.get("errors", 0) for r in per),
                    }
                    print(
                        json.dumps(
                            {
                                "phase": name,
                                "n": n,
                                "shape": shape,
                                "aggregate_tokens_per_s": pt[shape]["aggregate_tokens_per_s"],
                                "max_p99_ms": pt[shape]["max_p99_ms"],
                            }
                        ),
                        flush=True,
                    )
                rec["points"][str(n)] = pt
                self.save()
        finally:
            for s in servers:
                s.stop()
            rec["servers"] = [{**r, **parse_log(os.path.join(self.logdir, f"{r['tag']}.log"))} for r in rec["servers"]]
            self.save()

    def ckpt_for(self, args: list[str]) -> str:
        return os.path.join(self.ckpt, "base" if "jina_task" in (flag(args, "--hf-overrides", "") or "") else "merged")

    def phase(self, name: str) -> None:
        f = self.flags
        total_gib = gpu_memory().get("total_mib", 143771) / 1024
        print(json.dumps({"phase": name, "left_s": round(self.left())}), flush=True)
        if name == "prod":  # the prod stack's merged retrieval variant, whole GPU at its rendered 0.92
            a = f["prod"]["retrieval"]["vllm_args"]
            self.single(name, name, lambda port: served_args(a, self.ckpt_for(a), port), "full", 240)
        elif name == "recipe":  # the upstream recipe: pre-merged repo, vLLM defaults
            self.single(
                name,
                name,
                lambda port: recipe_args(
                    os.path.join(self.ckpt, "merged"), "jinaai/jina-embeddings-v5-text-small-retrieval", port
                ),
                "full",
                240,
            )
        elif name == "prod-base":  # base repo + adapter merged at start-up (prod's clustering variant)
            a = f["prod"]["clustering"]["vllm_args"]
            self.single(name, name, lambda port: served_args(a, self.ckpt_for(a), port), "short", 150)
        elif name == "prod-amd":  # --max-model-len 16384 with --max-num-batched-tokens 8192: one input is chunked
            a = f["prod-amd"]["retrieval"]["vllm_args"]
            self.single(name, name, lambda port: served_args(a, self.ckpt_for(a), port), "long", 150)
        elif name == "prod-amd-fix":  # the same with --max-num-batched-tokens = --max-model-len: no chunking
            if not any(p.get("errors") for p in self.res["phases"].get("prod-amd", {}).get("points", [])):
                self.res["phases"][name] = {"skipped": "prod-amd served every request"}
                return
            a = [
                x if not x.startswith("--max-num-batched-tokens=") else "--max-num-batched-tokens=16384"
                for x in f["prod-amd"]["retrieval"]["vllm_args"]
            ]
            self.single(name, name, lambda port: served_args(a, self.ckpt_for(a), port), "long", 150)
        elif name == "pack-mig":  # MIG 1g.10gb budget (0.92 x 9.31 GiB) as a fraction of this GPU; N = 1, 2, 4, 7
            a = f["prod"]["retrieval"]["vllm_args"]
            mig_gib = 9.31 * float(flag(a, "--gpu-memory-utilization"))
            self.pack(
                name,
                a,
                mig_gib / total_gib,
                [1, 2, 4, 7],
                f"MIG 1g.10gb budget {mig_gib:.2f} GiB of {total_gib:.1f} GiB",
            )
        elif name == "pack-mig7":  # 7 servers at the MIG 1g.10gb-equivalent budget, started together
            a = f["prod"]["retrieval"]["vllm_args"]
            mig_gib = 9.31 * float(flag(a, "--gpu-memory-utilization"))
            self.pack(
                name,
                a,
                mig_gib / total_gib,
                [7],
                f"MIG 1g.10gb budget {mig_gib:.2f} GiB of {total_gib:.1f} GiB",
                together=True,
            )
        elif name == "pack-mig7-kv":  # the same 7 started together, each with the KV cache fixed in bytes
            # Concurrent starts on one device charge each other's allocations to their own profiling
            # (vllm-project/vllm#55827); --kv-cache-memory-bytes skips that estimate (vllm/v1/worker/gpu_worker.py).
            a = f["prod"]["retrieval"]["vllm_args"]
            kv_bytes = int(f["prod"]["retrieval"]["kv_cache_tokens_predicted"]) * SHAPE.kv_bytes_per_token
            mig_gib = 9.31 * float(flag(a, "--gpu-memory-utilization"))
            self.pack(
                name,
                [*a, f"--kv-cache-memory-bytes={kv_bytes}"],
                mig_gib / total_gib,
                [7],
                f"MIG 1g.10gb budget {mig_gib:.2f} GiB of {total_gib:.1f} GiB, KV cache fixed at {kv_bytes} B",
                together=True,
            )
        elif name == "pack-l4q-now":  # dev's 4 variants as rendered now (fixed KV cache), at the L4 quarter, together
            a = f["dev"]["retrieval"]["vllm_args"]
            gib = 22.49 * float(flag(a, "--gpu-memory-utilization"))
            self.pack(
                name, a, gib / total_gib, [4], f"L4 quarter budget {gib:.2f} GiB of {total_gib:.1f} GiB", together=True
            )
        elif name == "mig-now":  # prod's retrieval flags as rendered now (recalibrated fraction), one server
            a = f["prod"]["retrieval"]["vllm_args"]
            gib = 9.31 * float(flag(a, "--gpu-memory-utilization"))
            self.pack(name, a, gib / total_gib, [1], f"MIG 1g.10gb at the rendered fraction: {gib:.2f} GiB")
        elif name == "pack-dev":  # the dev stack's time-sliced fraction as rendered (0.23), N = 1, 2, 4
            a = f["dev"]["retrieval"]["vllm_args"]
            self.pack(
                name,
                a,
                float(flag(a, "--gpu-memory-utilization")),
                [1, 2, 4],
                "time-sliced: the rendered fraction of the whole GPU",
            )
        elif name == "pack-l4q":  # the dev slice's absolute budget (0.23 x 22.49 GiB L4) as a fraction of this GPU
            a = f["dev"]["retrieval"]["vllm_args"]
            gib = 22.49 * float(flag(a, "--gpu-memory-utilization"))
            self.pack(name, a, gib / total_gib, [1, 4], f"L4 quarter budget {gib:.2f} GiB of {total_gib:.1f} GiB")
        else:
            raise SystemExit(f"unknown phase {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("render-flags")
    p = sub.add_parser("install")
    p.add_argument("--parts", required=True)
    p.add_argument("--site", default="/tmp/site")
    p = sub.add_parser("checkpoint")
    p.add_argument("--work", default="/tmp/vbench")
    p = sub.add_parser("run")
    p.add_argument("--phases", required=True)
    p.add_argument("--deadline", type=float, required=True, help="seconds from now to finish by")
    p.add_argument("--work", default="/tmp/vbench")
    p.add_argument("--out", default=os.environ.get("OUT", ""))
    p = sub.add_parser("load")
    p.add_argument("url")
    p.add_argument("model")
    p.add_argument("spec")
    a = ap.parse_args()
    if a.cmd == "render-flags":
        render_flags()
    elif a.cmd == "install":
        install(a.parts, a.site)
    elif a.cmd == "checkpoint":
        sh(f"{sys.executable} {HERE}/make_checkpoint.py {a.work}/ckpt")
    elif a.cmd == "load":
        spec = json.loads(a.spec)
        print(json.dumps(asyncio.run(load_point(a.url, a.model, **spec)), sort_keys=True), flush=True)
    elif a.cmd == "run":
        env = dict(
            os.environ,
            VLLM_NO_USAGE_STATS="1",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_USE_FLASHINFER_SAMPLER="0",
            PYTHONUNBUFFERED="1",
        )
        r = Runner(a.work, time.time() + a.deadline, env)
        r.res.setdefault("host", {}).update(gpu=gpu_memory(), cpus=os.cpu_count())
        try:
            import vllm

            r.res["host"]["vllm"] = vllm.__version__
            import torch

            r.res["host"]["torch"] = torch.__version__
        except Exception as e:
            r.res["host"]["import_error"] = repr(e)
        for name in a.phases.split(","):
            try:
                r.phase(name)
            except Exception as e:  # record and go on to the next phase
                r.res["phases"].setdefault(name, {})["exception"] = repr(e)[:500]
            r.save()
        if a.out:
            shutil.copy(r.path, os.path.join(a.out, "vllm-results.json"))
            sh(f"tar -C {a.work} -cJf {a.out}/vllm-logs.tar.xz logs")


if __name__ == "__main__":
    main()
