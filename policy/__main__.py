"""The bundle's Pulumi policy pack: `pulumi preview --policy-pack policy/` (or `pulumi up ...`).

Every check is a plain function of infra/checks/policy/pack.py, unit-tested in tests/policy/test_policy_pack.py;
this file only names them, says which resource types they see and sets the enforcement level.
Mandatory violations fail the preview and block the update; advisory ones are printed.
"""

import sys
from pathlib import Path

# The engine runs this file from policy/: make the repository root (the `infra` package) importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from infra.checks.policy import pack  # noqa: E402

POLICIES = [
    ResourceValidationPolicy(
        name="pod-security-restricted",
        description="Every pod meets the Pod Security Standards, restricted level: the pinned kube-apiserver's "
        "verdict on a dry-run Pod built from the template.",
        validate=pack.validate_pod_security,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="workload-resources",
        description="GPU limits equal requests; no secret-like environment variable has a literal value.",
        validate=pack.validate_workload_resources,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="bundle-mandatory",
        description="PDBs never block a drain; KEDA-scaled Deployments set no replicas; Services are ClusterIP; "
        "default-deny network, ingress only from named peers, egress only DNS and the model hub; "
        "the HTTPRoute routes only /v1/embeddings and /v1/models.",
        validate=pack.validate_stack_mandatory,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="bundle-advisory",
        description="Replicas spread, autoscaler bounds, probes and budgets, priority class.",
        validate=pack.validate_stack_advisory,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    StackValidationPolicy(
        name="pod-security-unjudged",
        description="Says when no kube-apiserver is installed to judge Pod Security before the cluster does.",
        validate=pack.validate_pod_security_judged,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    StackValidationPolicy(
        name="kube-score-mandatory",
        description="kube-score: no replicas on a Deployment an HPA scales; Services select pods.",
        validate=pack.validate_stack_kube_score_mandatory,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="kube-score",
        description="Generic workload lint by the pinned kube-score with policy/kube-score.yaml (PDBs present, "
        "probes, resources, Services and NetworkPolicies select pods, pods isolated, HPA targets).",
        validate=pack.validate_stack_kube_score,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]

# Serves the pack to the engine (prints its port, then blocks), as `pulumi policy new` templates do.
PolicyPack(name="jina-embeddings-bundle", policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
