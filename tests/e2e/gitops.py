"""A real GitOps controller for the e2e tier: Flux's source-controller and kustomize-controller as host
processes against the kwok cluster, reading a git repository served from 127.0.0.1.

kwok nodes run no containers, so the controllers run on the host with the cluster's kubeconfig in $KUBECONFIG
(as `make run` does in their repositories; neither binary has a --kubeconfig flag, controller-runtime's
`ctrl.GetConfigOrDie` reads the variable). Both are built by `tools/bootstrap.sh flux-source-controller
flux-kustomize-controller`. The repository is served over git's smart HTTP protocol by `git http-backend`
(https://git-scm.com/docs/git-http-backend) behind a small `http.server`: source-controller accepts http(s)
and ssh URLs only (the GitRepository CRD's `spec.url` pattern is `^(http|https|ssh)://.*$`), not git://.
Everything listens on 127.0.0.1 on free ports, and `FluxControllers.stop()` ends every process started here.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from infra.sinks.helm import TOOLS_DIR

FLUX_BINARIES = ("source-controller", "kustomize-controller")
FLUX_NAMESPACE = "flux-system"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "e2e",
        "GIT_AUTHOR_EMAIL": "e2e@example.invalid",
        "GIT_COMMITTER_NAME": "e2e",
        "GIT_COMMITTER_EMAIL": "e2e@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),  # no user config of this machine leaks in
    }
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip()


class _GitHTTPHandler(http.server.BaseHTTPRequestHandler):
    """CGI bridge to `git http-backend`: the request's method, path, query and body in, its response out."""

    project_root: Path  # set on the subclass made by GitHTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._cgi()

    def do_POST(self) -> None:  # noqa: N802
        self._cgi()

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": self.request_version,
        }
        for header in ("Content-Encoding", "Git-Protocol"):
            if self.headers.get(header):
                env["HTTP_" + header.upper().replace("-", "_")] = self.headers[header]
        proc = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env, timeout=60)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        if proc.returncode != 0 and not head:
            status, payload = 500, proc.stderr
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        pass


class GitHTTPServer:
    """`git http-backend` for the bare repositories under `root`, on http://127.0.0.1:<port>/<repo>.git."""

    def __init__(self, root: Path):
        handler = type("Handler", (_GitHTTPHandler,), {"project_root": root})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, repo: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{repo}"

    def __enter__(self) -> GitHTTPServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@dataclass
class FluxControllers:
    """source-controller and kustomize-controller, each a child process with its own log file."""

    kubeconfig: Path
    workdir: Path
    requeue_dependency: str = "2s"
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, IO[bytes]] = field(default_factory=dict)

    @staticmethod
    def missing() -> list[str]:
        return [b for b in FLUX_BINARIES if not (TOOLS_DIR / "bin" / b).exists()]

    def _start(self, name: str, *flags: str) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop())
        self.logs[name] = log
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "KUBECONFIG": str(self.kubeconfig),
            # the namespace the controllers would run in (leader election, events)
            "RUNTIME_NAMESPACE": FLUX_NAMESPACE,
            # kustomize-controller's SOPS/age and source-controller's git need a writable TMPDIR of their own
            "TMPDIR": str(self.workdir / "tmp"),
        }
        self.procs[name] = subprocess.Popen(
            [str(TOOLS_DIR / "bin" / name), *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def start(self) -> None:
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        storage_addr = f"127.0.0.1:{free_port()}"
        common = ["--watch-all-namespaces=true", "--enable-leader-election=false", "--log-encoding=console"]
        self._start(
            "source-controller",
            *common,
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{free_port()}",
            f"--storage-path={storage}",
            f"--storage-addr={storage_addr}",
            f"--storage-adv-addr={storage_addr}",
            "--events-addr=",
        )
        self._start(
            "kustomize-controller",
            *common,
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{free_port()}",
            f"--requeue-dependency={self.requeue_dependency}",
            "--events-addr=",
        )
        time.sleep(1)
        self.assert_running()

    def assert_running(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM each controller by its own pid, SIGKILL after 10 s; close the logs."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for log in self.logs.values():
            log.close()


@contextlib.contextmanager
def flux_controllers(kubeconfig: Path, workdir: Path) -> Iterator[FluxControllers]:
    controllers = FluxControllers(kubeconfig, workdir)
    try:
        controllers.start()
        yield controllers
    finally:
        controllers.stop()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
