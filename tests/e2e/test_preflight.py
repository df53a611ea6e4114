"""`python -m infra preflight --env local` against the e2e tier's kwok cluster: each prerequisite taken away in
turn (a CRD, the metrics APIService, the pool's nodes, part of its GPUs, the Secret, the PriorityClass), the
exit code and the named finding, then put back and the check passes again.

The `local` stack renders only built-in kinds and creates its own PriorityClass and no Secret, so the test runs
it from a copy of Pulumi.local.yaml (--stack-dir) that also renders a ServiceMonitor and a PrometheusRule,
mounts an HF token Secret and names a PriorityClass it does not create. One cluster for the module (the
session's); objects are deleted and re-created, never the cluster.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import main
from infra.core.errors import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE
from infra.core.paths import REPO_ROOT
from infra.core.plan import build_for_env
from infra.core.simulation import simulated_nodes
from tests.e2e.kube import Cluster
from tests.unit.test_readme_commands import doc_commands

pytestmark = pytest.mark.e2e

HF_SECRET, PRIORITY_CLASS = "hf-token", "jina-embeddings-preflight"
CRD = "servicemonitors.monitoring.coreos.com"
METRICS_APISERVICE = "v1beta1.metrics.k8s.io"


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory) -> Path:
    """Pulumi.local.yaml plus monitoring, an HF token Secret and a PriorityClass the stack does not create."""
    stack = yaml.safe_load((REPO_ROOT / "Pulumi.local.yaml").read_text())
    stack["config"]["jina-embeddings:monitoring"] = {"serviceMonitor": True, "prometheusRule": True}
    stack["config"]["jina-embeddings:secrets"] = {"hfTokenSecretName": HF_SECRET}
    stack["config"]["jina-embeddings:priorityClass"] = {"create": False, "name": PRIORITY_CLASS}
    directory = tmp_path_factory.mktemp("preflight-stack")
    (directory / "Pulumi.local.yaml").write_text(yaml.safe_dump(stack))
    return directory


def preflight(cluster: Cluster, stack_dir: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """The command in this process (the same parser and code as `python -m infra`), its exit code and JSON."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            ["preflight", "--env", "local", "--stack-dir", str(stack_dir), "--kubeconfig", str(cluster.kubeconfig)]
            + ["--json", *extra]
        )
    return code, json.loads(out.getvalue())


def finding(report: dict[str, Any], check: str, subject: str) -> dict[str, Any]:
    matches = [f for f in report["findings"] if f["check"] == check and f["subject"] == subject]
    assert len(matches) == 1, f"no single {check} finding for {subject}: {report['findings']}"
    return matches[0]


def not_ok(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f["check"], f["subject"], f["status"]) for f in report["findings"] if f["status"] != "ok"]


def _saved(cluster: Cluster, *what: str) -> str:
    """An object as JSON that `kubectl create -f -` re-creates (no server-set metadata, no status)."""
    obj = json.loads(cluster.kubectl("get", *what, "-o", "json").stdout)
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        obj["metadata"].pop(key, None)
    obj.pop("status", None)
    return json.dumps(obj)


@contextlib.contextmanager
def taken_away(cluster: Cluster, *what: str, restore: str | None = None, ready: tuple[str, ...] = ()):
    """Delete an object for the block, then re-create it (`restore`: the manifest; default: as it was) and wait
    for `ready` (kubectl wait arguments)."""
    manifest = restore or _saved(cluster, *what)
    cluster.kubectl("delete", *what, "--wait=true")
    try:
        yield
    finally:
        cluster.kubectl("create", "-f", "-", input=manifest)
        if ready:
            cluster.kubectl("wait", *ready, "--timeout=120s")


@pytest.fixture(scope="module")
def prepared(e2e_cluster: Cluster, stack_dir: Path):
    """Everything the variant stack needs that the cluster lacks: its namespace (with the stack's Pod Security
    labels), the HF token Secret and the PriorityClass. Removed at the end."""
    plan = build_for_env("local", stack_dir)
    namespace = next(o for o in plan.platform if o["kind"] == "Namespace")
    cluster = e2e_cluster
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(namespace))
    cluster.kubectl("-n", plan.namespace, "create", "secret", "generic", HF_SECRET, "--from-literal=token=hf_test")
    cluster.kubectl("create", "priorityclass", PRIORITY_CLASS, "--value=1000")
    try:
        yield plan
    finally:
        cluster.kubectl("delete", "priorityclass", PRIORITY_CLASS, "--ignore-not-found")
        cluster.kubectl("delete", "namespace", plan.namespace, "--ignore-not-found", "--wait=true", "--timeout=180s")


def test_preflight_names_each_missing_prerequisite_and_passes_once_it_is_back(e2e_cluster, stack_dir, prepared):
    cluster, plan, t0 = e2e_cluster, prepared, time.monotonic()

    # All present: exit 0, every finding ok; the text form through the real entry point too.
    code, report = preflight(cluster, stack_dir)
    assert (code, not_ok(report)) == (EXIT_OK, []), report
    checks = {f["check"] for f in report["findings"]}
    assert {"crd", "metrics-api", "nodes", "capacity", "priority-class", "namespace", "secret"} <= checks
    assert finding(report, "capacity", "pool gpu-nvidia nvidia.com/gpu")["found"].startswith(
        "needs 3 at minReplicas, 4 at maxReplicas; 4 allocatable on 2 node(s)"
    )
    # The commands docs/operations.md shows, through the real entry point: the shipped `local` stack passes on the
    # cluster made for it; `prod` (MIG pools, KEDA, an API key Secret) does not, and says why.
    documented = [c for c in doc_commands() if c[:4] == [".venv/bin/python", "-m", "infra", "preflight"]]
    assert [c[4:] for c in documented] == [["--env", "local"], ["--env", "prod", "--sink", "gitops", "--json"]]
    runs = [
        subprocess.run(
            [sys.executable, *c[1:]], capture_output=True, text=True, cwd=REPO_ROOT, env=cluster.env, timeout=120
        )
        for c in documented
    ]
    assert runs[0].returncode == EXIT_OK, runs[0].stdout + runs[0].stderr
    assert "ok      metrics-api    metrics.k8s.io: v1beta1.metrics.k8s.io Available" in runs[0].stdout
    assert runs[1].returncode == EXIT_FAILED, runs[1].stdout + runs[1].stderr
    prod = json.loads(runs[1].stdout)
    # prod's pools are launched by Karpenter: no node yet is a warning there, not a failure
    assert finding(prod, "nodes", "pool gpu-h100-mig")["status"] == "warn"
    assert {(f["check"], f["subject"]) for f in prod["findings"] if f["status"] == "fail"} == {
        ("metrics-api", "external.metrics.k8s.io"),
        ("secret", "jina-embeddings-api-key"),
        ("storage-class", "efs-sc"),
    }, prod["findings"]
    assert finding(prod, "crd", "keda.sh/v1alpha1 ScaledObject")["status"] == "ok"

    # A CRD the stack renders.
    with taken_away(cluster, "crd", CRD, ready=("--for=condition=Established", f"crd/{CRD}")):
        code, report = preflight(cluster, stack_dir)
        assert code == EXIT_FAILED
        f = finding(report, "crd", "monitoring.coreos.com/v1 ServiceMonitor")
        assert f["status"] == "fail" and "kube-prometheus-stack" in f["fix"], f
        assert finding(report, "crd", "monitoring.coreos.com/v1 PrometheusRule")["status"] == "ok"
    assert preflight(cluster, stack_dir)[0] == EXIT_OK

    # The metrics API the CPU autoscalers read.
    with taken_away(
        cluster,
        "apiservice",
        METRICS_APISERVICE,
        ready=("--for=condition=Available", f"apiservice/{METRICS_APISERVICE}"),
    ):
        code, report = preflight(cluster, stack_dir)
        assert code == EXIT_FAILED
        f = finding(report, "metrics-api", "metrics.k8s.io")
        assert f["status"] == "fail" and "metrics-server" in f["fix"], f
    assert preflight(cluster, stack_dir)[0] == EXIT_OK

    # The NVIDIA pool's nodes: none at all, then one of two (half the GPUs: minReplicas no longer fit).
    nodes = {n["metadata"]["name"]: n for n in simulated_nodes(plan.config)}
    nvidia = sorted(n for n in nodes if n.startswith("gpu-nvidia-"))
    assert len(nvidia) == 2
    restore_all = "\n---\n".join(json.dumps(nodes[n]) for n in nvidia)
    with taken_away(
        cluster, "node", *nvidia, restore=restore_all, ready=("--for=condition=Ready", *(f"node/{n}" for n in nvidia))
    ):
        code, report = preflight(cluster, stack_dir)
        assert code == EXIT_FAILED
        f = finding(report, "nodes", "pool gpu-nvidia")
        assert f["status"] == "fail" and f["found"].startswith("no node carries -l"), f
        assert "pools.gpu-nvidia.nodeSelector" in f["fix"]
        assert finding(report, "nodes", "pool gpu-amd")["status"] == "ok"
    with taken_away(
        cluster,
        "node",
        nvidia[1],
        restore=json.dumps(nodes[nvidia[1]]),
        ready=("--for=condition=Ready", f"node/{nvidia[1]}"),
    ):
        code, report = preflight(cluster, stack_dir)
        assert code == EXIT_FAILED
        f = finding(report, "capacity", "pool gpu-nvidia nvidia.com/gpu")
        assert f["status"] == "fail" and "2 allocatable on 1 node(s)" in f["found"], f
        assert finding(report, "nodes", "pool gpu-nvidia")["status"] == "ok"
    assert preflight(cluster, stack_dir)[0] == EXIT_OK

    # The HF token Secret the pods mount, and the PriorityClass they name.
    secret = ("-n", plan.namespace, "secret", HF_SECRET)
    with taken_away(cluster, *secret):
        code, report = preflight(cluster, stack_dir)
        assert code == EXIT_FAILED
        f = finding(report, "secret", HF_SECRET)
        assert f["status"] == "fail" and f"create secret generic {HF_SECRET} --from-file=token=" in f["fix"], f
    with taken_away(cluster, "priorityclass", PRIORITY_CLASS):
        code, report = preflight(cluster, stack_dir)
        assert code == EXIT_FAILED
        f = finding(report, "priority-class", PRIORITY_CLASS)
        assert f["status"] == "fail" and "priorityClass.create: true" in f["fix"], f
    code, report = preflight(cluster, stack_dir)
    assert (code, not_ok(report)) == (EXIT_OK, [])
    print(
        f"\npreflight e2e: 6 prerequisites each taken away and put back, 13 preflight runs, in {time.monotonic() - t0:.1f}s"
    )


def test_preflight_exits_3_when_the_cluster_cannot_be_reached(e2e_cluster, stack_dir, tmp_path):
    config = yaml.safe_load(e2e_cluster.kubeconfig.read_text())
    for c in config["clusters"]:
        c["cluster"]["server"] = "https://127.0.0.1:1"  # nothing listens on port 1
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["preflight", "--env", "local", "--stack-dir", str(stack_dir), "--kubeconfig", str(kubeconfig)])
    assert code == EXIT_UNREACHABLE, out.getvalue() + err.getvalue()
    assert "cluster unreachable" in err.getvalue()
