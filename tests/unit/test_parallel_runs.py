"""`make test` runs pytest-xdist workers (TEST_JOBS). The root conftest's scheduler must hand a worker whole units:
each test module, and the whole vllm tier (its session fixtures start vLLM servers once), longest tiers first.
Shown here with real xdist workers on a small suite laid out like ours: tests/{vllm,e2e,unit}/."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict

from infra.core.paths import REPO_ROOT

RECORDING_TEST = """
import os, time
def _record(name):
    with open(os.environ["RUN_LOG"], "a") as f:
        f.write(f"{{os.environ['PYTEST_XDIST_WORKER']}} {{time.monotonic()}} {module}::{{name}}\\n")
    time.sleep(0.3)
def test_one(): _record("one")
def test_two(): _record("two")
"""


def test_workers_take_whole_modules_and_the_whole_vllm_tier_first(tmp_path):
    modules = ["unit/test_u1", "unit/test_u2", "unit/test_u3", "e2e/test_e1", "e2e/test_e2", "vllm/test_v1",
               "vllm/test_v2"]  # fmt: skip
    for module in modules:
        path = tmp_path / "tests" / f"{module}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(RECORDING_TEST.format(module=module))
    # the repository's hooks, as its own tests/conftest.py registers them
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_collection_modifyitems, pytest_xdist_make_scheduler  # noqa: F401\n"
    )
    run_log = tmp_path / "run.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RUN_LOG": str(run_log)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "3", "--no-loadscope-reorder",
         "--rootdir", str(tmp_path), "-c", os.devnull, "tests"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line.split() for line in run_log.read_text().splitlines()]
    assert len(rows) == 2 * len(modules)

    workers_of: dict[str, set[str]] = defaultdict(set)
    for worker, _, test in rows:
        workers_of[test.split("::")[0]].add(worker)
    assert all(len(w) == 1 for w in workers_of.values()), workers_of  # a module stays on one worker
    assert workers_of["vllm/test_v1"] == workers_of["vllm/test_v2"]  # the vllm tier is one unit
    assert len(set().union(*workers_of.values())) > 1  # and the units are spread over workers

    def start(tier: str) -> float:
        return min(float(t) for _, t, test in rows if test.startswith(f"{tier}/"))

    # longest first: the vllm tier and the e2e modules start before any unit-tier module
    assert start("vllm") < start("unit") and start("e2e") < start("unit"), rows
