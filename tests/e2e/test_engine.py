"""The real Pulumi engine on the `local` stack against the e2e session's kwok cluster (tests/e2e/conftest.py).

`python -m infra engine` runs the pinned `pulumi` CLI and pulumi-resource-kubernetes; the program is served
inline by the Automation API because the Python language host cannot be built here (infra/sinks/pulumi/engine.py). The
tests run in file order on one stack: invalid config first (it must create nothing), then preview, up, a
second up, live objects against the GitOps export, a config change, the policy pack blocking a bad
program, and destroy. Each has its own project copy, state backend and Pulumi home (tests/e2e/pulumi_engine.py).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from infra.core.paths import REPO_ROOT
from infra.core.plan import build_for_env
from tests.conftest import type_token
from tests.e2e.kube import objects_in
from tests.e2e.privileged_program import NAME as PRIVILEGED
from tests.e2e.pulumi_engine import (
    POLICY_PACK,
    Engine,
    chart_children,
    expected_resources,
)
from tests.unit.pulumi_program_harness import PLAINTEXT

pytestmark = pytest.mark.e2e
ENV = "local"


@pytest.fixture(scope="module")
def cluster(e2e_cluster, plan):
    """The session's cluster, once the previous module's stack is gone (a cluster of its own cost ~40 s more)."""
    e2e_cluster.kubectl("wait", "--for=delete", f"namespace/{plan.namespace}", "--timeout=180s", check=False)
    return e2e_cluster


@pytest.fixture(scope="module")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="jina-engine-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def engine(cluster, workdir):
    """The `local` stack's engine; destroyed at the end of the module whatever happened."""
    e = Engine(cluster, workdir / "main")
    yield e
    # a test failed before test_destroy_leaves_nothing_behind: remove what the stack made (the cluster goes anyway)
    if e.pulumi("stack", "ls", "--json", check=False).stdout.count('"name"') and e.state():
        e.run("destroy", "--yes")


@pytest.fixture(scope="module")
def plan():
    return build_for_env(ENV)


def cluster_objects(cluster, plan) -> dict[str, str]:
    """What of the stack is in the cluster: its namespace and the cluster-scoped PriorityClass."""
    found = {}
    for kind, name in (("namespace", plan.namespace), ("priorityclass", plan.config.priority_class.name)):
        found[kind] = cluster.kubectl("get", kind, name, "--ignore-not-found", "-o", "name").stdout.strip()
    return found


def test_invalid_stack_config_fails_before_any_resource_is_created(cluster, workdir, plan):
    bad = Engine(cluster, workdir / "invalid")

    def break_config(config):
        config["jina-embeddings:replicaz"] = 3  # a typo of a key
        config["jina-embeddings:variants"]["retrieval"]["pool"] = "gpu-h200"  # not a pool of the stack

    bad.edit_stack_file(break_config)
    run = bad.run("up", "--yes", "--policy-pack", str(POLICY_PACK))
    assert run.proc.returncode == 1, run.log
    assert "stack 'local' has 2 invalid config value(s); nothing was planned or applied" in run.log, run.log
    for problem in (
        "jina-embeddings:replicaz = '3': unknown key",
        "fix: pulumi config rm 'jina-embeddings:replicaz'",
        "jina-embeddings:variants.retrieval.pool = 'gpu-h200': is not a pool of this stack",
        "fix: pulumi config set --path 'jina-embeddings:variants.retrieval.pool'",
    ):
        assert problem in run.log, f"{problem!r} missing from:\n{run.log}"
    # only the stack itself (the root component every update registers) made it into the state
    assert [r["type"] for r in bad.state()] in ([], ["pulumi:pulumi:Stack"])
    assert run.steps("create") <= {("pulumi:pulumi:Stack", "jina-embeddings-local")}
    assert cluster_objects(cluster, plan) == {"namespace": "", "priorityclass": ""}


def test_preview_lists_every_create_and_passes_the_policy_pack(engine, plan):
    run = engine.run("preview", "--diff", "--policy-pack", str(POLICY_PACK))
    assert run.proc.returncode == 0, run.log
    expected = expected_resources(plan)
    assert run.steps("create") == expected, (
        f"missing: {sorted(expected - run.steps('create'))}\nunexpected: {sorted(run.steps('create') - expected)}"
    )
    assert run.steps() == expected  # nothing but creates
    assert run.report["changes"] == {"create": len(expected)}
    kinds = {t.rsplit(":", 1)[1] for t, _ in expected}
    assert {
        "Namespace",
        "ServiceAccount",
        "PriorityClass",
        "NetworkPolicy",
        "Chart",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    } <= kinds
    assert run.report["policy"] == [], run.report["policy"]  # no mandatory and no advisory violation
    # the pack ran: "<name>|local|<path>" -> the version from PulumiPolicy.yaml
    assert {k.split("|")[0]: v for k, v in run.report["policy_packs"].items()} == {"jina-embeddings-bundle": "0.1.0"}


def test_up_converges_with_every_deployment_available(engine, cluster, plan):
    run = engine.run("up", "--yes", "--policy-pack", str(POLICY_PACK))
    assert run.proc.returncode == 0, run.log
    assert run.report["changes"] == {"create": len(expected_resources(plan))}
    assert run.report["policy"] == []
    assert set(run.report["outputs"]["variants"]) == {r.variant for r in plan.releases}
    state = {(r["type"], r["urn"].rsplit("::", 1)[-1]): r for r in engine.state()}
    for release in plan.releases:
        name = f"{release.variant}-chart:{plan.namespace}/{release.name}"
        # the provider's await (pulumi-kubernetes pkg/await/deployment.go): the new ReplicaSet's pods Ready
        assert re.search(rf"Deployment {re.escape(name)} .*Deployment initialization complete", run.log), (
            f"no await for {name}:\n{run.log}"
        )
        # the VariantRelease transform reached the chart's child: its rollout budget, not the 10-minute default
        budget = release.spec.rollout_await_seconds  # seconds; the state keeps custom timeouts as numbers
        timeouts = state["kubernetes:apps/v1:Deployment", name].get("customTimeouts")
        assert timeouts == {"create": budget, "update": budget}, (name, timeouts)
        # read right after `up` returned, without waiting: the pods are there and Ready
        live = json.loads(cluster.kubectl("-n", plan.namespace, "get", "deployment", release.name, "-o", "json").stdout)
        assert {c["type"]: c["status"] for c in live["status"]["conditions"]}["Available"] == "True", release.name
        assert live["status"].get("readyReplicas", 0) >= 1 and live["status"].get("updatedReplicas", 0) >= 1, (
            release.name,
            live["status"],
        )


def test_second_up_changes_nothing(engine, plan, workdir):
    run = engine.run("up", "--yes", "--policy-pack", str(POLICY_PACK))
    assert run.proc.returncode == 0, run.log
    assert run.report["changes"] == {"same": len(expected_resources(plan))}, run.report["changes"]
    assert set(run.ops().values()) == {"same"}, {n: op for n, op in run.ops().items() if op != "same"}
    # Provider steps are left out above: the chart's children are registered by the provider itself, through
    # the unversioned default provider on their first create; the next update moves them to the program's
    # default_4_25_0 and deletes the unused `default` provider from the state. No object is touched.
    provider_steps = [
        (s["op"], s["urn"].rsplit("::", 1)[-1])
        for s in run.report["steps"]
        if s["type"].startswith("pulumi:providers:") and s["op"] != "same"
    ]
    assert provider_steps in ([], [("delete", "default")]), provider_steps
    again = engine.run("preview")
    assert again.report["changes"] == {"same": len(expected_resources(plan))} and set(again.ops().values()) == {"same"}
    assert not [s for s in again.report["steps"] if s["op"] != "same"], again.report["steps"]

    # Another checkout at another path (a teammate's clone, a CI runner) sees no change either: the state
    # keeps no absolute path of the program or chart that a diff would compare.
    clone = workdir / "another-clone"
    clone.mkdir()
    for name in ("infra", "charts", "bench"):  # the program, the chart, the measured sizing figures
        shutil.copytree(REPO_ROOT / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "Pulumi.yaml", clone)
    shutil.copy(engine.stack_file, clone)
    elsewhere = engine.run(
        "preview", cwd=clone, project=clone
    )  # `python -m infra` from the clone: its program and chart
    assert elsewhere.proc.returncode == 0, elsewhere.log
    assert set(elsewhere.ops().values()) == {"same"}, {n: op for n, op in elsewhere.ops().items() if op != "same"}


def test_live_objects_equal_the_gitops_export(engine, cluster):
    diff = cluster.kubectl("diff", "--server-side", "-k", str(REPO_ROOT / "manifests" / ENV), check=False)
    assert diff.returncode == 0 and diff.stdout == "", (
        f"kubectl diff --server-side (exit {diff.returncode}):\n{diff.stdout[-6000:]}\n{diff.stderr[-3000:]}"
    )
    # ... and the same set of objects: nothing only in the export, nothing only in the stack
    exported = {(type_token(o), o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects_in(ENV)}
    deployed = {
        (r["type"], r["outputs"]["metadata"].get("namespace", ""), r["outputs"]["metadata"]["name"])
        for r in engine.state()
        if r["type"].startswith("kubernetes:") and r["type"] != "kubernetes:helm.sh/v4:Chart"
    }
    assert deployed == exported, (
        f"only in the stack: {sorted(deployed - exported)}\nonly in the export: {sorted(exported - deployed)}"
    )


def test_config_change_previews_exactly_the_expected_diff(engine, plan):
    original = engine.stack_file.read_text()

    def change(config):
        config["jina-embeddings:variants"]["clustering"]["enabled"] = False
        config["jina-embeddings:variants"]["text-matching"]["replicas"] = 2

    engine.edit_stack_file(change)
    try:
        changed = build_for_env(ENV, engine.project)
        run = engine.run("preview", "--diff")
    finally:
        engine.stack_file.write_text(original)
    assert run.proc.returncode == 0, run.log
    before, after = expected_resources(plan), expected_resources(changed)
    manifests_before = {k: o for r in plan.releases for k, o in chart_children(r).items()}
    manifests_after = {k: o for r in changed.releases for k, o in chart_children(r).items()}
    changed_objects = {
        k for k in manifests_before.keys() & manifests_after.keys() if manifests_before[k] != manifests_after[k]
    }
    assert before - after >= {
        ("jina-embeddings:variant:VariantRelease", "clustering"),
        ("kubernetes:apps/v1:Deployment", f"clustering-chart:{plan.namespace}/jina-embeddings-clustering"),
    }
    assert changed_objects == {
        ("kubernetes:apps/v1:Deployment", f"text-matching-chart:{plan.namespace}/jina-embeddings-text-matching")
    }
    assert run.steps("delete") == before - after
    assert run.steps("create") == after - before  # text-matching gains a PodDisruptionBudget at 2 replicas
    assert run.steps("update") == changed_objects
    assert run.steps("replace", "create-replacement", "delete-replaced") == set()
    update = next(s for s in run.report["steps"] if s["op"] == "update")
    assert update["diffs"] == ["spec.replicas"], update  # the provider's detailed diff: replicas 1 -> 2, nothing else
    assert run.report["changes"] == {
        k: v
        for k, v in {
            "delete": len(before - after),
            "create": len(after - before),
            "update": 1,
            "same": len(before & after) - 1,
        }.items()
        if v
    }


def test_policy_pack_blocks_a_privileged_workload(cluster, workdir):
    probe = Engine(cluster, workdir / "policy-probe")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.e2e.privileged_program", str(probe.project)],
        cwd=REPO_ROOT,
        env=probe.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["result"] == "failed", proc.stdout + proc.stderr
    blocked = [(p["policy"], p["level"]) for p in report["policy"]]
    assert ("jina-embeddings-bundle/pod-security-restricted", "mandatory") in blocked, report["policy"]
    assert any("privileged" in p["message"] for p in report["policy"]), report["policy"]
    # the violation stopped the update before the Deployment was created
    assert (
        cluster.kubectl("-n", "default", "get", "deployment", PRIVILEGED, "--ignore-not-found", "-o", "name").stdout
        == ""
    )
    assert [r["type"] for r in probe.state() if r["type"].startswith("kubernetes:")] == []


def test_destroy_leaves_nothing_behind(engine, cluster, plan):
    run = engine.run("destroy", "--yes")
    assert run.proc.returncode == 0, run.log
    assert run.report["changes"] == {"delete": len(expected_resources(plan))}
    assert engine.state() == []
    assert cluster_objects(cluster, plan) == {"namespace": "", "priorityclass": ""}
    leftovers = cluster.kubectl(
        "get",
        "all,networkpolicies,poddisruptionbudgets,serviceaccounts,configmaps,secrets",
        "--all-namespaces",
        "-l",
        "app.kubernetes.io/part-of=jina-embeddings",
        "-o",
        "name",
    ).stdout
    assert leftovers == "", leftovers


# ---------------------------------------------------------------------------------------------
# docs/configuration.md, "Deploying with Pulumi": its commands, in order, on the local cluster
# ---------------------------------------------------------------------------------------------

# How each command of that section runs here. `pulumi preview` and `pulumi up` need the Python language host,
# which this toolchain cannot build: they run as `python -m infra engine preview|up` (same CLI, provider,
# state and stack file). Everything else is the `pulumi` CLI itself, or git.
README_COMMANDS_HERE = {
    "make venv": "the test's own interpreter is the venv",
    "pulumi login": "pulumi login file://<temp state>",
    "pulumi stack select": "pulumi stack select --create local",
    "pulumi config set": "kubernetes:context <this cluster's context>; --secret hfToken and apiKey from stdin",
    "export KUBECONFIG": "the cluster's KUBECONFIG is in the environment",
    "pulumi preview": "python -m infra engine preview --diff",
    "pulumi up": "python -m infra engine up --yes",
    "pulumi stack output": "pulumi stack output --json; pulumi stack output curl",
    "pulumi stack history": "pulumi stack history",
    "git log": "git log --oneline -- Pulumi.local.yaml",
    "git show": "git show HEAD:Pulumi.local.yaml > <project copy>/Pulumi.local.yaml",
    "pulumi destroy": "pulumi destroy --yes",
    "pulumi stack rm": "pulumi stack rm --preserve-config local --yes",
}
# the unit tests' fake secrets (allowlisted by the repository's secret scan, infra/checks/policy/secrets.py)
HF_TOKEN, API_KEY = PLAINTEXT["jina-embeddings:hfToken"], PLAINTEXT["jina-embeddings:apiKey"]


def readme_command_keys() -> set[str]:
    from tests.unit.test_readme_pulumi import section_commands

    keys = set()
    for c in section_commands():
        if c[0] == "export":
            keys.add(f"export {c[1].split('=')[0]}")
        elif c[0] == "pulumi" and c[1] in ("stack", "config"):
            keys.add(" ".join(c[:3]))
        else:
            keys.add(" ".join(c[:2]))
    return keys


def test_readme_commands_for_a_real_cluster_run_here(cluster, workdir, plan):
    assert readme_command_keys() == set(README_COMMANDS_HERE), (
        "docs/configuration.md's Pulumi section changed: map its commands here"
    )
    e = Engine(cluster, workdir / "readme")
    state_url = e.env.pop("PULUMI_BACKEND_URL")  # the page logs in instead
    e.pulumi("login", state_url)
    e.pulumi("stack", "select", "--create", ENV)
    context = cluster.kubectl("config", "current-context").stdout.strip()
    e.pulumi("config", "set", "kubernetes:context", context)
    e.pulumi("config", "set", "--secret", "jina-embeddings:hfToken", input=HF_TOKEN)
    e.pulumi("config", "set", "--secret", "jina-embeddings:apiKey", input=API_KEY)
    stack_file = e.stack_file.read_text()
    assert HF_TOKEN not in stack_file and API_KEY not in stack_file and stack_file.count("secure: v1:") == 2, stack_file

    preview = e.run("preview", "--diff")
    assert preview.proc.returncode == 0, preview.log
    with_secrets = build_for_env(ENV, e.project)
    assert preview.steps("create") == expected_resources(with_secrets)
    up = e.run("up", "--yes")
    assert up.proc.returncode == 0, up.log
    for secret, plaintext in (
        (with_secrets.config.secrets.hf_token_secret_name, HF_TOKEN),
        (with_secrets.config.secrets.api_key_secret_name, API_KEY),
    ):
        live = json.loads(cluster.kubectl("-n", plan.namespace, "get", "secret", secret, "-o", "json").stdout)
        assert [base64.b64decode(v).decode() for v in live["data"].values()] == [plaintext], secret
    exported_state = e.pulumi("stack", "export").stdout
    assert HF_TOKEN not in exported_state and API_KEY not in exported_state, "a secret is in the state in plain text"
    outputs = json.loads(e.pulumi("stack", "output", "--json").stdout)
    assert outputs["namespace"] == plan.namespace and set(outputs["variants"]) == {r.variant for r in plan.releases}
    curl = e.pulumi("stack", "output", "curl").stdout
    assert "/v1/embeddings" in curl and "Authorization: Bearer $(kubectl" in curl and API_KEY not in curl, curl
    assert "succeeded" in e.pulumi("stack", "history").stdout

    # Roll back to the committed config (no secrets): the Secrets go, the charts read the named Secrets again.
    git = lambda *args: subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout  # noqa: E731
    assert git("log", "--oneline", "--", f"Pulumi.{ENV}.yaml").strip(), "Pulumi.local.yaml has no history"
    e.stack_file.write_text(git("show", f"HEAD:Pulumi.{ENV}.yaml"))
    rollback = e.run("preview", "--diff")
    assert rollback.proc.returncode == 0, rollback.log
    assert rollback.steps("delete") == {
        ("jina-embeddings:secrets:StackSecrets", "secrets"),
        ("kubernetes:core/v1:Secret", f"secrets-{with_secrets.config.secrets.hf_token_secret_name}"),
        ("kubernetes:core/v1:Secret", f"secrets-{with_secrets.config.secrets.api_key_secret_name}"),
    }
    assert e.run("up", "--yes").proc.returncode == 0

    e.pulumi("destroy", "--yes")  # the plain CLI: destroy needs no program, so no language host
    assert cluster_objects(cluster, plan) == {"namespace": "", "priorityclass": ""}
    e.pulumi("stack", "rm", "--preserve-config", ENV, "--yes")
    assert ENV not in e.pulumi("stack", "ls", "--json").stdout and e.stack_file.exists()
