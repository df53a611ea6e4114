"""Every environment's export (manifests/<env>/, gitops/ included) is accepted by a real API server.

`kubectl apply --server-side` validates strictly (unknown or duplicate fields are errors), the CRDs' own
schemas and CEL rules run, and Pod Security admission enforces each namespace's `restricted` level on the
pods the Deployment and Job controllers create from the templates. The cluster has only the `local`
stack's pools, so other stacks' pods stay Pending; the point here is that nothing is refused.
"""

from __future__ import annotations

import pytest
import yaml

from infra.core.plan import build_for_env
from tests.conftest import STACKS
from tests.e2e.kube import (
    manifests,
    objects_in,
    remove_stack,
    wait_until,
    warning_events,
)

pytestmark = pytest.mark.e2e
# Where the GitOps controllers' objects live (their namespaces come with Argo CD / Flux, not with the export)
GITOPS_NAMESPACES = ("argocd", "flux-system")


@pytest.fixture(scope="module")
def cluster(e2e_cluster):
    for ns in GITOPS_NAMESPACES:
        e2e_cluster.kubectl("create", "namespace", ns)
    yield e2e_cluster
    e2e_cluster.kubectl("delete", "namespace", *GITOPS_NAMESPACES, "--wait=false", check=False)


def pods_made(cluster, namespace: str, selector: str, want: int) -> bool:
    """The controllers created `want` pods matching `selector`; a pod refused by admission fails at once."""
    refused = warning_events(cluster, namespace, "FailedCreate")
    assert not refused, "a controller could not create pods: " + "; ".join(e.message for e in refused)
    return len(cluster.core.list_namespaced_pod(namespace, label_selector=selector).items) >= want


@pytest.mark.parametrize("env", STACKS)
def test_export_applies_server_side(cluster, env):
    plan = build_for_env(env)
    objects = objects_in(env)
    gitops = manifests(env) / "gitops"
    try:
        applied = cluster.kubectl(
            "apply", "--server-side", "--field-manager=jina-e2e", "-k", str(manifests(env)), check=False
        )
        assert applied.returncode == 0, f"manifests/{env} refused:\n{applied.stderr}"
        assert "Warning:" not in applied.stderr, f"manifests/{env}: the API server warned:\n{applied.stderr}"
        assert len(applied.stdout.splitlines()) == len(objects), applied.stdout
        flows = cluster.kubectl("apply", "--server-side", "--field-manager=jina-e2e", "-f", str(gitops), check=False)
        assert flows.returncode == 0 and "Warning:" not in flows.stderr, (
            f"manifests/{env}/gitops refused:\n{flows.stderr}"
        )
        assert {_kind(line) for line in flows.stdout.splitlines()} == {
            "Application",
            "Kustomization",
            "GitRepository",
        }, flows.stdout

        # every object is on the server, as this stack's
        listed = cluster.kubectl("get", "-f", "-", "-o", "yaml", input=yaml.safe_dump_all(objects))
        items = yaml.safe_load(listed.stdout)["items"]
        assert sorted((o["kind"], o["metadata"]["name"]) for o in items) == sorted(
            (o["kind"], o["metadata"]["name"]) for o in objects
        )
        assert all(o["metadata"]["labels"].get("jina-embeddings/stack") == env for o in items)

        # the controllers made the pods, i.e. Pod Security admission let every template through
        for release in plan.releases:
            replicas = cluster.apps.read_namespaced_deployment(release.name, plan.namespace).spec.replicas
            wait_until(
                lambda: pods_made(cluster, plan.namespace, f"app.kubernetes.io/instance={release.name}", replicas),
                60,
                f"{env}: {replicas} pod(s) of {release.name} created",
            )
        for job in (o["metadata"]["name"] for o in objects if o["kind"] == "Job"):
            wait_until(
                lambda: pods_made(cluster, plan.namespace, f"batch.kubernetes.io/job-name={job}", 1),
                60,
                f"{env}: the pod of Job {job} created",
            )
    finally:
        cluster.kubectl("delete", "-f", str(gitops), "--ignore-not-found", check=False)
        remove_stack(cluster, env)


def _kind(apply_line: str) -> str:
    """'application.argoproj.io/jina-embeddings-dev serverside-applied' -> 'Application'"""
    resource = apply_line.split("/", 1)[0].split(".", 1)[0]
    return {"application": "Application", "kustomization": "Kustomization", "gitrepository": "GitRepository"}.get(
        resource, resource
    )
