"""`python -m infra plan`: what an engineer reads before `pulumi up`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infra.core.paths import REPO_ROOT
from infra.core.stackfile import stack_names
from infra.sinks.helm import effective_values


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra", *args], cwd=REPO_ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("env", stack_names())
def test_plan_json_lists_every_variant_with_its_placement_and_budgets(env, stack_plans):
    proc = run_cli("plan", "--env", env, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    plan = stack_plans[env]
    assert set(summary["variants"]) == {r.variant for r in plan.releases}
    for release in plan.releases:
        s = summary["variants"][release.variant]
        assert s["pool"] == release.pool.name
        assert s["node_selector"] == release.pool.full_node_selector
        assert s["gpu"]["resource"] == release.pool.slice.resource_name and s["gpu"]["count"] == 1
        assert {"cpu", "memory", "ephemeral-storage"} <= set(s["resources"]["requests"])
        assert (
            s["vllm_args"][0] == effective_values(release.spec)["model"]["repository"]
            and "--runner=pooling" in s["vllm_args"]
        )
        assert s["probes"]["startup"]["window_s"] == release.sizing.startup_budget_seconds
        assert s["tolerations"] and s["resources"]["shm"]


def test_plan_text_shows_the_work():
    proc = run_cli("plan", "--env", "prod")
    assert proc.returncode == 0, proc.stderr
    for fragment in (
        "== retrieval",
        "nodeSelector:",
        "tolerations:",
        "requests:",
        "limits:",
        "/dev/shm:",
        "vllm serve jinaai/",
        "--gpu-memory-utilization=",
        "startup /health",
        "sizing:",
        "KV needed",
    ):
        assert fragment in proc.stdout, fragment


def test_unknown_stack_is_a_usage_error():
    proc = run_cli("plan", "--env", "nope")
    assert proc.returncode == 2 and "no stack file Pulumi.nope.yaml" in proc.stderr and "prod" in proc.stderr


def test_invalid_stack_config_is_a_usage_error_listing_every_problem(tmp_path):
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  jina-embeddings:namespace: Bad_NS\n  jina-embeddings:rollout: sideways\n"
    )
    proc = run_cli("plan", "--env", "broken", "--stack-dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    for key in ("jina-embeddings:namespace", "jina-embeddings:rollout", "jina-embeddings:pools"):
        assert key in proc.stderr


def test_a_variant_the_stack_does_not_enable_is_a_usage_error_without_traceback():
    proc = run_cli("smoke", "--env", "dev", "--variant", "nope")
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.strip()
        == "error: variant 'nope' is not enabled in stack dev; enabled: retrieval, text-matching, classification, clustering"
    )


def test_a_key_error_from_a_bug_is_not_disguised_as_bad_input(monkeypatch, capsys):
    from infra import cli
    from infra.cli import plan as plan_command

    def buggy(args):
        empty: dict[str, int] = {}
        return empty["missing"]

    monkeypatch.setattr(plan_command, "cmd_plan", buggy)
    with pytest.raises(KeyError):
        cli.main(["plan", "--env", "dev"])
