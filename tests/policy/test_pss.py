"""Pod Security Standards (baseline + restricted) over every pod template the bundle renders, judged by the
pinned kube-apiserver's PodSecurity admission (dry-run Pods into labelled namespaces, infra/checks/policy/
admission.py), and one mutation per control proving the real admission code catches what matters."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.checks.policy import admission
from infra.checks.policy.admission import BASELINE, RESTRICTED
from infra.core.paths import REPO_ROOT
from infra.core.stackfile import load_stack
from tests.e2e.kube import wait_until
from tests.policy.conftest import find


@pytest.fixture(scope="session")
def api() -> Iterator[admission.LocalApiServer]:
    """etcd + kube-apiserver on 127.0.0.1 (tools/bootstrap.sh kubernetes etcd), stopped at the end of the session."""
    assert admission.available(), "kube-apiserver/etcd not built: run `tools/bootstrap.sh kubernetes etcd`"
    server = admission.shared()
    yield server
    server.stop()
    admission._SHARED.clear()


def pods(bundles) -> list[tuple[str, dict[str, Any]]]:
    return [(name, obj) for name, objects in bundles.items() for obj in objects if admission.pod_template(obj)]


def test_every_pod_template_of_every_stack_scenario_and_export_is_restricted(bundles, api):
    checked = pods(bundles)
    kinds = {obj["kind"] for _, obj in checked}
    violations = [f"{name}: {v}" for name, obj in checked for v in admission.check_object(obj, RESTRICTED, api)]
    assert not violations, "\n".join(violations)
    # Every stack and scenario has pods; the weights Job (prod) is checked like the Deployments.
    assert {"Deployment", "Job"} <= kinds
    assert all(any(n == name for n, _ in checked) for name in bundles), "a bundle without pod templates"
    print(f"\n{len(checked)} pod templates admitted by kube-apiserver {api.minor} at restricted")


def test_the_namespace_enforces_restricted_at_the_version_the_checker_mirrors(bundles):
    for name in (n for n in bundles if n.startswith("stack:")):
        ns = find(bundles[name], "Namespace")
        labels = ns["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == RESTRICTED, name
        assert labels["pod-security.kubernetes.io/enforce-version"] == "latest", name


def test_restricted_runs_every_baseline_check_or_its_restricted_override():
    baseline, restricted = set(admission.controls(BASELINE)), set(admission.controls(RESTRICTED))
    assert len(baseline) == 12 and len(restricted) == 15 and len(admission.CONTROLS) == 18
    assert {c.id for c in baseline - restricted} == set(admission.RESTRICTED_OVERRIDES)
    assert set(admission.RESTRICTED_OVERRIDES.values()) <= {c.id for c in restricted}
    with pytest.raises(ValueError, match="privileged"):
        admission.controls("privileged")


def test_the_api_server_judges_at_its_own_minor(api):
    assert api.minor == "v1.36"


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
    assert set(admission.GPU_ALLOWANCES) == {"supplementalGroups", "runAsUser"}


def test_no_gpu_pod_uses_privileged_host_access_or_extra_capabilities(bundles):
    for name, obj in pods(bundles):
        template = admission.pod_template(obj)
        assert template is not None, name
        _, spec = template
        for c in admission.containers(spec):
            sc = c["securityContext"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, f"{name}: {c['name']}"
            assert sc.get("privileged", False) is False and sc["allowPrivilegeEscalation"] is False, (
                f"{name}: {c['name']}"
            )
        assert not any(k in spec for k in ("hostNetwork", "hostPID", "hostIPC")), name


def _pod(spec: dict) -> dict:
    return {"kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def test_vllm_upstream_amd_example_fails_baseline_as_documented(api):
    """vLLM's docs/deployment/k8s.md AMD Deployment: not even baseline."""
    spec = {
        "hostNetwork": True,
        "hostIPC": True,
        "securityContext": {"seccompProfile": {"type": "Unconfined"}, "runAsGroup": 44},
        "containers": [
            {"name": "vllm", "image": "rocm/vllm", "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}
        ],
    }
    flagged = {v.control.removeprefix("pss.") for v in admission.check_object(_pod(spec), BASELINE, api)}
    assert flagged == {"hostNamespaces", "seccompProfile_baseline", "capabilities_baseline"}


# ---------------------------------------------------------------------------------------------
# One mutation per control
# ---------------------------------------------------------------------------------------------


def _container(spec: dict) -> dict:
    return spec["containers"][0]


def _sc(spec: dict) -> dict:
    return _container(spec).setdefault("securityContext", {})


# Each mutation is a Pod the API server accepts as valid, so that PodSecurity judges it (validation runs
# first): a HostProcess pod must use the host network; privileged cannot go with allowPrivilegeEscalation=false.
MUTATIONS: dict[str, Callable[[dict, dict], object]] = {  # what a mutation returns is ignored
    "hostProcess": lambda meta, spec: (
        spec["securityContext"].update(windowsOptions={"hostProcess": True}),
        spec.update(hostNetwork=True),
    ),
    "hostNamespaces": lambda meta, spec: spec.update(hostNetwork=True),
    "privileged": lambda meta, spec: (_sc(spec).update(privileged=True), _sc(spec).pop("allowPrivilegeEscalation")),
    "capabilities_baseline": lambda meta, spec: _sc(spec)["capabilities"].update(add=["SYS_PTRACE"]),
    "hostPathVolumes": lambda meta, spec: spec["volumes"].append({"name": "kfd", "hostPath": {"path": "/dev/kfd"}}),
    "hostPorts": lambda meta, spec: _container(spec)["ports"][0].update(hostPort=8000),
    "appArmorProfile": lambda meta, spec: _sc(spec).update(appArmorProfile={"type": "Unconfined"}),
    "seLinuxOptions": lambda meta, spec: spec["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
    # validation allows Unmasked only in a user namespace; baseline then allows it too, restricted does not
    "procMount": lambda meta, spec: (_sc(spec).update(procMount="Unmasked"), spec.update(hostUsers=False)),
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
    assert set(MUTATIONS) == {c.id for c in admission.CONTROLS}


# Mutate a real rendered pod of each vendor (AMD: supplemental groups; NVIDIA: a MIG slice) and the
# weights Job (a different template).
BASES = [
    ("stack:local", "Deployment", "jina-embeddings-classification"),
    ("stack:prod", "Deployment", "jina-embeddings-retrieval"),
    ("stack:prod", "Job", "jina-embeddings-weights-populate-"),  # + the digest of what it downloads
]


@pytest.mark.parametrize("base", BASES, ids=[f"{b[0]}-{b[2]}" for b in BASES])
@pytest.mark.parametrize("control", list(admission.CONTROLS), ids=[c.id for c in admission.CONTROLS])
def test_each_violation_is_caught_and_names_the_object(bundles, api, control, base):
    bundle, kind, name = base
    obj = copy.deepcopy(
        find(
            bundles[bundle],
            kind,
            lambda o: o["metadata"]["name"] == name or (name.endswith("-") and o["metadata"]["name"].startswith(name)),
        )
    )
    assert admission.check_object(obj, RESTRICTED, api) == [], "the unmutated pod must pass"
    meta, spec = obj["spec"]["template"]["metadata"], obj["spec"]["template"]["spec"]
    if control.id == "hostPorts" and not _container(spec).get("ports"):
        _container(spec)["ports"] = [{"containerPort": 8080}]
    if control.id == "hostProbesAndHostLifecycle" and "livenessProbe" not in _container(spec):
        _container(spec)["livenessProbe"] = {"httpGet": {"path": "/", "port": 8080}}
    MUTATIONS[control.id](meta, spec)
    violations = admission.check_object(obj, RESTRICTED, api)
    flagged = {v.control for v in violations}
    # at restricted, a baseline check that restricted overrides reports as its restricted twin
    expected = "pss." + admission.RESTRICTED_OVERRIDES.get(control.id, control.id)
    assert expected in flagged, f"{expected} missed the mutation; flagged: {flagged}"
    assert all(v.object == f"{kind}/{obj['metadata']['namespace']}/{obj['metadata']['name']}" for v in violations)
    # A restricted-only control never fires at baseline; a baseline control fires at both levels.
    at_baseline = {v.control for v in admission.check_object(obj, BASELINE, api)}
    assert (control.name in at_baseline) == (control.level == BASELINE and control.id != "procMount")


def test_host_network_is_judged_with_the_host_ports_it_defaults_in(bundles, api):
    """The API server defaults hostPort = containerPort under hostNetwork before PodSecurity judges the Pod; the
    Python port of the checks (infra/policy/pss.py, removed) judged the undefaulted template and missed it."""
    obj = copy.deepcopy(find(bundles["stack:prod"], "Deployment"))
    obj["spec"]["template"]["spec"]["hostNetwork"] = True
    flagged = {v.control for v in admission.check_object(obj, RESTRICTED, api)}
    assert flagged == {"pss.hostNamespaces", "pss.hostPorts"}


def test_container_level_settings_override_a_good_pod_level_only_where_the_admission_code_says(api):
    """runAsNonRoot and seccomp: a pod-level setting covers containers that leave it unset."""
    spec = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "a",
                "image": "busybox",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }
        ],
    }
    assert admission.check_object(_pod(spec), RESTRICTED, api) == []
    spec["initContainers"] = [
        {
            "name": "init",
            "image": "busybox",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
            },
        }
    ]
    assert admission.check_object(_pod(spec), RESTRICTED, api) == []
    spec["initContainers"] = [
        *spec["initContainers"],
        {"name": "debug", "image": "busybox"},
    ]  # every container is visited
    flagged = {v.control.removeprefix("pss.") for v in admission.check_object(_pod(spec), RESTRICTED, api)}
    assert flagged == {"allowPrivilegeEscalation", "capabilities_restricted"}


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a killed server waits for its reaper as one)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_owner_leaves_no_server_and_no_directory():
    """The Pulumi engine kills the policy pack's analyzer, which runs no atexit: the watcher stops both servers and
    removes their directory (certificates, token file, etcd data) once the owner is gone."""
    program = (
        "import sys\n"
        "from infra.checks.policy.admission import LocalApiServer\n"
        "api = LocalApiServer().start()\n"
        "print(api.dir, *(p.pid for p in api.procs), flush=True)\n"
        "sys.stdin.read()\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", program], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        directory, *pids = owner.stdout.readline().split()
        assert Path(directory).is_dir() and len(pids) == 2 and all(_running(int(p)) for p in pids)
    finally:
        owner.kill()
        owner.wait()
    # the watcher polls every second, sends SIGTERM, and SIGKILL 10 s later
    wait_until(lambda: not any(_running(int(p)) for p in pids), 30, f"kube-apiserver and etcd ({pids}) to stop")
    wait_until(lambda: not Path(directory).exists(), 15, f"{directory} to be removed")
