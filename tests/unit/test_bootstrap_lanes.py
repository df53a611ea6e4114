"""tools/bootstrap.sh builds its components in lanes side by side; a failing build stops its lane and fails the run.

The real script, run with a `go` first on PATH that refuses to build (it passes `go env` and `go version` to the
real one), into an empty tool cache: no network, no compiling.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import repo_path

BOOTSTRAP = repo_path("tools", "bootstrap.sh")
REFUSING_GO = """#!/bin/sh
case "$1" in env|version) exec "{real_go}" "$@" ;; esac
echo "refusing go $1" >&2
exit 3
"""


@pytest.fixture
def refusing_go_env(tmp_path: Path) -> dict[str, str]:
    real_go = shutil.which("go")
    if real_go is None:
        pytest.fail("no go on PATH: tools/bootstrap.sh needs Go (README, set-up)")
    fake = tmp_path / "fake-bin" / "go"
    fake.parent.mkdir()
    fake.write_text(REFUSING_GO.format(real_go=real_go))
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNDLE_TOOLS")}
    return env | {"PATH": f"{fake.parent}:{env['PATH']}", "BUNDLE_TOOLS_DIR": str(tmp_path / "tools")}


def bootstrap(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BOOTSTRAP), *args], env=env, capture_output=True, text=True, timeout=120)


def lanes() -> list[list[str]]:
    text = BOOTSTRAP.read_text()
    block = re.search(r"^LANES=\(\n(.*?)^\)", text, re.S | re.M)
    assert block, "tools/bootstrap.sh has no LANES=( ... ) block"
    return [line.strip().strip('"').split() for line in block.group(1).splitlines() if line.strip()]


def test_every_component_is_in_exactly_one_lane() -> None:
    listed = subprocess.run([str(BOOTSTRAP), "--list"], capture_output=True, text=True, check=True).stdout.split()
    in_lanes = [c for lane in lanes() for c in lane]
    assert sorted(in_lanes) == sorted(listed)
    # the dependencies a lane keeps in order: the provider's check runs the pulumi CLI; the Flux controllers share
    # one wrapper module, so they must not build at the same time
    for first, then in [("pulumi", "pulumi-kubernetes"), ("flux-source-controller", "flux-kustomize-controller")]:
        lane = next(lane for lane in lanes() if first in lane)
        assert then in lane and lane.index(first) < lane.index(then), f"{first} and then {then} in one lane"


@pytest.mark.parametrize("serial", [False, True], ids=["lanes", "serial"])
def test_a_failing_build_fails_the_run_and_stops_its_lane(refusing_go_env: dict[str, str], serial: bool) -> None:
    # kube-score and etcd share a lane: kube-score's `go install` fails, so etcd is never started
    run = bootstrap(refusing_go_env, *(["--serial"] if serial else []), "kube-score", "etcd")
    assert run.returncode == 1, run.stderr
    assert "[kube-score] refusing go install" in run.stderr
    assert "ERROR: kube-score: build failed (exit status 3" in run.stderr
    assert "etcd: building" not in run.stderr
    assert re.search(r"^\[bootstrap\]\s+kube-score\s+not done$", run.stderr, re.M), run.stderr
    assert re.search(r"^\[bootstrap\]\s+etcd\s+not done$", run.stderr, re.M), run.stderr
    assert not (Path(refusing_go_env["BUNDLE_TOOLS_DIR"]) / "bin" / "kube-score").exists()
