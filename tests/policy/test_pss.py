"""Pod Security Standards (baseline + restricted) over every pod template the bundle renders, and one
mutation per control proving the checker catches that violation (infra/checks/policy/pss.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from infra.checks.policy import pss
from infra.checks.policy.pss import BASELINE, RESTRICTED
from infra.core.stackfile import load_stack
from tests.policy.conftest import find


def pods(bundles) -> list[tuple[str, dict[str, Any]]]:
    return [(name, obj) for name, objects in bundles.items() for obj in objects if pss.pod_template(obj) is not None]


def test_every_pod_template_of_every_stack_scenario_and_export_is_restricted(bundles):
    checked = pods(bundles)
    kinds = {obj["kind"] for _, obj in checked}
    violations = [f"{name}: {v}" for name, obj in checked for v in pss.check_object(obj, RESTRICTED)]
    assert not violations, "\n".join(violations)
    # Every stack and scenario has pods; the weights Job (prod) is checked like the Deployments.
    assert {"Deployment", "Job"} <= kinds
    assert all(any(n == name for n, _ in checked) for name in bundles), "a bundle without pod templates"
    print(f"\n{len(checked)} pod templates x {len(pss.CONTROLS)} controls: 0 violations")


def test_the_namespace_enforces_restricted_at_the_version_the_checker_mirrors(bundles):
    for name in (n for n in bundles if n.startswith("stack:")):
        ns = find(bundles[name], "Namespace")
        labels = ns["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == RESTRICTED, name
        assert labels["pod-security.kubernetes.io/enforce-version"] == "latest", name


def test_restricted_includes_every_baseline_control():
    assert set(pss.controls(BASELINE)) < set(pss.controls(RESTRICTED))
    assert len(pss.controls(BASELINE)) == 12 and len(pss.controls(RESTRICTED)) == 18
    assert len({c.id for c in pss.CONTROLS}) == len(pss.CONTROLS)
    with pytest.raises(ValueError, match="privileged"):
        pss.controls("privileged")


# ---------------------------------------------------------------------------------------------
# GPU pods: the only departures are explicit and allowed
# ---------------------------------------------------------------------------------------------


def test_amd_pods_get_exactly_the_video_and_render_groups_and_nvidia_pods_none(bundles):
    local = load_stack("local")
    render_gid = local.pools["gpu-amd"].render_group_id
    for obj in bundles["stack:local"]:
        if obj["kind"] != "Deployment":
            continue
        groups = obj["spec"]["template"]["spec"]["securityContext"].get("supplementalGroups", [])
        resources = obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        if "amd.com/gpu" in resources:
            assert groups == [44, render_gid], obj["metadata"]["name"]
        else:
            assert groups == [], obj["metadata"]["name"]
    assert set(pss.GPU_ALLOWANCES) == {"supplementalGroups", "runAsUser"}


def test_no_gpu_pod_uses_privileged_host_access_or_extra_capabilities(bundles):
    for name, obj in pods(bundles):
        template = pss.pod_template(obj)
        assert template is not None, name
        _, spec = template
        for c in pss.containers(spec):
            sc = c["securityContext"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, f"{name}: {c['name']}"
            assert sc.get("privileged", False) is False and sc["allowPrivilegeEscalation"] is False, (
                f"{name}: {c['name']}"
            )
        assert not any(k in spec for k in ("hostNetwork", "hostPID", "hostIPC")), name


def test_vllm_upstream_amd_example_fails_baseline_as_documented():
    """vLLM's docs/deployment/k8s.md AMD Deployment (reliability-security.md §2.3): not even baseline."""
    spec = {
        "hostNetwork": True,
        "hostIPC": True,
        "securityContext": {"seccompProfile": {"type": "Unconfined"}, "runAsGroup": 44},
        "containers": [{"name": "vllm", "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}],
    }
    flagged = {c.id for c, _ in pss.check_pod({}, spec, BASELINE)}
    assert flagged == {"hostNamespaces", "seccompProfile_baseline", "capabilities_baseline"}


# ---------------------------------------------------------------------------------------------
# One mutation per control
# ---------------------------------------------------------------------------------------------


def _container(spec: dict) -> dict:
    return spec["containers"][0]


def _sc(spec: dict) -> dict:
    return _container(spec).setdefault("securityContext", {})


MUTATIONS: dict[str, Callable[[dict, dict], object]] = {  # what a mutation returns is ignored
    "hostProcess": lambda meta, spec: spec["securityContext"].update(windowsOptions={"hostProcess": True}),
    "hostNamespaces": lambda meta, spec: spec.update(hostNetwork=True),
    "privileged": lambda meta, spec: _sc(spec).update(privileged=True),
    "capabilities_baseline": lambda meta, spec: _sc(spec)["capabilities"].update(add=["SYS_PTRACE"]),
    "hostPathVolumes": lambda meta, spec: spec["volumes"].append({"name": "kfd", "hostPath": {"path": "/dev/kfd"}}),
    "hostPorts": lambda meta, spec: _container(spec)["ports"][0].update(hostPort=8000),
    "appArmorProfile": lambda meta, spec: _sc(spec).update(appArmorProfile={"type": "Unconfined"}),
    "seLinuxOptions": lambda meta, spec: spec["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
    "procMount": lambda meta, spec: _sc(spec).update(procMount="Unmasked"),
    "seccompProfile_baseline": lambda meta, spec: _sc(spec).update(seccompProfile={"type": "Unconfined"}),
    "sysctls": lambda meta, spec: spec["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "65536"}]),
    "hostProbesAndHostLifecycle": lambda meta, spec: _container(spec)["livenessProbe"]["httpGet"].update(
        host="169.254.169.254"
    ),
    "restrictedVolumes": lambda meta, spec: spec["volumes"].append(
        {"name": "models-nfs", "nfs": {"server": "nfs", "path": "/models"}}
    ),
    "allowPrivilegeEscalation": lambda meta, spec: _sc(spec).pop("allowPrivilegeEscalation"),
    "runAsNonRoot": lambda meta, spec: _sc(spec).update(runAsNonRoot=False),
    "runAsUser": lambda meta, spec: spec["securityContext"].update(runAsUser=0),
    "seccompProfile_restricted": lambda meta, spec: (
        spec["securityContext"].pop("seccompProfile"),
        _sc(spec).pop("seccompProfile"),
    ),
    "capabilities_restricted": lambda meta, spec: _sc(spec)["capabilities"].update(drop=["NET_RAW"]),
}


def test_every_control_has_a_mutation():
    assert set(MUTATIONS) == {c.id for c in pss.CONTROLS}


# Mutate a real rendered pod of each vendor (AMD: supplemental groups; NVIDIA: a MIG slice) and the
# weights Job (a different template).
BASES = [
    ("stack:local", "Deployment", "jina-embeddings-classification"),
    ("stack:prod", "Deployment", "jina-embeddings-retrieval"),
    ("stack:prod", "Job", "jina-embeddings-weights-populate"),
]


@pytest.mark.parametrize("base", BASES, ids=[f"{b[0]}-{b[2]}" for b in BASES])
@pytest.mark.parametrize("control", [c for c in pss.CONTROLS], ids=[c.id for c in pss.CONTROLS])
def test_each_violation_is_caught_and_names_the_object(bundles, control, base):
    bundle, kind, name = base
    obj = copy.deepcopy(find(bundles[bundle], kind, lambda o: o["metadata"]["name"] == name))
    assert pss.check_object(obj) == [], "the unmutated pod must pass"
    meta, spec = obj["spec"]["template"]["metadata"], obj["spec"]["template"]["spec"]
    if control.id == "hostPorts" and not _container(spec).get("ports"):
        _container(spec)["ports"] = [{"containerPort": 8080}]
    if control.id == "hostProbesAndHostLifecycle" and "livenessProbe" not in _container(spec):
        _container(spec)["livenessProbe"] = {"httpGet": {"path": "/", "port": 8080}}
    MUTATIONS[control.id](meta, spec)
    violations = pss.check_object(obj)
    flagged = {v.control for v in violations}
    assert control.name in flagged, f"{control.name} missed the mutation; flagged: {flagged}"
    assert all(v.object == f"{kind}/{obj['metadata']['namespace']}/{name}" for v in violations)
    # A restricted-only control never fires at baseline; a baseline control fires at both levels.
    at_baseline = {v.control for v in pss.check_object(obj, BASELINE)}
    assert (control.name in at_baseline) == (control.level == BASELINE)


def test_container_level_settings_override_a_good_pod_level_only_where_the_admission_code_says():
    """runAsNonRoot and seccomp: a pod-level setting covers containers that leave it unset."""
    spec = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "a", "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
        ],
    }
    assert pss.check_pod({}, spec) == []
    spec["initContainers"] = [
        {
            "name": "init",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
            },
        }
    ]
    assert pss.check_pod({}, spec) == []
    spec["ephemeralContainers"] = [{"name": "debug"}]  # every container kind is visited
    flagged = {c.id for c, _ in pss.check_pod({}, spec)}
    assert flagged == {"allowPrivilegeEscalation", "capabilities_restricted"}
