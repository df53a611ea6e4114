"""Pod Security Standards, baseline and restricted, as Kubernetes' admission code enforces them.

No kube-apiserver can run where the policy tier runs, so this module mirrors the checks of
`k8s.io/pod-security-admission/policy/check_*.go` (kubernetes/kubernetes, staging) at the version the
bundle's namespace asks for: `pod-security.kubernetes.io/enforce-version: latest` on the pinned
kube-apiserver v1.36. One `Control` per registered check, named by the check's ID, with the source file
it mirrors. Each check takes the pod's metadata and spec (of a Pod, or of any workload's pod template)
and returns its problems in the admission code's own words.

Deliberately not mirrored:
- checks newer than 1.36: `ulimits` (baseline, 1.37) and `cgroupOptions_restricted` (1.38);
- the opt-in relaxation for user-namespace pods (`hostUsers: false`), off unless the API server is
  started with it; the bundle's pods do not use user namespaces;
- pre-1.19 seccomp annotations, which 1.36 API servers no longer accept.

GPU pods need no exception here: the AMD pools' `supplementalGroups` (video 44 + the node's render
group) are not a Pod Security control (the draft "non-root groups" control was never enforced), and
device access comes from the device plugin, never from `privileged` or hostPath. See `GPU_ALLOWANCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra.checks.policy.violations import Violation, object_id

BASELINE, RESTRICTED = "baseline", "restricted"

# Settings of the GPU pods that other tools flag and Pod Security allows, each with its reason. They
# are the only departures from the most conservative profile, and they are all *allowed* by
# restricted; the tests prove the rendered pods carry nothing beyond them.
GPU_ALLOWANCES: dict[str, str] = {
    "supplementalGroups": "AMD only: video (44) and the node's render group, so the non-root vLLM process can open "
    "/dev/kfd and /dev/dri/renderD* (ROCm/k8s-device-plugin#39). Pod Security has no group control.",
    "runAsUser": "2000, the vllm user the vLLM images ship (vllm#40275); restricted only forbids 0. Checkov CKV_K8S_40 "
    "(UID >= 10000) is skipped with this reason on the Deployment.",
}

_CAPABILITIES_BASELINE = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# check_sysctls.go: the 1.0 set, + ip_local_reserved_ports (1.27), + tcp keepalive/fin_timeout (1.29),
# + tcp_rmem/tcp_wmem (1.32).
_SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
# check_seLinuxOptions.go: container_engine_t joined in 1.31.
_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# check_restrictedVolumes.go: the only inline volume sources restricted allows.
_RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"

# Where each workload kind keeps its pod template.
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
    "Pod": (),
}


def pod_template(obj: Mapping[str, Any]) -> tuple[dict, dict] | None:
    """(pod metadata, pod spec) of a Pod or of a workload's pod template; None for other kinds."""
    path = _TEMPLATE_PATHS.get(obj.get("kind", ""))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = (node or {}).get(key) or {}
    return dict(node.get("metadata") or {}), dict(node.get("spec") or {})


# ---------------------------------------------------------------------------------------------
# Helpers mirroring visitor.go / helpers.go
# ---------------------------------------------------------------------------------------------


def containers(spec: Mapping[str, Any]) -> Iterator[dict]:
    """Every container of the pod: containers, initContainers and ephemeralContainers (visitContainers)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or ()


def _sc(container: Mapping[str, Any]) -> dict:
    return container.get("securityContext") or {}


def _pod_sc(spec: Mapping[str, Any]) -> dict:
    return spec.get("securityContext") or {}


def _names(items: Iterable[Mapping[str, Any]]) -> str:
    names = [c.get("name", "?") for c in items]
    return ("container " if len(names) == 1 else "containers ") + ", ".join(f'"{n}"' for n in names)


def _is_windows(spec: Mapping[str, Any]) -> bool:
    # Since 1.25 the restricted Linux-only checks skip pods that declare spec.os.name=windows.
    return (spec.get("os") or {}).get("name") == "windows"


# ---------------------------------------------------------------------------------------------
# Baseline
# ---------------------------------------------------------------------------------------------


def check_host_process(meta: dict, spec: dict) -> list[str]:
    bad = [c for c in containers(spec) if (_sc(c).get("windowsOptions") or {}).get("hostProcess") is True]
    pod = (_pod_sc(spec).get("windowsOptions") or {}).get("hostProcess") is True
    if pod or bad:
        who = " and ".join((["pod"] if pod else []) + ([_names(bad)] if bad else []))
        return [f"{who} must not set securityContext.windowsOptions.hostProcess=true"]
    return []


def check_host_namespaces(meta: dict, spec: dict) -> list[str]:
    bad = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field) is True]
    return [f"host namespaces: {', '.join(bad)}"] if bad else []


def check_privileged(meta: dict, spec: dict) -> list[str]:
    bad = [c for c in containers(spec) if _sc(c).get("privileged") is True]
    return [f"{_names(bad)} must not set securityContext.privileged=true"] if bad else []


def check_capabilities_baseline(meta: dict, spec: dict) -> list[str]:
    bad, caps = [], set()
    for c in containers(spec):
        added = set((_sc(c).get("capabilities") or {}).get("add") or ()) - _CAPABILITIES_BASELINE
        if added:
            bad.append(c)
            caps |= added
    return (
        [f"{_names(bad)} must not include {', '.join(sorted(caps))} in securityContext.capabilities.add"] if bad else []
    )


def check_host_path_volumes(meta: dict, spec: dict) -> list[str]:
    bad = [v.get("name", "?") for v in spec.get("volumes") or () if v.get("hostPath") is not None]
    return [f"hostPath volumes: {', '.join(bad)}"] if bad else []


def check_host_ports(meta: dict, spec: dict) -> list[str]:
    bad, ports = [], []
    for c in containers(spec):
        found = [str(p["hostPort"]) for p in c.get("ports") or () if p.get("hostPort")]
        if found:
            bad.append(c)
            ports += found
    return [f"{_names(bad)} use hostPort {', '.join(ports)}"] if bad else []


def check_app_armor(meta: dict, spec: dict) -> list[str]:
    problems = []
    allowed = ("RuntimeDefault", "Localhost")
    pod_type = (_pod_sc(spec).get("appArmorProfile") or {}).get("type")
    if pod_type is not None and pod_type not in allowed:
        problems.append(f'pod must not set securityContext.appArmorProfile.type to "{pod_type}"')
    bad = [c for c in containers(spec) if (_sc(c).get("appArmorProfile") or {}).get("type") not in (None, *allowed)]
    if bad:
        problems.append(
            f"{_names(bad)} must not set securityContext.appArmorProfile.type to a value other than RuntimeDefault or Localhost"
        )
    for key, value in sorted((meta.get("annotations") or {}).items()):
        if key.startswith(_APPARMOR_ANNOTATION_PREFIX) and not (
            value in ("", "runtime/default") or value.startswith("localhost/")
        ):
            problems.append(f'forbidden AppArmor profile {key}="{value}"')
    return problems


def check_selinux(meta: dict, spec: dict) -> list[str]:
    def bad_options(opts: Mapping[str, Any] | None) -> bool:
        if not opts:
            return False
        return opts.get("type", "") not in _SELINUX_TYPES or bool(opts.get("user")) or bool(opts.get("role"))

    setters = ["pod"] if bad_options(_pod_sc(spec).get("seLinuxOptions")) else []
    bad = [c for c in containers(spec) if bad_options(_sc(c).get("seLinuxOptions"))]
    if bad:
        setters.append(_names(bad))
    return (
        [
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions (type not in "
            f"{sorted(t for t in _SELINUX_TYPES if t)}, or user/role set)"
        ]
        if setters
        else []
    )


def check_proc_mount(meta: dict, spec: dict) -> list[str]:
    bad = [c for c in containers(spec) if _sc(c).get("procMount") not in (None, "Default")]
    return [f'{_names(bad)} must not set securityContext.procMount to a value other than "Default"'] if bad else []


def check_seccomp_baseline(meta: dict, spec: dict) -> list[str]:
    setters = ["pod"] if (_pod_sc(spec).get("seccompProfile") or {}).get("type") == "Unconfined" else []
    bad = [c for c in containers(spec) if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"]
    if bad:
        setters.append(_names(bad))
    return (
        [f'{" and ".join(setters)} must not set securityContext.seccompProfile.type to "Unconfined"'] if setters else []
    )


def check_sysctls(meta: dict, spec: dict) -> list[str]:
    bad = [s.get("name", "?") for s in _pod_sc(spec).get("sysctls") or () if s.get("name") not in _SAFE_SYSCTLS]
    return [f"forbidden sysctls: {', '.join(bad)}"] if bad else []


def check_host_probes_and_lifecycle(meta: dict, spec: dict) -> list[str]:
    bad: list[dict] = []
    hosts: set[Any] = set()  # `host` values as the manifest has them (strings, unless the manifest is broken)
    for c in containers(spec):
        handlers = [c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [(c.get("lifecycle") or {}).get(h) for h in ("postStart", "preStop")]
        found = {(h.get(kind) or {}).get("host") for h in handlers if h for kind in ("httpGet", "tcpSocket")} - {
            None,
            "",
        }
        if found:
            bad.append(c)
            hosts |= found
    return [f"{_names(bad)} use probe or lifecycle host {', '.join(sorted(hosts))}"] if bad else []


# ---------------------------------------------------------------------------------------------
# Restricted
# ---------------------------------------------------------------------------------------------


def check_restricted_volumes(meta: dict, spec: dict) -> list[str]:
    bad = []
    for volume in spec.get("volumes") or ():
        sources = set(volume) - {"name"}
        if not sources & _RESTRICTED_VOLUME_SOURCES:
            bad.append(f"{volume.get('name', '?')} ({', '.join(sorted(sources)) or 'unknown'})")
    return [f"volumes use restricted volume types: {', '.join(bad)}"] if bad else []


def check_allow_privilege_escalation(meta: dict, spec: dict) -> list[str]:
    if _is_windows(spec):
        return []
    bad = [c for c in containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    return [f"{_names(bad)} must set securityContext.allowPrivilegeEscalation=false"] if bad else []


def check_run_as_non_root(meta: dict, spec: dict) -> list[str]:
    pod_value = _pod_sc(spec).get("runAsNonRoot")
    explicit_false = ["pod"] if pod_value is False else []
    bad_explicit = [c for c in containers(spec) if _sc(c).get("runAsNonRoot") is False]
    if bad_explicit:
        explicit_false.append(_names(bad_explicit))
    if explicit_false:
        return [f"{' and '.join(explicit_false)} must not set securityContext.runAsNonRoot=false"]
    implicit = [c for c in containers(spec) if _sc(c).get("runAsNonRoot") is None and pod_value is not True]
    return [f"pod or {_names(implicit)} must set securityContext.runAsNonRoot=true"] if implicit else []


def check_run_as_user(meta: dict, spec: dict) -> list[str]:
    setters = ["pod"] if _pod_sc(spec).get("runAsUser") == 0 else []
    bad = [c for c in containers(spec) if _sc(c).get("runAsUser") == 0]
    if bad:
        setters.append(_names(bad))
    return [f"{' and '.join(setters)} must not set runAsUser=0"] if setters else []


def check_seccomp_restricted(meta: dict, spec: dict) -> list[str]:
    if _is_windows(spec):
        return []
    allowed = ("RuntimeDefault", "Localhost")
    pod_profile = _pod_sc(spec).get("seccompProfile")
    setters, pod_ok = [], False
    if pod_profile is not None:
        if pod_profile.get("type") in allowed:
            pod_ok = True
        else:
            setters.append("pod")
    explicit = [
        c
        for c in containers(spec)
        if _sc(c).get("seccompProfile") is not None and _sc(c)["seccompProfile"].get("type") not in allowed
    ]
    if explicit:
        setters.append(_names(explicit))
    if setters:
        return [
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to a value other than RuntimeDefault or Localhost"
        ]
    implicit = [c for c in containers(spec) if _sc(c).get("seccompProfile") is None and not pod_ok]
    return (
        [f'pod or {_names(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"']
        if implicit
        else []
    )


def check_capabilities_restricted(meta: dict, spec: dict) -> list[str]:
    if _is_windows(spec):
        return []
    problems = []
    missing_drop = [c for c in containers(spec) if "ALL" not in ((_sc(c).get("capabilities") or {}).get("drop") or ())]
    if missing_drop:
        problems.append(f'{_names(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    adding, caps = [], set()
    for c in containers(spec):
        extra = set((_sc(c).get("capabilities") or {}).get("add") or ()) - {"NET_BIND_SERVICE"}
        if extra:
            adding.append(c)
            caps |= extra
    if adding:
        problems.append(
            f"{_names(adding)} must not include {', '.join(sorted(caps))} in securityContext.capabilities.add"
        )
    return problems


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    id: str  # the admission check's ID
    level: str  # baseline | restricted
    source: str  # the check_*.go file it mirrors
    summary: str
    check: Callable[[dict, dict], list[str]]

    @property
    def name(self) -> str:
        return f"pss.{self.id}"


CONTROLS: tuple[Control, ...] = (
    Control(
        "hostProcess", BASELINE, "check_windowsHostProcess.go", "no Windows HostProcess containers", check_host_process
    ),
    Control(
        "hostNamespaces", BASELINE, "check_hostNamespaces.go", "no hostNetwork, hostPID, hostIPC", check_host_namespaces
    ),
    Control("privileged", BASELINE, "check_privileged.go", "no privileged containers", check_privileged),
    Control(
        "capabilities_baseline",
        BASELINE,
        "check_capabilities_baseline.go",
        "added capabilities only from the baseline set",
        check_capabilities_baseline,
    ),
    Control("hostPathVolumes", BASELINE, "check_hostPathVolumes.go", "no hostPath volumes", check_host_path_volumes),
    Control("hostPorts", BASELINE, "check_hostPorts.go", "no hostPort", check_host_ports),
    Control(
        "appArmorProfile",
        BASELINE,
        "check_appArmorProfile.go",
        "AppArmor RuntimeDefault/Localhost or unset",
        check_app_armor,
    ),
    Control(
        "seLinuxOptions",
        BASELINE,
        "check_seLinuxOptions.go",
        "SELinux container types only; no user/role",
        check_selinux,
    ),
    Control("procMount", BASELINE, "check_procMount_baseline.go", "default /proc masks", check_proc_mount),
    Control(
        "seccompProfile_baseline",
        BASELINE,
        "check_seccompProfile_baseline.go",
        "seccomp never Unconfined",
        check_seccomp_baseline,
    ),
    Control("sysctls", BASELINE, "check_sysctls.go", "safe namespaced sysctls only", check_sysctls),
    Control(
        "hostProbesAndHostLifecycle",
        BASELINE,
        "check_hostProbesAndhostLifecycle.go",
        "probe/lifecycle handlers never name a host",
        check_host_probes_and_lifecycle,
    ),
    Control(
        "restrictedVolumes",
        RESTRICTED,
        "check_restrictedVolumes.go",
        "volumes: configMap, csi, downwardAPI, emptyDir, ephemeral, PVC, projected, secret",
        check_restricted_volumes,
    ),
    Control(
        "allowPrivilegeEscalation",
        RESTRICTED,
        "check_allowPrivilegeEscalation.go",
        "allowPrivilegeEscalation=false on every container",
        check_allow_privilege_escalation,
    ),
    Control(
        "runAsNonRoot",
        RESTRICTED,
        "check_runAsNonRoot.go",
        "runAsNonRoot=true (pod or every container)",
        check_run_as_non_root,
    ),
    Control("runAsUser", RESTRICTED, "check_runAsUser.go", "never runAsUser=0", check_run_as_user),
    Control(
        "seccompProfile_restricted",
        RESTRICTED,
        "check_seccompProfile_restricted.go",
        "seccomp RuntimeDefault or Localhost",
        check_seccomp_restricted,
    ),
    Control(
        "capabilities_restricted",
        RESTRICTED,
        "check_capabilities_restricted.go",
        'drop ["ALL"]; add only NET_BIND_SERVICE',
        check_capabilities_restricted,
    ),
)


def controls(level: str = RESTRICTED) -> tuple[Control, ...]:
    if level not in (BASELINE, RESTRICTED):
        raise ValueError(f"unknown Pod Security level {level!r}; levels: {BASELINE}, {RESTRICTED}")
    return tuple(c for c in CONTROLS if level == RESTRICTED or c.level == BASELINE)


def check_pod(meta: Mapping[str, Any], spec: Mapping[str, Any], level: str = RESTRICTED) -> list[tuple[Control, str]]:
    """Every (control, problem) of one pod at `level` (restricted includes baseline)."""
    return [(c, p) for c in controls(level) for p in c.check(dict(meta), dict(spec))]


def check_object(obj: Mapping[str, Any], level: str = RESTRICTED) -> list[Violation]:
    """Violations of a Pod or workload's pod template; [] for kinds without a pod."""
    template = pod_template(obj)
    if template is None:
        return []
    return [Violation(c.name, object_id(obj), problem) for c, problem in check_pod(*template, level=level)]
