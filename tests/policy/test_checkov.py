"""Checkov's Kubernetes checks (its own virtualenv, offline) over every stack, chart scenario and the
committed export: zero failures, every suppression with a reason; and a planted violation is caught.

Checkov's virtualenv comes from the tool cache (`tools/bootstrap.sh checkov`, pinned by requirements-checkov.lock);
`make test` builds it with the rest of the toolchain, and a run of this module alone builds it when it is missing.
"""

from __future__ import annotations

import copy
import subprocess
import time

import pytest

from infra.checks.policy import checkov
from infra.core.paths import REPO_ROOT
from infra.core.stackfile import stack_names
from infra.sinks.bundles import exported_envs
from tests.conftest import pin
from tests.policy.conftest import find

# The suppressions the bundle documents (docs/security.md, "Checkov"), each rendered with its reason.
DOCUMENTED_SKIPS = {"CKV_K8S_15", "CKV_K8S_22", "CKV_K8S_35", "CKV_K8S_40", "CKV_K8S_43"}


@pytest.fixture(scope="module")
def checkov_binary():
    # a no-op when the cached virtualenv matches the lock; it says "cached" or "built" and how long it took
    subprocess.run([str(REPO_ROOT / "tools" / "bootstrap.sh"), "checkov"], check=True)
    return checkov.checkov_binary()


def _planted(bundles) -> dict[str, list[dict]]:
    """A privileged copy of a real Deployment, and one whose suppression has no reason."""
    deployment = find(bundles["stack:prod"], "Deployment")
    privileged = copy.deepcopy(deployment)
    privileged["metadata"]["name"] = "planted-privileged"
    privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    unreasoned = copy.deepcopy(deployment)
    unreasoned["metadata"]["name"] = "planted-unreasoned-skip"
    unreasoned["metadata"]["annotations"] = {
        "checkov.io/skip1": "CKV_K8S_15",
        "checkov.io/skip2": "CKV_K8S_43=pinned tag",
        "checkov.io/skip3": "CKV_K8S_40=vllm user",
        "checkov.io/skip4": "CKV_K8S_35=api key env",
    }
    return {"planted": [privileged, unreasoned]}


@pytest.fixture(scope="module")
def rendered(bundles, checkov_binary, tmp_path_factory):
    """One Checkov run over every stack and scenario (bundles/) and the planted objects (planted/)."""
    root = tmp_path_factory.mktemp("checkov")
    written = checkov.write_objects({k: v for k, v in bundles.items() if not k.startswith("export:")}, root / "bundles")
    checkov.write_objects(_planted(bundles), root / "planted")
    started = time.monotonic()
    result = checkov.run(root)
    print(
        f"\ncheckov over {written} rendered objects (+2 planted): {time.monotonic() - started:.1f}s; {result.describe()}"
    )

    def part(prefix: str) -> checkov.CheckovResult:
        keep = lambda checks: [c for c in checks if c["file_path"].startswith(f"/{prefix}/")]  # noqa: E731
        return checkov.CheckovResult(
            0, keep(result.failed), keep(result.skipped), result.parsing_errors, result.resources
        )

    return part("bundles"), part("planted")


def test_checkov_is_the_pinned_version(checkov_binary):
    out = subprocess.run(
        [str(checkov_binary), "--version"],
        capture_output=True,
        text=True,
        env=checkov.OFFLINE_ENV | {"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == pin("CHECKOV_VERSION")


def test_no_check_fails_on_any_stack_or_chart_scenario(rendered):
    bundles, _ = rendered
    assert not bundles.parsing_errors
    assert bundles.resources > 100
    assert not bundles.failed, "\n".join(
        f"{c['check_id']} {c['resource']} {c['file_path']}: {c['check_name']}" for c in bundles.failed
    )


def test_every_suppression_carries_its_documented_reason(rendered):
    bundles, _ = rendered
    assert not bundles.unreasoned_skips, bundles.unreasoned_skips
    assert {c["check_id"] for c in bundles.skipped} == DOCUMENTED_SKIPS


def test_a_planted_violation_fails_and_a_bare_suppression_is_reported(rendered):
    _, planted = rendered
    assert {(c["check_id"], c["resource"].rsplit(".", 1)[-1]) for c in planted.failed} >= {
        ("CKV_K8S_16", "planted-privileged")
    }
    assert [c["check_id"] for c in planted.unreasoned_skips] == ["CKV_K8S_15"]


def test_make_checkov_passes_over_every_stack_scenario_and_the_committed_export(checkov_binary):
    """docs/security.md's `make checkov`: rendered stacks and scenarios, then manifests/<env>/ as committed."""
    assert exported_envs() == stack_names(), "manifests/ lacks a stack: run `make export`"
    started = time.monotonic()
    proc = subprocess.run(["make", "checkov"], cwd=REPO_ROOT, capture_output=True, text=True)
    print(f"\nmake checkov: {time.monotonic() - started:.1f}s\n{proc.stdout[-600:]}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith(("stacks + chart scenarios", "manifests/"))]
    assert len(summary) == 2 and all(" 0 failed" in line and "(0 without a reason)" in line for line in summary), (
        summary
    )
