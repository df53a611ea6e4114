"""A real GitOps controller reconciles the export: Flux (source-controller + kustomize-controller) syncs
`manifests/local` from a git repository served on 127.0.0.1 into the kwok cluster.

The stack is `local` with its weights on a PVC (`weights.source: pvc`, what prod runs), so the export has all
three parts: platform, the weights PVC + Job, the servers. The repository holds a copy of the repo's manifests/
with manifests/local rendered by the export for that stack, and the exported Flux objects are applied through
the fleet-repository overlay docs/gitops.md documents ("Pointing the Flux objects at a repository"): repository
URL, pinned commit, short intervals. Each commit is deployed by pinning it, as a reviewed deploy would be:

  a. the first sync comes up in order: platform, then the weights Job (completed), then the servers;
  b. a new model revision replaces the weights Job (a new name, the old one pruned: never "field is immutable"),
     and the Deployments change only after the new Job has completed;
  c. a `kubectl scale` of a Deployment is reverted by the controller;
  d. a bad commit (an invalid manifest) is refused with a readable condition, and the running version serves on;
  e. a revert commit restores the previous state.

kwok runs no containers: pods become Ready, and a Job's pod Succeeded, through kwok's default stages.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from infra.core.paths import REPO_ROOT
from infra.core.plan import build_for_env
from infra.sinks.export import render_stack
from infra.sinks.helm import render_release
from tests.e2e.gitops import FLUX_NAMESPACE, FluxControllers, GitHTTPServer, flux_controllers, git
from tests.e2e.kube import CLUSTER_NAME, Cluster, wait_until

pytestmark = pytest.mark.e2e

ENV = "local"
STORAGE_CLASS = "jina-e2e-static"  # no provisioner in kwok: the test provides a PersistentVolume of this class
WEIGHTS = {
    "source": "pvc",
    "offline": True,
    "pvcSize": "20Gi",
    "pvcStorageClass": STORAGE_CLASS,
    "pvcAccessMode": "ReadWriteMany",
}
NEW_REVISION = "0123456789abcdef0123456789abcdef01234567"  # any pinned commit: kwok downloads nothing
FLUX = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
SOURCE = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
STEP_TIMEOUT_S = 150


class Clock:
    def __init__(self) -> None:
        self.t0 = self.last = time.monotonic()

    def step(self, what: str) -> None:
        now = time.monotonic()
        print(f"[flux-e2e] {what}: {now - self.last:.1f}s (total {now - self.t0:.1f}s)", flush=True)
        self.last = now


# ---------------------------------------------------------------------------------------------
# The repository: the export of the stack, committed
# ---------------------------------------------------------------------------------------------


def write_stack(stack_root: Path, revision: str | None = None) -> None:
    """Pulumi.local.yaml with the weights on a PVC (and retrieval pinned to `revision`) in `stack_root`."""
    doc = yaml.safe_load((REPO_ROOT / f"Pulumi.{ENV}.yaml").read_text())
    cfg = doc["config"]
    cfg["jina-embeddings:weights"] = WEIGHTS
    if revision:
        cfg["jina-embeddings:variants"]["retrieval"]["revision"] = revision
    (stack_root / f"Pulumi.{ENV}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def export_into(work: Path, stack_root: Path) -> None:
    """manifests/local of the working copy, rendered by the export from `stack_root`'s stack file."""
    plan = build_for_env(ENV, root=stack_root)
    files = render_stack(plan, {r.variant: render_release(r) for r in plan.releases})
    target = work / "manifests" / ENV
    shutil.rmtree(target, ignore_errors=True)
    for path, text in files.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text)


def commit(work: Path, message: str) -> str:
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", "main")
    return git(work, "rev-parse", "HEAD")


# ---------------------------------------------------------------------------------------------
# The fleet repository's overlay (docs/gitops.md) and what the controllers report
# ---------------------------------------------------------------------------------------------


def fleet_overlay(fleet: Path, gitops: Path, url: str, sha: str) -> None:
    """The exported Flux objects, copied as they are, plus the kustomize patches of docs/gitops.md."""
    fleet.mkdir(exist_ok=True)
    resources = []
    for src in sorted(gitops.glob("flux-*.yaml")):
        shutil.copy(src, fleet / src.name)
        resources.append(src.name)
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
        "patches": [
            {
                "target": {"group": "source.toolkit.fluxcd.io", "kind": "GitRepository"},
                "patch": yaml.safe_dump(
                    [
                        {"op": "replace", "path": "/spec/url", "value": url},
                        {"op": "replace", "path": "/spec/ref", "value": {"commit": sha}},
                        {"op": "replace", "path": "/spec/interval", "value": "10s"},
                    ]
                ),
            },
            {
                "target": {"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization"},
                "patch": yaml.safe_dump(
                    [
                        {"op": "replace", "path": "/spec/interval", "value": "10s"},
                        {"op": "add", "path": "/spec/retryInterval", "value": "5s"},
                        {"op": "replace", "path": "/spec/timeout", "value": "2m"},
                    ]
                ),
            },
        ],
    }
    (fleet / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))


def kustomizations(api: Any) -> dict[str, dict]:
    listed: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(*FLUX[:2], FLUX_NAMESPACE, FLUX[2])
    return {k["metadata"]["name"]: k for k in listed["items"]}


def ready(obj: dict) -> dict:
    """The Ready condition of a Flux object ({} before the first reconcile)."""
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})


def all_applied(api: Any, sha: str, names: list[str]) -> bool:
    ks = kustomizations(api)
    return all(
        n in ks
        and ready(ks[n]).get("status") == "True"
        and ks[n]["status"].get("lastAppliedRevision", "").endswith(sha)
        for n in names
    )


def describe(api: Any) -> str:
    return "; ".join(
        f"{n}: {ready(k).get('reason')} {ready(k).get('message', '')[:300]!r} @ {k.get('status', {}).get('lastAppliedRevision')}"
        for n, k in sorted(kustomizations(api).items())
    )


def job_state(api: Any, namespace: str) -> dict[str, bool]:
    """The weights Jobs that exist: name -> completed."""
    jobs: Any = client.BatchV1Api(api).list_namespaced_job(
        namespace, label_selector="app.kubernetes.io/component=model-weights"
    )
    return {
        j.metadata.name: any(c.type == "Complete" and c.status == "True" for c in j.status.conditions or [])
        for j in jobs.items
        if not j.metadata.deletion_timestamp
    }


def deployments(api: Any, namespace: str) -> dict[str, Any]:
    listed: Any = client.AppsV1Api(api).list_namespaced_deployment(namespace)
    return {d.metadata.name: d for d in listed.items}


def pod_template(d: Any) -> str:
    """What a Deployment runs (its pod template), as a stable string. A roll changes it; a replica count does
    not: the local stack's HPAs scale Deployments while the test watches, and every scale bumps
    metadata.generation, so the generation cannot tell a roll from a scale."""
    return json.dumps(d.spec.template.to_dict(), sort_keys=True, default=str)


def settled(d: Any) -> bool:
    s = d.status
    return (
        (s.observed_generation or 0) >= d.metadata.generation
        and (s.updated_replicas or 0) == d.spec.replicas
        and (s.ready_replicas or 0) == d.spec.replicas
        and (s.replicas or 0) == d.spec.replicas
    )


def watch(cluster: Cluster, sample: Callable[[], dict], done: Callable[[], bool], what: str) -> list[dict]:
    """Sample every 0.3 s until `done()`; the samples (each read Deployments before Jobs, see the asserts)."""
    samples: list[dict] = []

    def step() -> bool:
        samples.append(sample())
        return done()

    try:
        wait_until(step, STEP_TIMEOUT_S, what, interval=0.3)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nKustomizations: {describe(cluster.api)}") from None
    return samples


# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flux_env(e2e_cluster: Cluster) -> Iterator[dict[str, Any]]:
    """flux-system, the weights volume, a served repository and the two controllers; all removed after."""
    missing = FluxControllers.missing()
    assert not missing, (
        f"{missing} not built: run `tools/bootstrap.sh flux-source-controller flux-kustomize-controller`"
    )
    cluster = e2e_cluster
    tmp = Path(tempfile.mkdtemp(prefix=f"{CLUSTER_NAME}-flux-"))
    pv_name = f"{CLUSTER_NAME}-flux-weights"
    # an earlier module may still be deleting it (test_export_applies removes it without waiting)
    cluster.kubectl("wait", "--for=delete", f"namespace/{FLUX_NAMESPACE}", "--timeout=120s", check=False)
    cluster.kubectl("create", "namespace", FLUX_NAMESPACE)
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": WEIGHTS["pvcSize"]},
            "accessModes": [WEIGHTS["pvcAccessMode"]],
            "storageClassName": STORAGE_CLASS,
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(tmp / "weights")},  # never mounted: kwok runs no container
        },
    }
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(pv))
    repos, work = tmp / "repos", tmp / "work"
    repos.mkdir()
    git(tmp, "init", "-q", "--bare", "-b", "main", str(repos / "bundle.git"))
    git(tmp, "clone", "-q", str(repos / "bundle.git"), str(work))
    git(work, "checkout", "-q", "-b", "main")
    try:
        with GitHTTPServer(repos) as server, flux_controllers(cluster.kubeconfig, tmp / "flux") as controllers:
            yield {"tmp": tmp, "work": work, "url": server.url("bundle.git"), "controllers": controllers}
            # While the controllers run: deleting the Kustomizations prunes what they applied.
            cluster.kubectl(
                "delete",
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "--all",
                "-n",
                FLUX_NAMESPACE,
                "--timeout=120s",
                check=False,
            )
    finally:
        for kind in ("kustomizations.kustomize.toolkit.fluxcd.io", "gitrepositories.source.toolkit.fluxcd.io"):
            for name in cluster.kubectl("get", kind, "-n", FLUX_NAMESPACE, "-o", "name", check=False).stdout.split():
                # a controller that is gone cannot remove its finalizer
                cluster.kubectl(
                    "patch",
                    name,
                    "-n",
                    FLUX_NAMESPACE,
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":null}}',
                    check=False,
                )
                cluster.kubectl("delete", name, "-n", FLUX_NAMESPACE, "--wait=false", check=False)
        namespace = build_for_env(ENV).namespace
        cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--timeout=180s", check=False)
        cluster.kubectl(
            "delete", "priorityclass", "-l", f"jina-embeddings/stack={ENV}", "--ignore-not-found", check=False
        )
        cluster.kubectl("delete", "namespace", FLUX_NAMESPACE, "--ignore-not-found", "--timeout=120s", check=False)
        cluster.kubectl("delete", "pv", pv_name, "--ignore-not-found", "--timeout=60s", check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def test_flux_reconciles_the_export(e2e_cluster: Cluster, flux_env: dict[str, Any]) -> None:
    cluster, work, url = e2e_cluster, flux_env["work"], flux_env["url"]
    controllers: FluxControllers = flux_env["controllers"]
    api, clock = cluster.api, Clock()
    stack_root = flux_env["tmp"] / "stack"
    stack_root.mkdir()
    shutil.copytree(REPO_ROOT / "manifests", work / "manifests")
    write_stack(stack_root)
    export_into(work, stack_root)
    plan = build_for_env(ENV, root=stack_root)
    ns = plan.namespace
    gitops = work / "manifests" / ENV / "gitops"
    names = sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in gitops.glob("flux-kustomization-*.yaml"))
    assert any(n.endswith("-weights") for n in names), names
    servers = [r.name for r in plan.releases]

    def deploy(sha: str) -> None:
        fleet_overlay(flux_env["tmp"] / "fleet", gitops, url, sha)
        cluster.kubectl("apply", "--server-side", "-k", str(flux_env["tmp"] / "fleet"))

    def sample() -> dict:
        # Deployments first, then Jobs, then the Namespace: each is created after the one read next, so a
        # sample that shows a Deployment also shows the Job it waited for (and the Job, the Namespace).
        deps = {n: (pod_template(d), settled(d)) for n, d in deployments(api, ns).items()}
        jobs = job_state(api, ns)
        listed: Any = client.CoreV1Api(api).list_namespace()
        namespaces = [n.metadata.name for n in listed.items]
        return {"deployments": deps, "jobs": jobs, "namespace": ns in namespaces, "flux": describe(api)}

    sha1 = commit(work, "the local stack with its weights on a PVC")
    clock.step("repository committed")

    # a. first sync: platform, then the weights Job (completed), then the servers
    deploy(sha1)
    samples = watch(cluster, sample, lambda: all_applied(api, sha1, names), f"first sync of {sha1[:12]}")
    controllers.assert_running()
    for s in samples:
        if s["deployments"]:
            assert s["jobs"] and all(s["jobs"].values()), f"a Deployment before the weights Job completed: {s}"
        if s["jobs"]:
            assert s["namespace"], f"the Job before the Namespace: {s}"
    assert sorted(samples[-1]["deployments"]) == sorted(servers)
    # the order was seen, not inferred: some sample had the Job and no Deployment yet
    assert any(s["jobs"] and not s["deployments"] for s in samples), samples[:5]
    job1 = wait_until(lambda: job_state(api, ns), 10, "the weights Job")
    wait_until(lambda: all(settled(d) for d in deployments(api, ns).values()), 60, "every Deployment settled")
    clock.step("a. first sync (platform -> weights Job completed -> servers)")

    # b. a new model revision: a new Job replaces the old, then the servers roll
    before = {n: pod_template(d) for n, d in deployments(api, ns).items()}
    write_stack(stack_root, NEW_REVISION)
    export_into(work, stack_root)
    sha2 = commit(work, f"retrieval: model revision {NEW_REVISION}")
    deploy(sha2)
    samples = watch(cluster, sample, lambda: all_applied(api, sha2, names), f"rollout of {sha2[:12]}")
    assert all("immutable" not in s["flux"] for s in samples), [s["flux"] for s in samples if "immutable" in s["flux"]]
    job2 = job_state(api, ns)
    assert set(job2) != set(job1) and len(job2) == 1 and all(job2.values()), (job1, job2)
    retrieval = plan.release("retrieval").name
    for s in samples:
        if s["deployments"][retrieval][0] != before[retrieval]:
            assert s["jobs"] == job2, f"retrieval rolled before the new weights Job completed: {s}"
    # seen: the new Job (running or completed) while retrieval still ran the old revision
    assert any(set(s["jobs"]) == set(job2) and s["deployments"][retrieval][0] == before[retrieval] for s in samples)
    after = deployments(api, ns)
    assert pod_template(after[retrieval]) != before[retrieval]
    assert NEW_REVISION in yaml.safe_dump(after[retrieval].spec.template.to_dict())
    wait_until(lambda: all(settled(d) for d in deployments(api, ns).values()), 60, "every Deployment settled")
    clock.step(f"b. new revision: Job {next(iter(job1))} -> {next(iter(job2))}, then retrieval rolled")

    # c. a manual change is reverted
    fixed = plan.release("text-matching").name
    want = deployments(api, ns)[fixed].spec.replicas
    cluster.kubectl("scale", "deployment", fixed, "-n", ns, f"--replicas={want + 2}")
    wait_until(
        lambda: deployments(api, ns)[fixed].spec.replicas == want,
        STEP_TIMEOUT_S,
        f"the controller to scale {fixed} back to {want}",
    )
    clock.step(f"c. kubectl scale {fixed} --replicas={want + 2} reverted to {want}")

    # d. a bad commit is refused; the running version serves on
    serving = deployments(api, ns)[fixed]
    good = {n: pod_template(d) for n, d in deployments(api, ns).items()}
    path = work / "manifests" / ENV / "text-matching" / f"deployment-{fixed}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "lots"
    path.write_text(yaml.safe_dump(doc))
    sha3 = commit(work, "a broken manifest: an invalid memory limit")
    deploy(sha3)
    bad = f"{yaml.safe_load((gitops / 'flux-gitrepository.yaml').read_text())['metadata']['name']}-text-matching"

    def refused() -> dict:
        k = kustomizations(api)[bad]
        cond = ready(k)
        return cond if cond.get("status") == "False" and sha3 in k["status"].get("lastAttemptedRevision", "") else {}

    cond = wait_until(refused, STEP_TIMEOUT_S, f"{bad} to refuse {sha3[:12]}")
    print(f"[flux-e2e] {bad} refused {sha3[:12]}: {cond['reason']}: {cond['message']}", flush=True)
    assert f"Deployment/{ns}/{fixed}" in cond["message"] and "quantities must match" in cond["message"], cond
    assert kustomizations(api)[bad]["status"]["lastAppliedRevision"].endswith(sha2)
    now = deployments(api, ns)[fixed]
    assert pod_template(now) == pod_template(serving) and settled(now), now.status
    clock.step("d. bad commit refused, the running version serves on")

    # e. a revert commit restores the previous state
    git(work, "revert", "--no-edit", "HEAD")
    git(work, "push", "-q", "origin", "main")
    sha4 = git(work, "rev-parse", "HEAD")
    deploy(sha4)
    watch(cluster, sample, lambda: all_applied(api, sha4, names), f"the revert {sha4[:12]}")
    final = deployments(api, ns)
    assert {n: pod_template(d) for n, d in final.items()} == good
    assert all(settled(d) for d in final.values())
    controllers.assert_running()
    clock.step("e. revert commit applied, state as before the bad commit")
    print(f"[flux-e2e] total {time.monotonic() - clock.t0:.1f}s", flush=True)
