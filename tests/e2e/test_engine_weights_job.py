"""The real Pulumi engine replaces the weights Job when the model revision changes: the old Job is deleted, the
new one (a new name: it carries the digest of what it downloads, infra/core/platform_objects.py) is created and
completes, and no step updates a Job in place (a Job's pod template is immutable: "field is immutable").

The `local` stack, cut down to one variant and switched to `weights.source: pvc`, in a project copy
(tests/e2e/pulumi_engine.py), on the e2e tier's cluster. A PersistentVolume of the test's stands in for the
cluster's shared storage; kwok completes the Job's pod (its default pod stages), so `up` awaits the Job as
the provider does on a real cluster.
"""

from __future__ import annotations

import json
import time

import pytest

from infra.core.plan import Plan, build_for_env
from tests.e2e.pulumi_engine import Engine

pytestmark = pytest.mark.e2e
ENV = "local"
STORAGE_CLASS = "e2e-weights"  # only binds the claim to the test's volume; no provisioner is asked
# A second revision of the retrieval repository, as a pin update would write it. Nothing downloads it: kwok
# runs no container.
NEW_REVISION = "0123456789abcdef0123456789abcdef01234567"


def weights_job(plan: Plan) -> str:
    return next(o["metadata"]["name"] for o in plan.platform if o["kind"] == "Job")


def jobs(cluster, namespace: str) -> dict[str, bool]:
    """name -> complete, of the stack's weights Jobs in the cluster."""
    listed = json.loads(
        cluster.kubectl(
            "-n", namespace, "get", "jobs", "-l", "app.kubernetes.io/component=model-weights", "-o", "json"
        ).stdout
    )
    return {
        j["metadata"]["name"]: any(
            c["type"] == "Complete" and c["status"] == "True" for c in j.get("status", {}).get("conditions", [])
        )
        for j in listed["items"]
    }


def test_a_new_model_revision_replaces_the_weights_job(e2e_cluster, tmp_path):
    started = time.monotonic()
    engine = Engine(e2e_cluster, tmp_path / "engine")

    def to_pvc(config):
        config["jina-embeddings:variants"] = {"retrieval": {"pool": "gpu-nvidia", "replicas": 1}}
        config.pop("jina-embeddings:monitoring", None)
        config["jina-embeddings:weights"] = {
            "source": "pvc",
            "pvcSize": "20Gi",
            "pvcStorageClass": STORAGE_CLASS,
            "pvcAccessMode": "ReadWriteMany",
        }

    engine.edit_stack_file(to_pvc)
    before = build_for_env(ENV, engine.project)
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "e2e-weights"},
        "spec": {
            "capacity": {"storage": "20Gi"},
            "accessModes": ["ReadWriteMany"],
            "storageClassName": STORAGE_CLASS,
            "hostPath": {"path": str(tmp_path)},
        },
    }
    e2e_cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(volume))
    try:
        first = engine.run("up", "--yes")
        assert first.proc.returncode == 0, first.log
        old = weights_job(before)
        assert jobs(e2e_cluster, before.namespace) == {old: True}

        engine.edit_stack_file(lambda c: c["jina-embeddings:variants"]["retrieval"].update(revision=NEW_REVISION))
        after = build_for_env(ENV, engine.project)
        new = weights_job(after)
        assert new != old, "the revision is part of the Job's name"
        second = engine.run("up", "--yes")
        assert second.proc.returncode == 0, second.log
        assert "field is immutable" not in second.log, second.log
        ops = second.ops()
        assert ops[f"platform-job-{new}"] == "create", ops
        assert ops[f"platform-job-{old}"] == "delete", ops
        job_steps = {name: op for name, op in ops.items() if name.startswith("platform-job-")}
        assert set(job_steps.values()) == {"create", "delete"}, job_steps  # never an update of a Job
        assert jobs(e2e_cluster, after.namespace) == {new: True}, "the old Job is gone, the new one complete"
    finally:
        if engine.pulumi("stack", "ls", "--json", check=False).stdout.count('"name"'):
            engine.run("destroy", "--yes")
        e2e_cluster.kubectl("delete", "pv/e2e-weights", "--ignore-not-found", "--wait=false", check=False)
    print(f"\ntwo `up`s and a destroy of the weights stack in {time.monotonic() - started:.1f}s")
