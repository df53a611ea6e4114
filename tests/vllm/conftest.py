"""Fixtures of the `vllm` tier: the fixture checkpoints in a Hugging Face cache, the reference vectors, and two
real vLLM servers started from rendered Deployments, shared by the whole session.

Servers (started together, so their start-ups overlap; two is the fewest that cover both vendors and both
serving modes):
  nvidia-base   manifests/prod/clustering      NVIDIA stack, base repository + clustering adapter (--hf-overrides)
  amd-merged    manifests/prod-amd/retrieval   AMD stack, pre-merged -retrieval repository
The other two combinations (NVIDIA merged, AMD base) differ from these only in values that a CPU cannot
exercise (GPU resources, node selectors, supplemental groups); test_spec.py converts all four specs of each
stack to local command lines without starting them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.paths import REPO_ROOT
from infra.core.platform_objects import WEIGHTS_FILE_PATTERNS
from tests.conftest import TIER_TIMES
from tests.vllm.harness import (
    REPLACEMENTS,
    TOOLS_DIR,
    VLLM_VENV,
    Server,
    grant_traverse,
    load_spec,
    restore_modes,
    run_as,
)

HERE = Path(__file__).parent
SERVERS = {"nvidia-base": ("prod", "clustering"), "amd-merged": ("prod-amd", "retrieval")}
FIXTURE_ROOT = TOOLS_DIR / "vllm-fixtures"

TEXTS = [
    "Document: Photosynthesis lets plants convert light energy from the sun into chemical energy stored in sugar.",
    "Query: How do plants turn sunlight into energy?",
    "Le chat dort sur le rebord de fenêtre chaud.",
    "猫在温暖的窗台上睡觉。",
]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.vllm)


def vllm_python() -> str:
    return str(VLLM_VENV / "bin" / "python")


def weights_jobs() -> list[dict]:
    """Every rendered weights Job (manifests/<env>/weights/job-*-weights-populate-<digest>.yaml)."""
    return [
        yaml.safe_load(p.read_text())
        for p in sorted((REPO_ROOT / "manifests").glob("*/weights/job-*weights-populate-*.yaml"))
    ]


def job_repos_and_patterns(job: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """(repositories and revisions, allow_patterns) as the rendered Job's command carries them (each download is
    [repository, revision, ready marker])."""
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    repos = [(r[0], r[1]) for r in json.loads(command[-1])]
    m = re.search(r"allow_patterns=(\[[^\]]*\])", command[2])
    assert m, f"no allow_patterns in the weights Job's script:\n{command[2]}"
    return repos, json.loads(m.group(1).replace("'", '"'))


@pytest.fixture(scope="session")
def fixture_cache() -> dict:
    """The fixture checkpoints laid out as an HF cache for every repository a rendered weights Job downloads,
    through WEIGHTS_FILE_PATTERNS. Cached under the tool cache, keyed by the generator and the pattern list."""
    repos = sorted({r for job in weights_jobs() for r in job_repos_and_patterns(job)[0]})
    assert repos, "no rendered weights Job: regenerate manifests/ (python -m infra export --all)"
    patterns = list(WEIGHTS_FILE_PATTERNS)
    key = hashlib.sha256(json.dumps([(HERE / "checkpoint.py").read_text(), patterns, repos]).encode()).hexdigest()[:16]
    root = FIXTURE_ROOT / key
    if not (root / "manifest.json").exists():
        tmp = FIXTURE_ROOT / f".{key}.tmp{os.getpid()}"
        t0 = time.monotonic()
        out = subprocess.run(
            [
                vllm_python(),
                str(HERE / "checkpoint.py"),
                "build",
                "--hf-home",
                str(tmp / "models" / "huggingface"),
                "--sources",
                str(tmp / "sources"),
                "--patterns",
                json.dumps(patterns),
                "--repos",
                json.dumps(repos),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        (tmp / "manifest.json").write_text(out.stdout)
        if root.exists():  # another session built it meanwhile
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, root)
        print(f"\n[vllm-tier] fixture checkpoints built in {time.monotonic() - t0:.1f} s: {root}")
    # the pods' user must be able to read (and, like the PVC with fsGroup, write) the cache
    user = run_as(load_spec(*SERVERS["nvidia-base"]))
    if user:
        for p in [root / "models", *(root / "models").rglob("*")]:
            if not p.is_symlink() and p.stat().st_uid != user[0]:
                os.chown(p, *user)
    return {
        "root": root,
        "models": root / "models",
        "hf_home": root / "models" / "huggingface",
        "sources": root / "sources",
        "manifest": json.loads((root / "manifest.json").read_text()),
        "repos": repos,
        "patterns": patterns,
    }


def run_reference(jobs: list[dict], texts: list[str], cache_dir: Path) -> list[list[list[float]]]:
    """The reference's vectors of `texts` for each job. Kept in the fixture cache (`cache_dir`, itself keyed by the
    checkpoint generator) under a digest of everything that decides them: the jobs, the texts, reference.py and
    the vLLM virtualenv's lock (torch, transformers). A warm run reads them instead of loading torch again. The
    jobs' snapshot paths count relative to `cache_dir`, so a moved tool cache still finds them."""
    relative_jobs = json.dumps(jobs).replace(json.dumps(str(cache_dir))[1:-1], "<fixtures>")
    key = hashlib.sha256(
        json.dumps(
            [
                relative_jobs,
                texts,
                (HERE / "reference.py").read_text(),
                (REPO_ROOT / "requirements-vllm.lock").read_text(),
            ]
        ).encode()
    ).hexdigest()[:16]
    cached = cache_dir / f"reference-{key}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    out = subprocess.run(
        [vllm_python(), str(HERE / "reference.py"), "--snapshot", ".", "--jobs", json.dumps(jobs)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(out.stdout)
    os.replace(tmp, cached)  # atomic: a concurrent session reads the whole file or none
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def reference(fixture_cache) -> dict:
    """Reference vectors (transformers + safetensors, float32) of TEXTS, by (source, task, dimensions):
    ("base", task): base weights + the task's adapter merged by the reference; ("merged", task): the pre-merged
    checkpoint's weights; ("raw", None): the base weights with no adapter."""
    src = fixture_cache["sources"]
    tasks = ("retrieval", "text-matching", "classification", "clustering")
    jobs: list[dict[str, Any]] = []
    keys: list[tuple[str, str | None, int]] = []
    for dims in (1024, 256, 32):
        for t in tasks:
            jobs += [
                {"snapshot": str(src / "base"), "task": t, "dimensions": dims},
                {"snapshot": str(src / t), "dimensions": dims},
            ]
            keys += [("base", t, dims), ("merged", t, dims)]
    jobs.append({"snapshot": str(src / "base"), "dimensions": 1024})
    keys.append(("raw", None, 1024))
    return dict(zip(keys, run_reference(jobs, TEXTS, fixture_cache["root"]), strict=False))


@pytest.fixture(scope="session")
def golden_file(fixture_cache, tmp_path_factory) -> Path:
    """Golden vectors of the fixture checkpoints in `smoke`'s format (infra/golden/), computed by the independent
    reference from the base weights + each task's adapter, exactly as docs/golden-vectors.md says the real
    model's are computed."""
    from infra.ops.smoke import GOLDEN_MIN_COSINE, GOLDEN_TEXTS

    tasks = ("retrieval", "text-matching", "classification", "clustering")
    src = fixture_cache["sources"]
    vectors = run_reference(
        [{"snapshot": str(src / "base"), "task": t, "dimensions": 1024} for t in tasks],
        list(GOLDEN_TEXTS),
        fixture_cache["root"],
    )
    path = Path(tmp_path_factory.mktemp("golden")) / "fixture-golden.json"
    path.write_text(
        json.dumps(
            {
                "model": "tiny random-weight fixture (tests/vllm/checkpoint.py)",
                "min_cosine": GOLDEN_MIN_COSINE,
                "texts": list(GOLDEN_TEXTS),
                "vectors": dict(zip(tasks, vectors, strict=False)),
            }
        )
    )
    return path


@pytest.fixture(scope="session")
def servers(fixture_cache):
    """Both servers, started at once; each ready (startup probe path 200) or the fixture fails."""
    started: dict[str, Server] = {}
    user = run_as(load_spec(*SERVERS["nvidia-base"]))
    granted = (
        grant_traverse(
            [
                VLLM_VENV / "bin" / "python",
                Path(os.path.realpath(VLLM_VENV / "bin" / "python")),
                fixture_cache["models"],
            ],
            *user,
        )
        if user
        else []
    )
    for path, mode in granted:
        assert user is not None
        print(f"[vllm-tier] o+x on {path} (mode {mode:o}) for the session: uid {user[0]} must reach vLLM and the cache")
    # not under pytest's basetemp: that is private to the user running pytest (0700), and vLLM may run as the pod's user
    base = Path(tempfile.mkdtemp(prefix="vllm-tier-"))
    os.chmod(base, 0o755)
    print("\n[vllm-tier] replacements of the rendered container spec:")
    for what, why in REPLACEMENTS.items():
        print(f"[vllm-tier]   {what}: {why}")
    try:
        for name, (env, variant) in SERVERS.items():
            spec = load_spec(env, variant)
            work = base / name
            started[name] = Server(spec, fixture_cache["models"], work).start()
        with ThreadPoolExecutor(len(started)) as pool:
            futures = {n: pool.submit(s.wait_ready, 900) for n, s in started.items()}
            for f in futures.values():
                f.result()
        for n, s in started.items():
            print(
                f"[vllm-tier] {n} ({s.spec.env}/{s.spec.variant}, {s.spec.vendor}, {s.spec.mode}): ready in {s.ready_s:.0f} s; "
                f"startupProbe budget {s.spec.startup_budget_s} s; probe failed {s.probe_failures_before_ready}x before 200"
            )
        yield started
    finally:
        logs = REPO_ROOT / "build" / "vllm-tier-logs"  # git-ignored; the last run's logs, for a failure's post-mortem
        logs.mkdir(parents=True, exist_ok=True)
        for name, s in started.items():
            s.stop()
            if s.log_path.exists():
                shutil.copy(s.log_path, logs / f"{name}.log")
        shutil.rmtree(base, ignore_errors=True)
        restore_modes(granted)
        print(f"\n[vllm-tier] vLLM logs kept in {logs}")
        print("\n[vllm-tier] servers stopped")


def pytest_sessionfinish(session, exitstatus):
    if "vllm" in TIER_TIMES:  # timed by tests/conftest.py, like every tier
        start, end = TIER_TIMES["vllm"]
        sys.stdout.write(
            f"\n[vllm-tier] tier time: {end - start:.0f} s "
            f"(first to last test of tests/vllm, server start-ups and teardown included)\n"
        )
