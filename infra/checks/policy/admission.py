"""Pod Security verdicts from the real admission code: the pinned kube-apiserver's PodSecurity plugin.

Enforce mode judges Pods, not Deployments, so each pod template becomes a Pod (`pod_from_template`) that
is created with `dryRun=All` in a namespace labelled `pod-security.kubernetes.io/enforce=<level>` with
`enforce-version` pinned to the API server's minor (v1.36 for the pinned v1.36.3). Nothing is stored. A
Forbidden answer lists the violations (`violates PodSecurity "restricted:v1.36": host namespaces
(hostNetwork=true), ...`); `reasons()` reads them out and `CONTROLS` names the check of
k8s.io/pod-security-admission/policy each reason comes from. The API server defaults the Pod before it
judges it (hostNetwork copies every containerPort into hostPort, for one), which a port of the checks to
Python did not: this replaced infra/policy/pss.py, which gave another verdict on such pods.

`LocalApiServer` starts etcd and kube-apiserver (tools/bootstrap.sh kubernetes etcd) on 127.0.0.1 with a
static token, AlwaysAllow authorization and only the admission plugins that judge a lone Pod (the
ServiceAccount and Priority plugins would look up objects a dry run of one template cannot have), in
about 5 s. `shared()` keeps one per process (the CLI, the policy pack, the tests) and stops it at exit.
Where the binaries are missing nothing judges Pod Security before the cluster does: the stack's
namespace carries `enforce: restricted`, so the cluster's own API server refuses a violating pod.

GPU pods need no exception: see `GPU_ALLOWANCES`.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.checks.policy.violations import Violation, object_id
from infra.core.paths import TOOLS_DIR

BASELINE, RESTRICTED = "baseline", "restricted"

# Settings of the GPU pods that other tools flag and Pod Security allows, each with its reason. They
# are the only departures from the most conservative profile, and they are all *allowed* by
# restricted; the tests prove the rendered pods carry nothing beyond them.
GPU_ALLOWANCES: dict[str, str] = {
    "supplementalGroups": "AMD only: video (44) and the node's render group, so the non-root vLLM process can open "
    "/dev/kfd and /dev/dri/renderD* (ROCm/k8s-device-plugin#39). Pod Security has no group control.",
    "runAsUser": "2000, the vllm user the vLLM images ship (vllm#40275); restricted only forbids 0. Checkov CKV_K8S_40 "
    "(UID >= 10000) is skipped with this reason on the Deployment.",
}


@dataclass(frozen=True)
class Control:
    id: str  # the admission check's ID (k8s.io/pod-security-admission/policy/check_*.go)
    level: str  # baseline | restricted
    reason: str  # the ForbiddenReason it reports (plural forms are matched too)
    summary: str

    @property
    def name(self) -> str:
        return f"pss.{self.id}"


CONTROLS: tuple[Control, ...] = (
    Control("hostProcess", BASELINE, "hostProcess", "no Windows HostProcess containers"),
    Control("hostNamespaces", BASELINE, "host namespaces", "no hostNetwork, hostPID, hostIPC"),
    Control("privileged", BASELINE, "privileged", "no privileged containers"),
    Control(
        "capabilities_baseline", BASELINE, "non-default capabilities", "added capabilities only from the baseline set"
    ),
    Control("hostPathVolumes", BASELINE, "hostPath volumes", "no hostPath volumes"),
    Control("hostPorts", BASELINE, "hostPort", "no hostPort (also the one hostNetwork defaults in)"),
    Control("appArmorProfile", BASELINE, "forbidden AppArmor profile", "AppArmor RuntimeDefault/Localhost or unset"),
    Control("seLinuxOptions", BASELINE, "seLinuxOptions", "SELinux container types only; no user/role"),
    Control("procMount", BASELINE, "procMount", "default /proc masks"),
    Control("seccompProfile_baseline", BASELINE, "seccompProfile", "seccomp never Unconfined"),
    Control("sysctls", BASELINE, "forbidden sysctl", "safe namespaced sysctls only"),
    Control(
        "hostProbesAndHostLifecycle", BASELINE, "probe or lifecycle host", "probe/lifecycle handlers never name a host"
    ),
    Control(
        "restrictedVolumes",
        RESTRICTED,
        "restricted volume types",
        "volumes: configMap, csi, downwardAPI, emptyDir, ephemeral, PVC, projected, secret",
    ),
    Control(
        "allowPrivilegeEscalation",
        RESTRICTED,
        "allowPrivilegeEscalation != false",
        "allowPrivilegeEscalation=false on every container",
    ),
    Control("runAsNonRoot", RESTRICTED, "runAsNonRoot != true", "runAsNonRoot=true (pod or every container)"),
    Control("runAsUser", RESTRICTED, "runAsUser=0", "never runAsUser=0"),
    Control("seccompProfile_restricted", RESTRICTED, "seccompProfile", "seccomp RuntimeDefault or Localhost"),
    Control("capabilities_restricted", RESTRICTED, "unrestricted capabilities", "drop ALL; add only NET_BIND_SERVICE"),
)
# At restricted these checks replace their baseline twin (OverrideCheckIDs): one reason, the restricted check.
RESTRICTED_OVERRIDES = {
    "capabilities_baseline": "capabilities_restricted",
    "seccompProfile_baseline": "seccompProfile_restricted",
    "hostPathVolumes": "restrictedVolumes",
}


def controls(level: str = RESTRICTED) -> tuple[Control, ...]:
    """The checks a namespace at `level` runs (restricted: baseline's, less the two it overrides, + its own)."""
    if level == BASELINE:
        return tuple(c for c in CONTROLS if c.level == BASELINE)
    if level == RESTRICTED:
        return tuple(c for c in CONTROLS if c.id not in RESTRICTED_OVERRIDES)
    raise ValueError(f"unknown Pod Security level {level!r}: baseline or restricted")


def control_of(violation: str, level: str = RESTRICTED) -> Control:
    """The check a reported violation comes from, at the namespace's level."""
    name = (
        reason_name(violation).rstrip("s") if reason_name(violation).startswith("forbidden") else reason_name(violation)
    )
    for c in controls(level):
        if c.reason == name:
            return c
    raise AdmissionError(f"unknown PodSecurity reason {violation!r}")


# Where each workload kind keeps its pod template.
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
    "Pod": (),
}


def pod_template(obj: Mapping[str, Any]) -> tuple[dict, dict] | None:
    """(pod metadata, pod spec) of a Pod or of a workload's pod template; None for other kinds."""
    path = _TEMPLATE_PATHS.get(obj.get("kind", ""))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = (node or {}).get(key) or {}
    return dict(node.get("metadata") or {}), dict(node.get("spec") or {})


def containers(spec: Mapping[str, Any]) -> Iterator[dict]:
    """Every container of the pod: containers, initContainers and ephemeralContainers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or ()


class AdmissionError(RuntimeError):
    """The API server is missing, did not start, or answered something else than allowed/forbidden."""


def pod_from_template(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Pod a workload's controller would create (name, labels, annotations, spec), or the Pod itself."""
    template = pod_template(obj)
    if template is None:
        return None
    meta, spec = template
    name = ((obj.get("metadata") or {}).get("name") or "pod")[:50]
    metadata = {"name": name, **{k: meta[k] for k in ("labels", "annotations") if meta.get(k)}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": _integral(spec)}


def _integral(value: Any) -> Any:
    """2000.0 -> 2000: the policy engine hands numbers over as protobuf doubles; the API server wants int64."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def reasons(message: str) -> list[str]:
    """The violations of a PodSecurity Forbidden message, each `reason (details)` as the plugin wrote it."""
    _, marker, rest = message.partition('": ')
    if not marker or "violates PodSecurity" not in message:
        return []
    out, depth, current = [], 0, ""
    for ch in rest:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    return [r for r in [*out, current.strip()] if r]


def reason_name(violation: str) -> str:
    return violation.split(" (", 1)[0].strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str) -> str:
    for candidate in (str(TOOLS_DIR / "bin" / name), shutil.which(name)):
        if candidate and Path(candidate).exists():
            return candidate
    raise AdmissionError(f"{name} not found: run `tools/bootstrap.sh kubernetes etcd`")


class LocalApiServer:
    """etcd + kube-apiserver on 127.0.0.1 for dry-run admission; `with LocalApiServer() as api: ...`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pss-apiserver-"))
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.procs: list[subprocess.Popen] = []
        self.watcher: subprocess.Popen | None = None
        self.minor = ""

    def start(self, timeout: float = 120) -> LocalApiServer:
        etcd, apiserver = _binary("etcd"), _binary("kube-apiserver")
        version = subprocess.run([apiserver, "--version"], capture_output=True, text=True).stdout.split()[-1]
        self.minor = "v" + ".".join(version.lstrip("v").split(".")[:2])  # v1.36.3 -> v1.36
        client, peer = _free_port(), _free_port()
        (self.dir / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        subprocess.run(["openssl", "genrsa", "-out", str(self.dir / "sa.key"), "2048"], check=True, capture_output=True)
        log = (self.dir / "etcd.log").open("w")
        self.procs.append(
            subprocess.Popen(
                [
                    etcd,
                    f"--data-dir={self.dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{client}",
                    f"--advertise-client-urls=http://127.0.0.1:{client}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer}",
                    "--unsafe-no-fsync",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log = (self.dir / "apiserver.log").open("w")
        self.procs.append(
            subprocess.Popen(
                [
                    apiserver,
                    f"--etcd-servers=http://127.0.0.1:{client}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    f"--cert-dir={self.dir / 'certs'}",
                    f"--token-auth-file={self.dir / 'tokens.csv'}",
                    "--authorization-mode=AlwaysAllow",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={self.dir / 'sa.key'}",
                    f"--service-account-signing-key-file={self.dir / 'sa.key'}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--disable-admission-plugins=ServiceAccount,Priority",
                    # privileged and hostProcess pods must pass validation to reach PodSecurity's verdict
                    "--allow-privileged=true",
                    "--enable-priority-and-fairness=false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        # A process that is killed (the policy pack's analyzer is, by the Pulumi engine) runs no atexit: a watcher
        # outside it stops both servers once it is gone, so they never outlive their owner, and removes their
        # directory (certificates, token file, etcd data).
        pids = " ".join(str(p.pid) for p in self.procs)
        self.watcher = subprocess.Popen(
            # kube-apiserver's graceful shutdown can hang once etcd is gone: SIGKILL after 10 s
            [
                "sh",
                "-c",
                f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; kill {pids}; sleep 10; kill -9 {pids}; "
                f"rm -rf {shlex.quote(str(self.dir))}",
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            try:
                if self._request("GET", "/readyz")[0] == 200:
                    return self
            except (OSError, AdmissionError):
                pass
            time.sleep(0.5)
        logs = (self.dir / "apiserver.log").read_text()[-2000:]
        self.stop()
        raise AdmissionError(f"kube-apiserver not ready within {timeout:.0f} s: {logs}")

    def stop(self) -> None:
        # kube-apiserver first, and waited for while etcd still answers (its graceful shutdown hangs once etcd is
        # gone), then etcd. The watcher goes last: a stop cut short (an xdist worker's teardown is) still leaves it
        # to finish the job; stopped first, it left one kube-apiserver behind per test run.
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
        if self.watcher is not None:
            self.watcher.kill()
            self.watcher.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the server's own self-signed cert, on 127.0.0.1, for this run only
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw.startswith(b"{") else {}
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw.startswith(b"{") else {"message": raw.decode(errors="replace")}

    def namespace(self, level: str) -> str:
        """A namespace enforcing `level` at the server's own minor (created once per level)."""
        name = f"pss-{level}"
        labels = {
            "pod-security.kubernetes.io/enforce": level,
            "pod-security.kubernetes.io/enforce-version": self.minor,
        }
        status, body = self._request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        )
        if status not in (201, 409):
            raise AdmissionError(f"namespace {name}: {status} {body.get('message')}")
        return name

    def dry_run(self, pod: Mapping[str, Any], level: str = "restricted") -> list[str]:
        """The PodSecurity violations of a Pod (empty: admitted), from a server-side dry-run create."""
        namespace = self.namespace(level)
        status, body = self._request("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", pod)
        if status == 201:
            return []
        message = body.get("message", "")
        if status == 403 and "violates PodSecurity" in message:
            return reasons(message)
        raise AdmissionError(f"dry-run of Pod {pod['metadata']['name']}: {status} {message}")


def available() -> bool:
    """Whether the pinned kube-apiserver and etcd are installed (tools/bootstrap.sh kubernetes etcd)."""
    try:
        _binary("etcd")
        _binary("kube-apiserver")
    except AdmissionError:
        return False
    return True


_SHARED: list[LocalApiServer] = []


def shared() -> LocalApiServer:
    """One LocalApiServer per process, started on first use and stopped when the process exits."""
    if not _SHARED:
        _SHARED.append(LocalApiServer().start())
        atexit.register(_SHARED[0].stop)
    return _SHARED[0]


def check_object(obj: Mapping[str, Any], level: str = RESTRICTED, api: LocalApiServer | None = None) -> list[Violation]:
    """The PodSecurity violations of a Pod or workload's pod template, from the API server's dry run."""
    pod = pod_from_template(obj)
    if pod is None:
        return []
    found = (api or shared()).dry_run(pod, level)
    return [Violation(control_of(v, level).name, object_id(obj), v) for v in found]
