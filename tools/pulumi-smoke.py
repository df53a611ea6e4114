"""Smoke test: the cached Pulumi CLI + pulumi-resource-kubernetes work offline against the local kwok cluster.

Runs a tiny pulumi_kubernetes program (one ConfigMap) through the Python Automation API with an *inline*
program, so the engine talks to this process over `--client` and never needs the pulumi-language-python
plugin (whose Go module the proxy does not serve; see tools/README.md). `up`, a check of the object with
kubectl, and `destroy`, in a throw-away project dir and file backend outside the repo.

    source tools/env.sh && tools/cluster.sh up && .venv/bin/python tools/pulumi-smoke.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pulumi
import pulumi_kubernetes as k8s
from pulumi import automation as auto

NAMESPACE = "default"
NAME = "pulumi-smoke"


def program() -> None:
    cm = k8s.core.v1.ConfigMap(
        "smoke",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=NAMESPACE),
        data={"hello": "kwok"},
    )
    pulumi.export("name", cm.metadata.name)


def main() -> int:
    for var in ("PULUMI_HOME", "KUBECONFIG"):
        if not os.environ.get(var):
            print(f"{var} is not set: source tools/env.sh first", file=sys.stderr)
            return 2
    pulumi_bin = shutil.which("pulumi")
    print(f"pulumi: {pulumi_bin}")
    print(f"pulumi-resource-kubernetes: {shutil.which('pulumi-resource-kubernetes')}")
    work = tempfile.mkdtemp(prefix="pulumi-smoke-")
    state = os.path.join(work, "state")
    os.makedirs(state)
    env = {
        "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE") or "smoke",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_BACKEND_URL": f"file://{state}",
    }
    os.environ.update(env)
    try:
        cmd = auto.PulumiCommand(root=os.path.dirname(os.path.dirname(pulumi_bin)) if pulumi_bin else None)
        ws_opts = auto.LocalWorkspaceOptions(
            work_dir=work,
            pulumi_home=os.environ["PULUMI_HOME"],
            pulumi_command=cmd,
            env_vars=env,
            project_settings=auto.ProjectSettings(
                name="smoke", runtime="python", backend=auto.ProjectBackend(url=f"file://{state}")
            ),
        )
        stack = auto.create_or_select_stack(stack_name="smoke", project_name="smoke", program=program, opts=ws_opts)
        print(f"pulumi CLI version (Automation API): {stack.workspace.pulumi_version}")
        t0 = time.monotonic()
        up = stack.up(on_output=lambda s: print("  up|", s.rstrip()))
        print(f"up: {up.summary.result} {up.summary.resource_changes} in {time.monotonic() - t0:.1f}s")
        got = subprocess.run(
            ["kubectl", "-n", NAMESPACE, "get", "configmap", NAME, "-o", "json"],
            check=True, capture_output=True, text=True,
        )
        data = json.loads(got.stdout)["data"]
        print(f"kubectl sees configmap/{NAME}: {data}")
        assert data == {"hello": "kwok"}, data
        plugins = stack.workspace.list_plugins()
        print("plugins known to the workspace:", [(p.name, p.version) for p in plugins])
        t0 = time.monotonic()
        down = stack.destroy(on_output=lambda s: print("  destroy|", s.rstrip()))
        print(f"destroy: {down.summary.result} {down.summary.resource_changes} in {time.monotonic() - t0:.1f}s")
        gone = subprocess.run(["kubectl", "-n", NAMESPACE, "get", "configmap", NAME], capture_output=True, text=True)
        assert gone.returncode != 0, "configmap still there after destroy"
        stack.workspace.remove_stack("smoke")
        print("PULUMI SMOKE OK")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
