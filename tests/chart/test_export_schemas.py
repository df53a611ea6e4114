"""Every exported object is valid in strict mode, and `kubectl kustomize` builds each stack.

Built-in kinds are checked against kubernetes-validate's strict schemas for every Kubernetes minor the
chart supports (1.31-1.37); custom resources (ServiceMonitor, ScaledObject, Argo CD Application, Flux
Kustomization and GitRepository, ...) against their real CRDs from the tool cache (tests/kube_schema.py).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections import Counter

import kubernetes_validate
import pytest
import yaml

from infra.core.paths import REPO_ROOT
from tests import kube_schema
from tests.conftest import STACKS, pin

MANIFESTS = REPO_ROOT / "manifests"
# Where each custom resource's CRD comes from: the upstream Go module that `tools/bootstrap.sh crds`
# copies it out of (Argo CD: github.com/argoproj/argo-cd/v3 manifests/crds; Flux: github.com/fluxcd/
# kustomize-controller and source-controller config/crd/bases; Karpenter: sigs.k8s.io/karpenter pkg/apis/crds;
# pins in tools/versions.env).
BOOTSTRAPPED_CRD_GROUPS = {
    "monitoring.coreos.com",
    "keda.sh",
    "gateway.networking.k8s.io",
    "argoproj.io",
    "kustomize.toolkit.fluxcd.io",
    "source.toolkit.fluxcd.io",
    "karpenter.sh",  # sigs.k8s.io/karpenter pkg/apis/crds: the eks-karpenter platform's NodeOverlay
}


@functools.cache
def exported_objects(env: str) -> list[tuple[str, dict]]:
    """(path under manifests/, object) for every object file of a stack, gitops/ included; not values/."""
    env_dir = MANIFESTS / env
    out: list[tuple[str, dict]] = []
    for path in sorted(env_dir.rglob("*.yaml")):
        rel = path.relative_to(env_dir)
        if rel.parts[0] == "values" or rel.as_posix() == "kustomization.yaml":
            continue
        out.extend((f"{env}/{rel.as_posix()}", doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return out


@functools.cache
def custom_kinds() -> list[tuple[str, str]]:
    kinds = {
        (o["apiVersion"], o["kind"])
        for env in STACKS
        if (MANIFESTS / env).is_dir()
        for _, o in exported_objects(env)
        if not kube_schema.is_builtin(o)
    }
    return sorted(kinds)


@pytest.mark.parametrize("version", kube_schema.KUBE_VERSIONS)
@pytest.mark.parametrize("env", STACKS)
def test_builtin_objects_are_valid_in_strict_mode(env, version):
    checked, errors = 0, []
    for path, obj in exported_objects(env):
        try:
            kube_schema.validate_builtin(obj, version)
            checked += 1
        except kubernetes_validate.SchemaNotFoundError:
            continue  # a custom resource: test_custom_resources_are_valid_against_their_crd
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"manifests/{path}: {exc.message} at {'.'.join(map(str, exc.absolute_path))}")
    assert not errors, f"invalid for Kubernetes {version}:\n" + "\n".join(errors)
    assert checked >= 8, f"only {checked} built-in objects in manifests/{env}"


@pytest.mark.parametrize("api_version, kind", custom_kinds(), ids=[f"{k}.{a.split('/')[0]}" for a, k in custom_kinds()])
def test_custom_resources_are_valid_against_their_crd(api_version, kind):
    if (api_version, kind) not in kube_schema.crd_schemas():
        group, where = api_version.split("/")[0], kube_schema.crds_dir()
        if group in BOOTSTRAPPED_CRD_GROUPS and where.is_dir():
            pytest.fail(f"no CRD for {kind} ({api_version}) in {where}, which `tools/bootstrap.sh crds` should provide")
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            f"no CRD for {kind} ({api_version}) in {where}: "
            + (
                "run tools/bootstrap.sh crds"
                if group in BOOTSTRAPPED_CRD_GROUPS
                else "tools/bootstrap.sh crds does not fetch it yet"
            )
        )
    objects = [
        (path, o)
        for env in STACKS
        for path, o in exported_objects(env)
        if (o["apiVersion"], o["kind"]) == (api_version, kind)
    ]
    errors = [f"manifests/{path}: {e}" for path, o in objects for e in kube_schema.validate_custom(o)]
    assert objects and not errors, "\n".join(errors)


def test_the_export_has_the_custom_resources_the_stacks_ask_for():
    """The CRD test above is parametrized from the tree: make sure it sees what the stacks configure."""
    kinds = {k for _, k in custom_kinds()}
    assert {"ServiceMonitor", "ScaledObject", "Application", "Kustomization", "GitRepository"} <= kinds


def pinned_kubectl() -> str:
    """kubectl from PATH (tools/env.sh puts the tool cache first), only if it is the pinned version."""
    pinned = pin("KUBERNETES_VERSION")
    kubectl = shutil.which("kubectl")
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True).stdout if kubectl else ""
    if kubectl is None or f"Client Version: {pinned}\n" not in version + "\n":
        reason = (
            f"the pinned kubectl {pinned} is not first on PATH (found {kubectl or 'none'}): "
            "run tools/bootstrap.sh kubernetes, then `source tools/env.sh`"
        )
        # `make test` (and so CI) puts the pinned kubectl first on PATH: there a skip would hide a broken setup.
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return kubectl


def identity(obj: dict) -> tuple[str, str, str, str]:
    return obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


@pytest.mark.parametrize("env", STACKS)
def test_kubectl_kustomize_builds_exactly_the_object_files(env):
    """`kubectl kustomize manifests/<env>` (what Argo CD and Flux run) yields each object file unchanged."""
    kubectl = pinned_kubectl()
    proc = subprocess.run(
        [kubectl, "kustomize", f"manifests/{env}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert proc.returncode == 0, proc.stderr
    built = [o for o in yaml.safe_load_all(proc.stdout) if o]
    files = [o for path, o in exported_objects(env) if not path.startswith(f"{env}/gitops/")]
    assert Counter(map(identity, built)) == Counter(map(identity, files))
    by_id = {identity(o): o for o in files}
    for obj in built:
        assert obj == by_id[identity(obj)], f"kustomize changed {'/'.join(identity(obj))}"
