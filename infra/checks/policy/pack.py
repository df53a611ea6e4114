"""Validators of the Pulumi policy pack (policy/__main__.py), as plain functions.

Each validator takes the engine's arguments (`args.resource_type` + `args.props` for one resource, or
`args.resources` for the whole stack) and a `report_violation(message, urn=None)` callback, turns the
Kubernetes resources back into manifests and runs the same checks as tests/policy (Pod Security by the
pinned kube-apiserver's admission through infra.checks.policy.admission, infra.checks.policy.rules, and
kube-score through infra.checks.policy.kube_score where the pinned binary is
installed; where it is not, the advisory kube-score policy says so in one report). No pulumi import:
tests/policy calls them with plain objects and a closure.

During `pulumi preview` some inputs are unknown (a namespace taken from the Namespace resource's
output): they arrive as the SDK's unknown sentinel and are read as such, never raised on, so a check
still runs on everything that is known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from infra.checks.policy import admission, kube_score, rules
from infra.checks.policy.violations import Violation, object_id

ReportViolation = Callable[..., None]

# pulumi.runtime.rpc.UNKNOWN: what an unknown input looks like in the analyzer's properties.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# Rules that block `pulumi up` (mandatory); the others are reported (advisory). Pod Security restricted
# is mandatory for every pod, as the namespace's admission label enforces it anyway.
MANDATORY_RULES = frozenset(
    {
        "rules.gpu-request-equals-limit",
        "rules.no-secret-literals",
        "rules.pdb-allows-drain",
        "rules.no-replicas-with-autoscaler",
        "rules.service-sane",
        "net.default-deny",
        "net.ingress-restricted",
        "net.egress-restricted",
        "net.httproute-embeddings-only",
    }
)
ADVISORY_RULES = frozenset(r.name for r in rules.RULES) - MANDATORY_RULES
# kube-score checks that block `pulumi up`: the ones that replaced mandatory rules (no replicas under an HPA,
# Services select pods); every other kube-score finding is advisory.
MANDATORY_KUBE_SCORE = frozenset(
    {
        "kube-score.deployment-targeted-by-hpa-does-not-have-replicas-configured",
        "kube-score.service-targets-pod",
    }
)


def plain(value: Any) -> Any:
    """The SDK's property proxies (or plain dicts) as plain dicts and lists; unknowns stay sentinels."""
    if isinstance(value, Mapping):
        target = value["__target"] if "__target" in value else value
        return {str(k): plain(v) for k, v in dict(target).items()}
    if isinstance(value, (list, tuple)) or (isinstance(value, Sequence) and not isinstance(value, str)):
        proxy: Any = value  # the SDK's list proxy answers ["__target"]; Sequence declares only int and slice keys
        try:
            target = proxy["__target"]
        except (TypeError, KeyError, IndexError):
            target = value
        return [plain(v) for v in target]
    return value


def manifest(resource_type: str, props: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Kubernetes resource's inputs as its manifest; None for anything else (providers, components).

    Type tokens are `kubernetes:<group>/<version>:<Kind>` (group `core` for v1), the same for custom
    resources (`kubernetes:gateway.networking.k8s.io/v1:HTTPRoute`).
    """
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes" or "/" not in parts[1] or parts[1].startswith("helm.sh/"):
        return None
    group, _, version = parts[1].rpartition("/")
    obj = plain(props)
    obj.setdefault("apiVersion", version if group == "core" else f"{group}/{version}")
    obj.setdefault("kind", parts[2])
    obj.setdefault("metadata", {})
    return obj


def _report(
    violations: Iterable[Violation], report_violation: ReportViolation, urn_of: Mapping[str, str] | None = None
) -> None:
    for v in violations:
        urn = (urn_of or {}).get(v.object)
        if urn is None:
            report_violation(str(v))
        else:
            report_violation(str(v), urn)


# ---------------------------------------------------------------------------------------------
# Resource validators
# ---------------------------------------------------------------------------------------------


def validate_pod_security(args: Any, report_violation: ReportViolation) -> None:
    """Pod Security Standards, restricted level, on every Pod and workload pod template: the verdict of the
    pinned kube-apiserver (a local one, dry run). Without it nothing is judged here (`pod-security-unjudged`
    says so); the namespace's enforce label makes the cluster refuse a violating pod anyway."""
    obj = manifest(args.resource_type, args.props)
    if obj is not None and admission.pod_template(obj) is not None and admission.available():
        _report(admission.check_object(obj, admission.RESTRICTED), report_violation)


def validate_pod_security_judged(args: Any, report_violation: ReportViolation) -> None:
    """One advisory report when no kube-apiserver is installed to judge Pod Security before the cluster does."""
    pods = [r for r in args.resources if (o := manifest(r.resource_type, r.props)) and admission.pod_template(o)]
    if pods and not admission.available():
        report_violation(
            "Pod Security not judged before the cluster: no kube-apiserver here (tools/bootstrap.sh kubernetes "
            "etcd); the namespace's pod-security.kubernetes.io/enforce=restricted label refuses a violating pod"
        )


def validate_workload_resources(args: Any, report_violation: ReportViolation) -> None:
    """GPU limit = request, ephemeral-storage requested, no secret-like literal env, on every workload."""
    obj = manifest(args.resource_type, args.props)
    if obj is None or admission.pod_template(obj) is None:
        return
    for name in ("rules.gpu-request-equals-limit", "rules.no-secret-literals"):
        _report(rules.check_rule(rules.rule(name), [obj])[1], report_violation)


# ---------------------------------------------------------------------------------------------
# Stack validators: rules that need the whole bundle (selectors, PDBs, NetworkPolicies, routes)
# ---------------------------------------------------------------------------------------------


def applied(obj: Mapping[str, Any], *path: str) -> bool:
    """Whether a server-side-apply manager (Pulumi, `kubectl apply --server-side`, Argo CD) owns the field at
    `path`, per the object's metadata.managedFields. Defaulted fields have no owner; a controller that
    writes through a subresource (the HPA, through `scale`) is an `Update`, not an `Apply`."""
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        node: Any = entry.get("fieldsV1") or {}
        if entry.get("operation") != "Apply":
            continue
        for key in path:
            node = node.get(f"f:{key}") if isinstance(node, Mapping) else None
            if node is None:
                break
        else:
            return True
    return False


def as_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """A stack resource as the program declared it, as far as the rules need.

    AnalyzeStack sees each resource's *outputs*, i.e. the live object after the update (pulumi/pkg
    resource/deploy/step_generator.go, AnalyzeResources: "AnalyzeStack is called on the final outputs of
    each resource"). There a Deployment's spec.replicas is always set: the API server defaults it, then
    the autoscaler changes it. It only counts as set by the program when an applier owns it."""
    spec = obj.get("spec")
    if (
        obj.get("kind") == "Deployment"
        and isinstance(spec, Mapping)
        and "replicas" in spec
        and "managedFields" in obj.get("metadata", {})
        and not applied(obj, "spec", "replicas")
    ):
        return {**obj, "spec": {k: v for k, v in spec.items() if k != "replicas"}}
    return obj


def stack_objects(resources: Iterable[Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every Kubernetes resource of the stack as a manifest, and each object's URN by its id."""
    pairs = [(as_applied(obj), r.urn) for r in resources if (obj := manifest(r.resource_type, r.props)) is not None]
    # A namespace still unknown in preview is the stack's Namespace (there is exactly one).
    namespaces = [o["metadata"].get("name") for o, _ in pairs if o.get("kind") == "Namespace"]
    if len(namespaces) == 1 and namespaces[0] != UNKNOWN:
        for obj, _ in pairs:
            if obj["metadata"].get("namespace") == UNKNOWN:
                obj["metadata"]["namespace"] = namespaces[0]
    return [o for o, _ in pairs], {object_id(o): urn for o, urn in pairs}


def _validate_rules(names: frozenset[str], args: Any, report_violation: ReportViolation) -> None:
    objects, urns = stack_objects(args.resources)
    for r in rules.RULES:
        if r.name in names:
            _report(rules.check_rule(r, objects)[1], report_violation, urns)


def validate_stack_mandatory(args: Any, report_violation: ReportViolation) -> None:
    _validate_rules(MANDATORY_RULES, args, report_violation)


def validate_stack_advisory(args: Any, report_violation: ReportViolation) -> None:
    _validate_rules(ADVISORY_RULES, args, report_violation)


def _kube_score(args: Any, report_violation: ReportViolation, mandatory: bool) -> None:
    """kube-score over the stack's objects (as applied, see `as_applied`), with policy/kube-score.yaml."""
    objects, urns = stack_objects(args.resources)
    try:
        kube_score.binary()
    except kube_score.KubeScoreError as e:
        if not mandatory:
            report_violation(f"generic workload lint not run: {e}")
        return
    found = kube_score.score(objects)
    _report([v for v in found if (v.control in MANDATORY_KUBE_SCORE) == mandatory], report_violation, urns)


def validate_stack_kube_score(args: Any, report_violation: ReportViolation) -> None:
    """Advisory kube-score findings; where the binary is missing, one report says so."""
    _kube_score(args, report_violation, mandatory=False)


def validate_stack_kube_score_mandatory(args: Any, report_violation: ReportViolation) -> None:
    """The kube-score checks in MANDATORY_KUBE_SCORE."""
    _kube_score(args, report_violation, mandatory=True)
