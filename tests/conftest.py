"""Shared fixtures: every stack's plan and its releases rendered by the pinned helm; small helpers the
tiers share (e2e included)."""

from __future__ import annotations

import functools
import re
import resource
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from infra.core.paths import REPO_ROOT
from infra.core.plan import Plan, build_for_env
from infra.core.stackfile import stack_names
from infra.sinks.helm import render_release

STACKS = stack_names()
CHART_DIR = REPO_ROOT / "charts" / "jina-embeddings"


@pytest.fixture(scope="session")
def stack_plans() -> dict[str, Plan]:
    return {env: build_for_env(env) for env in STACKS}


@pytest.fixture(scope="session")
def rendered_releases(stack_plans) -> dict[tuple[str, str], list[dict]]:
    """(env, variant) -> the objects `helm template` renders for that release."""
    return {(env, r.variant): render_release(r) for env, plan in stack_plans.items() for r in plan.releases}


def objects_of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def repo_path(*parts: str) -> Path:
    return REPO_ROOT.joinpath(*parts)


@functools.cache
def _pins() -> dict[str, str]:
    text = (REPO_ROOT / "tools" / "versions.env").read_text()
    return {name: value.strip() for name, value in re.findall(r"^(\w+)=(.*)$", text, re.M)}


def pin(name: str) -> str:
    """A toolchain pin of tools/versions.env by its name, e.g. pin("HELM_VERSION")."""
    return _pins()[name]


def type_token(obj: dict[str, Any]) -> str:
    """The Kubernetes provider's type token of a manifest: kubernetes:<group|core>/<version>:<Kind>."""
    group, _, version = obj["apiVersion"].rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{obj['kind']}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound, then released: nothing listens there)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Cases tried by each property-based test (tests/unit/test_fuzz.py), printed at the end of the run.
FUZZ_CASES: dict[str, int] = {}


# Each tier's time (tests/<tier>/): first test's start to last test's end, fixtures' set-up and teardown included.
TIER_TIMES: dict[str, list[float]] = {}


def _tier(nodeid: str) -> str:
    return nodeid.split("/")[1] if nodeid.startswith("tests/") and nodeid.count("/") >= 2 else ""


def pytest_runtest_logstart(nodeid, location) -> None:
    if tier := _tier(nodeid):
        TIER_TIMES.setdefault(tier, [time.monotonic(), 0.0])


def pytest_runtest_logfinish(nodeid, location) -> None:
    if (tier := _tier(nodeid)) in TIER_TIMES:
        TIER_TIMES[tier][1] = time.monotonic()


# CPU seconds (user + sys) per test module, set-up and teardown included: the test process itself and the child
# processes it waited for (getrusage, https://man7.org/linux/man-pages/man2/getrusage.2.html). Daemons that outlive
# their starter (the kwok cluster's kube-apiserver, etcd, ...) are not waited for, so they are not in it. Printed at
# the end of a run, the largest first: what to cut to make the run faster on 2 cores, where CPU is the limit.
MODULE_CPU: dict[str, float] = {}


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = _cpu_seconds()
    try:
        return (yield)
    finally:
        module = item.nodeid.split("::", 1)[0]
        MODULE_CPU[module] = MODULE_CPU.get(module, 0.0) + _cpu_seconds() - start


# Parallel runs (`make test`, TEST_JOBS workers of pytest-xdist, https://pytest-xdist.readthedocs.io). A worker
# takes whole units: a test module, so its module fixtures (an e2e module's deployed stack) run once, and the whole
# vllm tier, so its session fixtures (the vLLM servers, Prometheus) start once. Units are handed out in collection
# order as workers free up (`--no-loadscope-reorder`), so the longest go first: the vllm tier, then the e2e modules
# (mostly waiting on their cluster), then the rest. Each worker that gets an e2e module starts its own cluster
# (tests/e2e/kube.py, CLUSTER_NAME). xdist's own `--dist loadgroup` cannot express this here: it renames
# `item._nodeid`, which pytest 9 no longer reads (nodeids come from `item._id`), so every test was its own unit.
LONGEST_TIERS_FIRST = {"vllm": 0, "e2e": 1, "policy": 2}


def pytest_collection_modifyitems(config, items) -> None:
    items.sort(key=lambda item: LONGEST_TIERS_FIRST.get(_tier(item.nodeid), len(LONGEST_TIERS_FIRST)))


def work_unit(nodeid: str) -> str:
    """The tests one xdist worker runs together: the vllm tier, else the test's module."""
    return "tests/vllm" if _tier(nodeid) == "vllm" else nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own choice from --dist; optional: -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class TierScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:  # the hook LoadScopeScheduling's subclasses override
            return work_unit(nodeid)

    return TierScheduling(config, log)


def pytest_sessionfinish(session) -> None:
    # an xdist worker hands its counts to the controller, which prints the summary (pytest_testnodedown below)
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["fuzz_cases"] = dict(FUZZ_CASES)
        session.config.workeroutput["module_cpu"] = dict(MODULE_CPU)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    for name, n in getattr(node, "workeroutput", {}).get("fuzz_cases", {}).items():
        FUZZ_CASES[name] = FUZZ_CASES.get(name, 0) + n
    for module, seconds in getattr(node, "workeroutput", {}).get("module_cpu", {}).items():
        MODULE_CPU[module] = MODULE_CPU.get(module, 0.0) + seconds


def pytest_terminal_summary(terminalreporter) -> None:
    if TIER_TIMES:
        terminalreporter.write_line(
            "tier times: " + ", ".join(f"{tier} {end - start:.0f} s" for tier, (start, end) in TIER_TIMES.items())
        )
    if MODULE_CPU:
        largest = sorted(MODULE_CPU.items(), key=lambda kv: -kv[1])[:15]
        terminalreporter.write_line(
            f"CPU of the test modules: {sum(MODULE_CPU.values()):.0f} s (their processes and the children they waited for);"
            " the largest: " + ", ".join(f"{module.removeprefix('tests/')} {s:.0f}" for module, s in largest)
        )
    if FUZZ_CASES:
        terminalreporter.write_line(
            f"hypothesis cases tried: {sum(FUZZ_CASES.values())} ("
            + ", ".join(f"{name} {n}" for name, n in sorted(FUZZ_CASES.items()))
            + ")"
        )
