"""The runbook pages of the `local` stack (docs/runbooks/local/), run: every command block of every page,
exactly as the page shows it, against the e2e tier's kwok cluster with manifests/local applied.

Each block runs in its own `bash -e -o pipefail` (a block stands alone, see infra/sinks/runbook_templates/
_macros.md.j2), from the repository root, with KUBECONFIG pointing at the e2e cluster, `$POD` set to a live pod
of the first variant (the alert's `pod` label) and TMPDIR in the test's own directory. A block that exits
non-zero fails the test; so does one that leaves a process behind (a port-forward that is not stopped): the
block runs in a session of its own and no process of that session may outlive it. The blocks marked
`not run in e2e` are listed and asserted below: few, each with its reason.

What kwok does not have, the test gives it, as a real cluster would have it: a Prometheus (the real
`prometheus` server of the toolchain, on 127.0.0.1) behind a `prometheus-operated` Service in `monitoring`,
reached through kwok's ClusterPortForward; an HTTP server standing in for vLLM's port 8000; and container logs
(kwok's ClusterLogs, in the CRI log format kubelets write). tools/cluster.sh enables both kwok CRDs.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from infra.core.paths import REPO_ROOT
from infra.sinks.helm import TOOLS_DIR
from infra.sinks.runbooks import RUNBOOKS_DIR, command_blocks
from tests.conftest import free_port
from tests.e2e.kube import Cluster, deployment_settled, pods_of, wait_until

pytestmark = pytest.mark.e2e
ENV = "local"
PAGES = RUNBOOKS_DIR / ENV
# Local ports the pages forward to (fixed in the pages, so an operator can copy them): they must be free here.
PAGE_PORTS = (9090, 18999)
SMOKE_SKIP = "its checks compare the real model's vectors"
PULUMI_SKIP = "changes git and runs `pulumi up`"
# RequestBacklog's mitigation raises the autoscalers' floors and leaves a replica Pending: it runs last.
LAST = "JinaEmbeddingsRequestBacklog.md"


def cri_log(*lines: str) -> str:
    """Lines in the CRI log format (kubelet's container log files), which kwok's ClusterLogs serves."""
    return "".join(f"2026-01-01T00:00:{i:02d}.000000000Z stdout F {line}\n" for i, line in enumerate(lines))


class _Health(http.server.BaseHTTPRequestHandler):
    """Port 8000 of every serving pod: vLLM's /health answers 200 with an empty body."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _apply(cluster: Cluster, objects: list[dict]) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))


@pytest.fixture(scope="module")
def stand_ins(local_stack, e2e_cluster, tmp_path_factory) -> Iterator[None]:
    """Prometheus, the vLLM port and the container logs, for the pages' commands (module docstring)."""
    for port in PAGE_PORTS:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"127.0.0.1:{port} is taken; the runbooks forward to it"
    work = tmp_path_factory.mktemp("runbook-stand-ins")
    (work / "vllm.log").write_text(cri_log("INFO Starting vLLM API server 0.32.0 on http://0.0.0.0:8000"))
    (work / "vllm-previous.log").write_text(cri_log("ERROR EngineCore failed", "INFO shutting down"))
    health = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=health.serve_forever, daemon=True).start()
    prom_port = free_port()
    (work / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "scrape_configs": [
                    {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{prom_port}"]}]}
                ]
            }
        )
    )
    prometheus = subprocess.Popen(
        [
            str(TOOLS_DIR / "bin" / "prometheus"),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "prometheus.log", "w"),
    )
    monitoring = local_stack.config.network.prometheus_namespace
    labels = {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": "k8s"}
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": monitoring}},
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "Prometheus",
            "metadata": {"name": "k8s", "namespace": monitoring},
            "spec": {"serviceMonitorSelector": {}, "serviceMonitorNamespaceSelector": {}},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "prometheus-k8s-0", "namespace": monitoring, "labels": labels},
            "spec": {
                "containers": [
                    {"name": "prometheus", "image": "quay.io/prometheus/prometheus", "ports": [{"containerPort": 9090}]}
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "prometheus-operated", "namespace": monitoring},
            "spec": {"selector": labels, "ports": [{"name": "web", "port": 9090, "targetPort": 9090}]},
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterPortForward",
            "metadata": {"name": "runbooks-prometheus"},
            "spec": {
                "selector": {"matchNamespaces": [monitoring]},
                "forwards": [{"ports": [9090], "target": {"address": "127.0.0.1", "port": prom_port}}],
            },
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterPortForward",
            "metadata": {"name": "runbooks-vllm"},
            "spec": {
                "selector": {"matchNamespaces": [local_stack.namespace]},
                "forwards": [{"ports": [8000], "target": {"address": "127.0.0.1", "port": health.server_address[1]}}],
            },
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "runbooks-vllm"},
            "spec": {
                "selector": {"matchNamespaces": [local_stack.namespace]},
                "logs": [
                    {
                        "containers": ["vllm"],
                        "logsFile": str(work / "vllm.log"),
                        "previousLogsFile": str(work / "vllm-previous.log"),
                    }
                ],
            },
        },
    ]
    try:
        _apply(e2e_cluster, objects)
        e2e_cluster.kubectl("-n", monitoring, "wait", "--for=condition=Ready", "pod/prometheus-k8s-0", "--timeout=120s")
        wait_until(lambda: _ready(prom_port), 60, "the prometheus server ready")
        yield
    finally:
        e2e_cluster.kubectl(
            "delete", "-f", "-", "--ignore-not-found", "--wait=false", input=yaml.safe_dump_all(objects), check=False
        )
        prometheus.terminate()
        prometheus.wait(30)
        health.shutdown()


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def session_processes(sid: int) -> list[str]:
    """Command lines of the live processes of session `sid` (what a block started and left running)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: the session id
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def run_block(cluster: Cluster, code: str, pod: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {
        **cluster.env,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(TOOLS_DIR / "bin"), os.environ["PATH"]]),
        "KUBECONFIG": str(cluster.kubeconfig),
        "POD": pod,
        "TMPDIR": str(tmp),
    }
    # Output to a file, not a pipe: a process the block leaves behind would hold a pipe open (and the wait with it).
    log = tmp / "block.log"
    with open(log, "w") as out_file:
        proc = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", code],
            cwd=REPO_ROOT,
            env=env,
            stdout=out_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.wait(timeout=600)
    out = log.read_text()
    time.sleep(0.2)  # a killed port-forward gets a moment to exit
    left = session_processes(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)  # the session's id is its leader's pid, the bash that has exited
    assert not left, f"the block left processes running: {left}\n--- block:\n{code}\n--- output:\n{out}"
    # A selector that matches nothing: `kubectl get -l` says so and exits 0. Only a field selector (the events of a
    # reason, Pending pods) may legitimately find nothing, so the check applies to blocks without one.
    if "No resources found" in out and " -l " in code and "--field-selector" not in code:
        raise AssertionError(f"a command found no object:\n{code}\n--- output:\n{out}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def test_a_block_that_leaves_a_process_running_fails(e2e_cluster, tmp_path):
    """The check above can fail: a background process never stopped, as the pages' port-forwards were."""
    code = "sleep 120 &\nkubectl -n default get svc/kubernetes"
    with pytest.raises(AssertionError, match="left processes running: .*sleep 120"):
        run_block(e2e_cluster, code, "", tmp_path)


def test_a_block_whose_selector_matches_nothing_fails(e2e_cluster, tmp_path):
    with pytest.raises(AssertionError, match="found no object"):
        run_block(e2e_cluster, "kubectl -n default get pods -l app.kubernetes.io/name=no-such-app", "", tmp_path)


def a_live_pod(cluster: Cluster, namespace: str, release_name: str) -> str:
    pods = wait_until(
        lambda: [p for p in pods_of(cluster, namespace, release_name) if p.status.phase == "Running"],
        120,
        f"a running pod of {release_name}",
    )
    return pods[0].metadata.name


def new_revision(cluster: Cluster, plan) -> None:
    """What VariantUnavailable's rollback assumes: a rollout happened, so each Deployment has a revision to go
    back to."""
    for release in plan.releases:
        cluster.kubectl(
            "-n", plan.namespace, "patch", f"deploy/{release.name}", "--type", "merge",
            "-p", '{"spec":{"template":{"metadata":{"annotations":{"runbook-test/rollout":"2"}}}}}',
        )  # fmt: skip
    for release in plan.releases:
        wait_until(lambda: deployment_settled(cluster, plan.namespace, release.name), 180, f"{release.name} rolled out")


def test_every_command_of_the_local_runbooks_runs(local_stack, e2e_cluster, stand_ins, tmp_path):
    started = time.monotonic()
    pages = sorted(PAGES.glob("JinaEmbeddings*.md"), key=lambda p: (p.name == LAST, p.name))
    assert len(pages) >= 10, f"only {len(pages)} pages under {PAGES}: does the local stack still have alerts?"
    first = local_stack.releases[0]
    ran, skipped = 0, []
    for page in pages:
        if page.name == "JinaEmbeddingsVariantUnavailable.md":
            new_revision(e2e_cluster, local_stack)
        for n, block in enumerate(command_blocks(page.read_text())):
            where = f"{page.relative_to(REPO_ROOT)}, block {n + 1}"
            if block.skip:
                skipped.append((page.name, block.skip))
                continue
            pod = a_live_pod(e2e_cluster, local_stack.namespace, first.name)
            proc = run_block(e2e_cluster, block.code, pod, tmp_path)
            assert proc.returncode == 0, (
                f"{where} exited {proc.returncode}:\n{block.code}\n--- output:\n{proc.stdout[-4000:]}"
            )
            ran += 1
    # The blocks not run here: the smoke test (every page ends with it) and Pulumi's rollback; nothing else.
    reasons = {reason for _, reason in skipped}
    assert {r for r in reasons if not r.startswith((SMOKE_SKIP, PULUMI_SKIP))} == set(), reasons
    assert [p for p, r in skipped if r.startswith(SMOKE_SKIP)] == [p.name for p in pages], skipped
    assert [p for p, r in skipped if r.startswith(PULUMI_SKIP)] == ["JinaEmbeddingsVariantUnavailable.md"], skipped
    assert ran >= 30, f"only {ran} blocks ran"
    print(
        f"\nran {ran} runbook blocks of {len(pages)} pages ({len(skipped)} not run) in {time.monotonic() - started:.1f}s"
    )


def blocks_of(env: str, page: str, needle: str) -> list[str]:
    """The command blocks of docs/runbooks/<env>/<page> that contain `needle` and are not marked `not run in e2e`."""
    blocks = [
        b.code for b in command_blocks((RUNBOOKS_DIR / env / page).read_text()) if needle in b.code and not b.skip
    ]
    assert blocks, f"{env}/{page}: no block to run with {needle!r}"
    return blocks


def test_the_weights_job_block_replaces_the_job(local_stack, e2e_cluster, tmp_path):
    """prod's weights Job (weights.source: pvc; local has none): its page's block deletes the finished Job and
    creates it again from manifests/prod, and the new one completes. The PersistentVolume is the stand-in for
    prod's EFS volume: only the claim's binding matters here. prod's namespace is local's, so the Job finds
    the ServiceAccount and PriorityClass it names."""
    started = time.monotonic()
    weights = REPO_ROOT / "manifests" / "prod" / "weights"
    (job_file,) = weights.glob("job-*.yaml")
    job = yaml.safe_load(job_file.read_text())
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    assert namespace == local_stack.namespace, "prod's Job is tried in the local stack's namespace"
    claim = yaml.safe_load((weights / "persistentvolumeclaim-jina-embeddings-weights.yaml").read_text())
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "runbooks-weights"},
        "spec": {
            "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
            "accessModes": claim["spec"]["accessModes"],
            "storageClassName": claim["spec"].get("storageClassName", ""),
            "hostPath": {"path": str(tmp_path)},
        },
    }
    try:
        _apply(e2e_cluster, [volume, claim, job])
        e2e_cluster.kubectl("-n", namespace, "wait", "--for=condition=Complete", f"job/{name}", "--timeout=180s")
        first_uid = e2e_cluster.kubectl("-n", namespace, "get", f"job/{name}", "-o", "jsonpath={.metadata.uid}").stdout
        (block,) = blocks_of("prod", "JinaEmbeddingsVariantUnavailable.md", f"delete job/{name}")
        proc = run_block(e2e_cluster, block, "", tmp_path)
        assert proc.returncode == 0, f"{block}\n--- output:\n{proc.stdout[-4000:]}"
        assert "field is immutable" not in proc.stdout, proc.stdout
        after = yaml.safe_load(e2e_cluster.kubectl("-n", namespace, "get", f"job/{name}", "-o", "yaml").stdout)
        assert after["metadata"]["uid"] != first_uid, "the Job was not replaced"
        assert any(c["type"] == "Complete" and c["status"] == "True" for c in after["status"]["conditions"]), after
    finally:
        e2e_cluster.kubectl(
            "-n", namespace, "delete", f"job/{name}", "pvc/jina-embeddings-weights", "--ignore-not-found", check=False
        )
        e2e_cluster.kubectl("delete", "pv/runbooks-weights", "--ignore-not-found", "--wait=false", check=False)
    print(f"\nweights Job replaced by its runbook block in {time.monotonic() - started:.1f}s")


@pytest.mark.parametrize(
    ("env", "kind", "field", "paused", "resumed"),
    [
        ("prod", "Application", "{.spec.syncPolicy.automated.enabled}", "false", "true"),
        ("prod-amd", "Kustomization", "{.spec.suspend}", "true", "false"),
    ],
)
def test_the_gitops_pause_and_resume_blocks(e2e_cluster, tmp_path, env, kind, field, paused, resumed):
    """The pause before a kubectl change and the resume after it, for the stacks Argo CD (prod) and Flux
    (prod-amd) deploy, on their exported objects (manifests/<env>/gitops/; no controller runs here, only the
    objects' fields are checked)."""
    gitops = [yaml.safe_load(p.read_text()) for p in sorted((REPO_ROOT / "manifests" / env / "gitops").glob("*.yaml"))]
    target = next(o for o in gitops if o["kind"] == kind)
    ref = (target["metadata"]["namespace"], f"{target['kind'].lower()}/{target['metadata']['name']}")
    names = sorted({o["metadata"]["namespace"] for o in gitops})
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in names]
    try:
        _apply(e2e_cluster, namespaces + gitops)
        page = "JinaEmbeddingsVariantUnavailable.md"
        pause, resume = blocks_of(env, page, f"patch {ref[1]}")
        for block, want in ((pause, paused), (resume, resumed)):
            proc = run_block(e2e_cluster, block, "", tmp_path)
            assert proc.returncode == 0, f"{block}\n--- output:\n{proc.stdout[-4000:]}"
            for other in (o for o in gitops if o["kind"] == kind):  # every Kustomization of the chain, not one
                name = f"{kind.lower()}/{other['metadata']['name']}"
                got = e2e_cluster.kubectl("-n", ref[0], "get", name, "-o", f"jsonpath={field}").stdout
                assert got == want, f"{env}: {name} {field} is {got!r} after\n{block}"
    finally:
        e2e_cluster.kubectl("delete", "namespace", *names, "--ignore-not-found", "--timeout=180s", check=False)
