"""The served pods for real: start-up, API, correctness, metrics and smoke of vLLM running rendered specs.

Servers and fixtures: tests/vllm/conftest.py. Shutdown under load runs last (test_shutdown.py).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import REPO_ROOT
from tests.vllm.conftest import SERVERS, TEXTS
from tests.vllm.harness import expected

SAME = 0.999  # cosine: the same vector up to bf16 serving vs float32 reference
DIFFERENT = 0.99  # cosine below which two tasks' vectors count as different
SERVER_NAMES = list(SERVERS)


def cos(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def hf_overrides(server) -> dict:
    return json.loads(server.spec.arg("--hf-overrides") or "{}")


def plan_of(server):
    return expected(server.spec.env, server.spec.variant)


def task_of(server) -> str:
    """The task the plan says this variant serves (not what the rendered args say: those are under test)."""
    return plan_of(server).task


# ------------------------------------------------------------------------------------------------ start-up


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_startup_probe_fails_while_loading_then_passes(servers, name):
    s = servers[name]
    c = s.spec.container
    # before ready, the startupProbe's path did not answer 200 (vLLM listens only after the engine is up)
    assert s.probe_failures_before_ready >= 1, f"the startup probe path answered 200 at once: {s.probe_log[:3]}"
    assert all(r != "200" for _, r in s.probe_log[:-1]) and s.probe_log[-1][1] == "200", s.probe_log[-3:]
    # and now every probe the kubelet would run passes, on the port it names
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = c[probe]["httpGet"]
        assert s.spec.named_port(http["port"]) == s.spec.container_port, f"{probe} targets {http['port']}"
        assert s.probe(http["path"]) == 200, f"{probe} {http['path']} -> {s.probe(http['path'])}"
    print(f"\n[vllm-tier] {name}: time to ready {s.ready_s:.0f} s, startupProbe budget {s.spec.startup_budget_s} s "
          f"(periodSeconds {c['startupProbe']['periodSeconds']} x failureThreshold {c['startupProbe']['failureThreshold']})")


def test_base_mode_merged_the_adapter_at_start_up(servers):
    s = servers["nvidia-base"]
    task = task_of(s)
    m = re.search(rf"Loaded (\d+) adapter tensors for task '{re.escape(task)}'", s.log_text())
    assert m, f"no adapter merge logged for {task!r}:\n" + "\n".join(l for l in s.log_text().splitlines() if "adapter" in l.lower())
    assert "No adapter found" not in s.log_text()


# ------------------------------------------------------------------------------------------------ API


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_models_lists_exactly_the_served_name(servers, name):
    s = servers[name]
    status, body = s.request("GET", "/v1/models")
    assert status == 200, body
    assert [m["id"] for m in body["data"]] == [plan_of(s).served_name]


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_embeddings_are_unit_vectors_at_every_matryoshka_size(servers, name):
    s = servers[name]
    sizes = list(plan_of(s).matryoshka)  # the catalog's list: the rendered --hf-overrides must make vLLM accept exactly these
    full = s.embed(TEXTS)
    assert {len(v) for v in full} == {max(sizes)}
    for v in full:
        assert abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-3
    for d in sizes:
        (v,) = s.embed(TEXTS[:1], dimensions=d)
        assert len(v) == d and abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-3, (d, len(v))
    refused = {}
    for d in (1, 16, 48, 100, 1000, max(sizes) + 1, 4096):
        if d in sizes:
            continue
        status, body = s.request("POST", "/v1/embeddings", {"model": s.spec.served_name, "input": TEXTS[:1], "dimensions": d})
        refused[d] = status
    assert set(refused.values()) == {400}, f"sizes outside {sizes} must get 400: {refused}"


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_wrong_model_name_gets_404(servers, name):
    s = servers[name]
    status, body = s.request("POST", "/v1/embeddings", {"model": s.spec.served_name + "-nope", "input": ["x"]})
    assert status == 404, (status, body)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_api_key_is_required_where_the_stack_sets_one(servers, name):
    s = servers[name]
    body = {"model": s.spec.served_name, "input": ["x"]}
    if not plan_of(s).api_key:
        pytest.skip(f"stack {s.spec.env} has no API key")
    assert s.request("POST", "/v1/embeddings", body, key=None)[0] == 401
    assert s.request("POST", "/v1/embeddings", body, key="sk-wrong")[0] == 401
    assert s.request("GET", "/v1/models", key=None)[0] == 401
    assert s.request("POST", "/v1/embeddings", body)[0] == 200


# What answers WITHOUT the API key: vLLM guards only /v1, /v2, /inference and /cohere (the README's "Security
# controls" and the allow-serving NetworkPolicy rely on this list being what it is).
OPEN_WITHOUT_KEY = {"/health", "/ping", "/metrics", "/version", "/load", "/pooling", "/score", "/rerank", "/tokenize", "/detokenize",
                    "/invocations"}
PROBES = {
    "/health": ("GET", None), "/ping": ("GET", None), "/metrics": ("GET", None), "/version": ("GET", None),
    "/load": ("GET", None), "/v1/models": ("GET", None),
    "/pooling": ("POST", {"input": "hello"}), "/score": ("POST", {"text_1": "a", "text_2": "b"}),
    "/rerank": ("POST", {"query": "a", "documents": ["b", "c"]}), "/tokenize": ("POST", {"prompt": "hello"}),
    "/detokenize": ("POST", {"tokens": [1, 2]}), "/invocations": ("POST", {"input": "hello"}),
    "/v1/embeddings": ("POST", {"input": "hello"}), "/v2/embed": ("POST", {"texts": ["hello"], "input_type": "document",
                                                                           "embedding_types": ["float"]}),
    "/v1/score": ("POST", {"text_1": "a", "text_2": "b"}), "/v1/rerank": ("POST", {"query": "a", "documents": ["b"]}),
    "/classify": ("POST", {"input": "hello"}), "/v1/chat/completions": ("POST", {"messages": [{"role": "user", "content": "hi"}]}),
    "/v1/completions": ("POST", {"prompt": "hi"}),
}


@pytest.mark.parametrize("name", ["nvidia-base"])
def test_record_which_endpoints_answer(servers, name, tmp_path_factory):
    s = servers[name]
    table = {}
    for path, (method, body) in PROBES.items():
        if body is not None:
            body = {"model": s.spec.served_name, **body}
        table[path] = {"no key": s.request(method, path, body, key=None)[0], "key": s.request(method, path, body)[0]}
    print("\n[vllm-tier] endpoints (status without / with the API key):")
    for path, r in table.items():
        print(f"[vllm-tier]   {path:<22} {r['no key']:>3} / {r['key']:>3}")
    open_now = {p for p, r in table.items() if r["no key"] not in (401, 404, 405) and r["no key"] < 500 and r["key"] == r["no key"]}
    answering = {p for p, r in table.items() if r["key"] == 200}
    assert open_now == OPEN_WITHOUT_KEY, f"answer without the key: {sorted(open_now)}; expected {sorted(OPEN_WITHOUT_KEY)}"
    assert {"/v1/embeddings", "/v1/models", "/v2/embed", "/pooling"} <= answering, sorted(answering)


# ------------------------------------------------------------------------------------------------ correctness


def served_vs(servers, reference, name, source):
    s = servers[name]
    task = task_of(s)
    worst = {}
    for dims in (1024, 256, 32):
        served = s.embed(TEXTS, dimensions=dims) if dims != 1024 else s.embed(TEXTS)
        ref = reference[(source, task, dims)]
        worst[dims] = min(cos(a, b) for a, b in zip(served, ref))
    return task, worst


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_served_vectors_match_the_independent_reference(servers, reference, name):
    """The reference merges the LoRA itself (base mode) or reads the pre-merged weights (merged mode), pools the
    last token, L2-normalises, truncates and re-normalises; the served vectors must match at every size."""
    mode = servers[name].spec.mode
    task, worst = served_vs(servers, reference, name, "base" if mode == "base" else "merged")
    print(f"\n[vllm-tier] {name} ({task}, {mode}) vs reference: min cosine " + ", ".join(f"{d}: {c:.5f}" for d, c in worst.items()))
    assert min(worst.values()) >= SAME, worst


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_base_mode_and_pre_merged_checkpoint_agree(servers, reference, name):
    """Served base mode vs the pre-merged checkpoint (through the reference), and served pre-merged vs the base
    weights + adapter (through the reference): one server per mode, the other side from the reference, so no
    second server per task is started."""
    mode = servers[name].spec.mode
    task, worst = served_vs(servers, reference, name, "merged" if mode == "base" else "base")
    print(f"\n[vllm-tier] {name} ({task}, served {mode}) vs reference of the other mode: min cosine {min(worst.values()):.5f}")
    assert min(worst.values()) >= SAME, worst


def test_every_task_base_plus_adapter_equals_its_pre_merged_checkpoint(reference):
    for task in ("retrieval", "text-matching", "classification", "clustering"):
        worst = min(cos(a, b) for a, b in zip(reference[("base", task, 1024)], reference[("merged", task, 1024)]))
        assert worst >= SAME, (task, worst)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_different_tasks_give_different_vectors(servers, reference, name):
    s = servers[name]
    served = s.embed(TEXTS)
    own = task_of(s)
    sims = {t: max(cos(a, b) for a, b in zip(served, reference[("base", t, 1024)]))
            for t in ("retrieval", "text-matching", "classification", "clustering") if t != own}
    sims["no adapter"] = max(cos(a, b) for a, b in zip(served, reference[("raw", None, 1024)]))
    print(f"\n[vllm-tier] {name} ({own}) vs other tasks (max cosine): " + ", ".join(f"{t} {c:.3f}" for t, c in sims.items()))
    assert max(sims.values()) < DIFFERENT, sims


# ------------------------------------------------------------------------------------------------ metrics


def metric_names_used() -> dict[str, set[str]]:
    """vllm:* series named by the rendered alerts, the dashboard, the prometheus-adapter rule and the KEDA query."""
    names: dict[str, set[str]] = {}
    pat = re.compile(r"vllm:[a-zA-Z_:0-9]+")

    def add(where: str, text: str) -> None:
        for n in pat.findall(text):
            names.setdefault(n, set()).add(where)

    for p in sorted((REPO_ROOT / "manifests").glob("*/*/prometheusrule-*.yaml")):
        add("alerts", p.read_text())
    for p in sorted((REPO_ROOT / "manifests").glob("*/platform/configmap-*dashboard*.yaml")):
        add("dashboard", p.read_text())
    add("prometheus-adapter", (REPO_ROOT / "charts" / "jina-embeddings" / "files" / "prometheus-adapter-rules.yaml").read_text())
    for p in sorted((REPO_ROOT / "manifests").glob("*/*/scaledobject-*.yaml")):
        add("keda", p.read_text())
    return names


def test_every_metric_the_bundle_queries_is_exposed(servers):
    s = servers["nvidia-base"]
    s.embed(TEXTS)  # at least one request, so the histograms have samples
    status, text = s.request("GET", "/metrics")
    assert status == 200
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    used = metric_names_used()
    assert {"alerts", "dashboard", "prometheus-adapter", "keda"} <= set().union(*used.values()), used
    missing = {n: sorted(w) for n, w in used.items() if n not in exposed}
    print(f"\n[vllm-tier] {len(used)} vllm: series used by the bundle, all checked against the real /metrics")
    assert not missing, f"named by the bundle but not in vLLM's /metrics: {missing}"


# ------------------------------------------------------------------------------------------------ smoke


def smoke(server, env: str, variant: str, golden: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "infra", "smoke", "--env", env, "--variant", variant, "--url", server.url,
           "--golden", str(golden), "--no-multilingual", "--no-retrieval", *extra]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "VLLM_API_KEY": server.api_key},
                          timeout=120, check=False)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_infra_smoke_passes(servers, golden_file, name):
    s = servers[name]
    r = smoke(s, s.spec.env, s.spec.variant, golden_file)
    print(f"\n[vllm-tier] smoke {s.spec.env}/{s.spec.variant}:\n{r.stdout}{r.stderr}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"PASS\s+golden", r.stdout), r.stdout


def test_infra_smoke_fails_a_variant_served_with_the_wrong_task(servers, golden_file):
    """The clustering server answers for a Deployment whose plan says `classification`: what a variant served with
    the wrong adapter looks like from outside. smoke must fail on the golden vectors alone."""
    s = servers["nvidia-base"]
    r = smoke(s, s.spec.env, "classification", golden_file, "--model", s.spec.served_name)
    print(f"\n[vllm-tier] smoke, clustering weights served as classification:\n{r.stdout}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"FAIL\s+golden", r.stdout), r.stdout
    assert "clustering" in r.stdout  # it says which task's vectors it got instead
