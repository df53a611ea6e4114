"""A deliberately non-compliant Pulumi program for the policy-pack e2e test: one Deployment whose container
is privileged, which Pod Security `restricted` forbids. Run as a script, it `up`s it with the bundle's policy
pack through the same runner as `python -m infra engine` and prints the JSON report; the pack must block it
before anything is created.

    python -m tests.e2e.privileged_program PROJECT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import pulumi_kubernetes as k8s

from infra.sinks.pulumi.engine import run_operation
from tests.e2e.pulumi_engine import POLICY_PACK

NAME = "policy-probe-privileged"


def privileged_deployment() -> None:
    labels = {"app.kubernetes.io/name": NAME}
    k8s.apps.v1.Deployment(
        NAME,
        metadata={"name": NAME, "namespace": "default", "labels": labels},
        spec={
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "main", "image": "busybox:1.36.1", "securityContext": {"privileged": True}}]
                },
            },
        },
    )


if __name__ == "__main__":
    report = run_operation(
        "up",
        "local",
        project_dir=Path(sys.argv[1]),
        policy_packs=(str(POLICY_PACK),),
        program=privileged_deployment,
        out=lambda line: print(line, file=sys.stderr),
    )
    print(report.to_json())
    sys.exit(0 if report.result == "succeeded" else 1)
