"""The e2e tier's own local control plane, and the few helpers the tests drive it with.

`start_cluster` brings up a kwok cluster (tools/cluster.sh: real kube-apiserver, etcd, scheduler,
controller-manager and metrics-server on 127.0.0.1; kwok plays the kubelets) under its own name and
kubeconfig, with node pools made from a stack (`python -m infra cluster-nodes`) and every CRD the bundle
can render (`tools/cluster.sh crds`). Nothing here touches another cluster: every kubectl call gets the
e2e cluster's kubeconfig explicitly, and the process environment is never changed (other e2e tests, e.g.
the Pulumi engine's, run against their own cluster in the same session).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import yaml
from kubernetes import client, config

from infra.core.paths import REPO_ROOT
from infra.core.plan import Plan, build_for_env
from infra.sinks.helm import TOOLS_DIR, effective_values

# BUNDLE_E2E_CLUSTER lets two checkouts run the e2e tier side by side, each with a cluster of its own.
# One cluster per pytest-xdist worker (`make test` runs TEST_JOBS of them): gw0, gw1, ... get jina-e2e-gw0, ...
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
CLUSTER_NAME = os.environ.get("BUNDLE_E2E_CLUSTER", "jina-e2e") + (f"-{_WORKER}" if _WORKER else "")
CLUSTER_SH = REPO_ROOT / "tools" / "cluster.sh"
# A second session waits this long for the first one's cluster to go (they would share its name).
LOCK_WAIT_S = 20 * 60
T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 1.0) -> T:
    """Poll `condition` until it returns something truthy and return that; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {value!r})")
        time.sleep(interval)


@dataclass
class Cluster:
    """A running kwok cluster: kubectl, `python -m infra` and the Python client, all pointed at it."""

    name: str
    kubeconfig: Path
    env: dict[str, str]  # for subprocesses: PATH with the pinned tools first, KUBECONFIG, BUNDLE_CLUSTER_NAME
    api: Any  # kubernetes.client.ApiClient

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            env=self.env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def infra(self, *args: str) -> subprocess.CompletedProcess:
        """`python -m infra ARGS` with this cluster's environment."""
        return subprocess.run(
            [sys.executable, "-m", "infra", *args],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=self.env,
            timeout=120,
        )

    def new_api(self) -> Any:
        """A fresh ApiClient (one per thread for background samplers)."""
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    @property
    def core(self):
        return client.CoreV1Api(self.api)

    @property
    def apps(self):
        return client.AppsV1Api(self.api)

    @property
    def policy(self):
        return client.PolicyV1Api(self.api)

    @property
    def autoscaling(self):
        return client.AutoscalingV2Api(self.api)


def _script_env(name: str, kubeconfig: Path) -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(TOOLS_DIR / "bin")
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    # tools/env.sh takes the kubeconfig from BUNDLE_KUBECONFIG (else one per cluster name): pin both
    env.update(BUNDLE_CLUSTER_NAME=name, BUNDLE_KUBECONFIG=str(kubeconfig), KUBECONFIG=str(kubeconfig))
    return env


def _cluster_sh(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True, env=env, timeout=timeout)


def kwok_workdir() -> Path:
    """Where kwokctl keeps its clusters (tools/env.sh's KWOK_WORKDIR)."""
    return Path(os.environ.get("KWOK_WORKDIR", TOOLS_DIR / "kwok"))


def component_pids(cluster_name: str) -> dict[str, int]:
    """The pid kwokctl recorded for each of the cluster's components (etcd, kube-apiserver, ...)."""
    pids_dir = kwok_workdir() / "clusters" / cluster_name / "pids"
    return {f.stem: int(f.read_text().strip()) for f in sorted(pids_dir.glob("*.pid"))}


class ClusterLock:
    """One session at a time owns the cluster name: a second `make test` waits instead of deleting ours."""

    def __init__(self, name: str):
        workdir = kwok_workdir()
        workdir.mkdir(parents=True, exist_ok=True)
        self.path = workdir / f"{name}.e2e.lock"
        self.handle: IO[str] | None = None

    def acquire(self) -> None:
        self.handle = open(self.path, "w")
        wait_until(
            lambda: self._try(), LOCK_WAIT_S, f"{self.path} (another test session is using the cluster)", interval=2
        )

    def _try(self) -> bool:
        assert self.handle is not None, "acquire() opens the lock file first"
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def release(self) -> None:
        if self.handle:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


def start_cluster(name: str, nodes_env: str) -> Cluster:
    """A fresh cluster `name` with `nodes_env`'s simulated pools and the CRDs. Any earlier cluster of that
    name is a leftover of a killed session (the caller holds the name's lock): it is deleted first."""
    missing = [
        b
        for b in ("kubectl", "kwokctl", "kube-apiserver", "etcd", "metrics-server")
        if not (TOOLS_DIR / "bin" / b).exists()
    ]
    assert not missing, f"pinned tools missing in {TOOLS_DIR}/bin: {missing}; run `make tools` (tools/bootstrap.sh)"
    kubeconfig = TOOLS_DIR / f"kubeconfig-{name}"
    env = _script_env(name, kubeconfig)
    _cluster_sh(env, "down")
    nodes = subprocess.run(
        [sys.executable, "-m", "infra", "cluster-nodes", "--env", nodes_env],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
    ).stdout
    nodes_file = TOOLS_DIR / f"nodes-{name}.yaml"
    nodes_file.write_text(nodes)
    for args in (("up", str(nodes_file)), ("crds",)):
        proc = _cluster_sh(env, *args)
        if proc.returncode != 0:
            _cluster_sh(env, "down")
            raise AssertionError(f"tools/cluster.sh {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
    except Exception:
        _cluster_sh(env, "down")  # a cluster we cannot talk to is still a cluster to stop
        raise
    return Cluster(name, kubeconfig, env, api)


def stop_cluster(cluster: Cluster) -> subprocess.CompletedProcess:
    cluster.api.close()
    return _cluster_sh(cluster.env, "down")


# ---------------------------------------------------------------------------------------------
# A stack's export on the cluster
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_cluster(name: str, nodes_env: str) -> Iterator[Cluster]:
    """A cluster of our own for the duration of the block: locked against a second test session,
    started from `nodes_env`'s pools, and always deleted at the end."""
    lock = ClusterLock(name)
    lock.acquire()
    try:
        cluster = start_cluster(name, nodes_env=nodes_env)
        try:
            yield cluster
        except BaseException:
            stop_cluster(cluster)  # the test's own error is the one to report
            raise
        down = stop_cluster(cluster)
        assert down.returncode == 0, f"tools/cluster.sh down failed:\n{down.stderr[-3000:]}"
    finally:
        lock.release()


def manifests(env: str) -> Path:
    return REPO_ROOT / "manifests" / env


def remove_stack(cluster: Cluster, env: str) -> None:
    """Delete what `kubectl apply -k manifests/<env>` made (its namespace and the cluster-scoped
    PriorityClass) and wait until the namespace is gone, so the next stack starts clean."""
    cluster.kubectl("delete", "-k", str(manifests(env)), "--ignore-not-found", "--wait=false", check=False)
    namespace = build_for_env(env).namespace
    cluster.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=180s", check=False)
    assert cluster.kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").stdout == "", (
        f"namespace {namespace} still there after 180 s"
    )


def expected_replicas(release) -> int:
    autoscaling = effective_values(release.spec)["autoscaling"]
    return autoscaling["minReplicas"] if autoscaling["enabled"] else effective_values(release.spec)["replicaCount"]


def deploy_local_stack(cluster: Cluster, env: str = "local") -> Plan:
    """Apply manifests/<env> server-side and wait until every variant has its replicas Ready
    (an autoscaled Deployment starts at 1 replica; its HPA raises it to minReplicas)."""
    plan = build_for_env(env)
    cluster.kubectl("wait", "--for=delete", f"namespace/{plan.namespace}", "--timeout=180s", check=False)
    cluster.kubectl("apply", "--server-side", "-k", str(manifests(env)))
    for release in plan.releases:
        wait_until(
            lambda: deployment_settled(cluster, plan.namespace, release.name, expected_replicas(release)),
            180,
            f"{release.name}: {expected_replicas(release)} replicas ready",
        )
    return plan


def deployment_settled(cluster: Cluster, namespace: str, name: str, replicas: int | None = None) -> bool:
    """The Deployment has its desired replicas (exactly `replicas`, when given), all updated and Ready."""
    d = cluster.apps.read_namespaced_deployment(name, namespace)
    s = d.status
    want = d.spec.replicas or 0
    return (
        (replicas is None or want == replicas)
        and want > 0
        and s.observed_generation == d.metadata.generation
        and (s.updated_replicas or 0) == want
        and (s.ready_replicas or 0) == want
        and (s.replicas or 0) == want
    )


def pods_of(cluster: Cluster, namespace: str, release_name: str) -> list[Any]:
    """The release's pods that are not being deleted."""
    return _release_pods(cluster.api, namespace, release_name)


def _release_pods(api, namespace: str, release_name: str) -> list[Any]:
    pods = (
        client.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={release_name}")
        .items
    )
    return [p for p in pods if p.metadata and p.metadata.deletion_timestamp is None]


def ready_endpoints(api, namespace: str, service: str) -> int:
    """Ready addresses in the Service's EndpointSlices (what a client of the Service is routed to)."""
    slices = (
        client.DiscoveryV1Api(api)
        .list_namespaced_endpoint_slice(namespace, label_selector=f"kubernetes.io/service-name={service}")
        .items
    )
    return sum(1 for s in slices for e in (s.endpoints or []) if e.conditions and e.conditions.ready)


class Sampler(threading.Thread, Generic[T]):
    """Calls `probe(api)` every 0.2 s on its own ApiClient until stopped; keeps what it returned.
    `start()` returns once the first sample is in, so it shows the state before whatever comes next."""

    def __init__(self, cluster: Cluster, probe: Callable[[Any], T]):
        super().__init__(daemon=True)
        self.api, self.probe = cluster.new_api(), probe
        self.samples: list[T] = []
        self.stopped, self.first = threading.Event(), threading.Event()

    def start(self) -> None:
        super().start()
        assert self.first.wait(30), "the sampler took no first sample in 30 s"

    def run(self) -> None:
        try:
            while True:
                self.samples.append(self.probe(self.api))
                self.first.set()
                if self.stopped.wait(0.2):
                    return
        finally:
            self.first.set()
            self.api.close()

    def stop(self) -> list[T]:
        self.stopped.set()
        self.join(timeout=10)
        return self.samples


def live_pods(api, namespace: str, release_name: str) -> int:
    """Pods of the release that are not being deleted: what its ReplicaSets ask for right now. `api` is an
    ApiClient of its own (a Sampler's thread), not the cluster's."""
    return len(_release_pods(api, namespace, release_name))


def warning_events(cluster: Cluster, namespace: str, reason: str) -> list[Any]:
    events = cluster.core.list_namespaced_event(namespace, field_selector=f"type=Warning,reason={reason}").items
    return events


def objects_in(env: str) -> list[dict]:
    """The objects `kubectl kustomize manifests/<env>` yields (what `apply -k` sends)."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(manifests(env))],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": f"{TOOLS_DIR / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"},
    ).stdout
    return [o for o in yaml.safe_load_all(out) if o]
