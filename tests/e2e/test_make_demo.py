"""`make demo` (the README's first command) and `make demo-down`, run as a user runs them, on a cluster
and state backend of the test's own (BUNDLE_CLUSTER_NAME=<the e2e cluster's name>-demo, a temp PULUMI_BACKEND_URL)."""

from __future__ import annotations

import os
import subprocess

import pytest

from infra.core.paths import REPO_ROOT
from infra.core.plan import build_for_env
from infra.sinks.helm import TOOLS_DIR
from tests.e2e.kube import CLUSTER_NAME, ClusterLock

pytestmark = pytest.mark.e2e
CLUSTER = f"{CLUSTER_NAME}-demo"  # BUNDLE_E2E_CLUSTER keeps two checkouts' demos apart too


def make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", target], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800
    )


def test_make_demo_then_demo_down(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "BUNDLE_KUBECONFIG")}
    env.update(BUNDLE_CLUSTER_NAME=CLUSTER, PULUMI_BACKEND_URL=f"file://{tmp_path}")
    stack_file = (REPO_ROOT / "Pulumi.local.yaml").read_bytes()
    plan = build_for_env("local")
    lock = ClusterLock(CLUSTER)
    lock.acquire()
    down = None
    try:
        demo = make("demo", env)
        log = demo.stdout + demo.stderr
        assert demo.returncode == 0, log[-8000:]
        assert f"cluster {CLUSTER} up" in log  # its own cluster, not the default jina-local
        assert "jina-embeddings-bundle@v0.1.0" in log  # `pulumi up` ran the policy pack
        for release in plan.releases:  # the outputs, then the status of every variant
            assert f'"service": "{release.service_name}"' in log, release.service_name
            assert f"{release.variant:<16} {release.name}" in log, release.variant
        assert demo.stdout.rstrip().endswith("overall: OK"), demo.stdout[-3000:]  # status last, exit 0
        assert (tmp_path / ".pulumi" / "stacks" / "jina-embeddings" / "local.json").exists()

        down = make("demo-down", env)
        assert down.returncode == 0, (down.stdout + down.stderr)[-6000:]
        assert not (tmp_path / ".pulumi" / "stacks" / "jina-embeddings" / "local.json").exists()  # stack forgotten
        assert not (TOOLS_DIR / "kwok" / "clusters" / CLUSTER).exists()  # cluster deleted
        assert (REPO_ROOT / "Pulumi.local.yaml").read_bytes() == stack_file  # the committed stack file untouched
    finally:
        if down is None or down.returncode != 0:
            subprocess.run([str(REPO_ROOT / "tools" / "cluster.sh"), "down"], env=env, capture_output=True, text=True)
        lock.release()
