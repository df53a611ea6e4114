"""The policy pack's stack validators on what `pulumi up` really hands them: each resource's *outputs*, the
live object (pulumi/pkg resource/deploy/step_generator.go, AnalyzeResources), not the program's inputs.

A live Deployment always has spec.replicas (the API server defaults it, the HPA then sets it), so
kube-score's deployment-targeted-by-hpa-does-not-have-replicas-configured (mandatory in the pack) may only
count replicas that an applier owns (metadata.managedFields).
The engine run itself is in tests/e2e/test_engine.py (0 violations on a deployed `local` stack).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from infra.checks.policy import pack
from tests.policy.conftest import find
from tests.policy.test_policy_pack import Reports, resource


def _live(deployment: dict, replicas_owner: str | None) -> dict:
    """The Deployment as the API server returns it after an apply: replicas set, managedFields filled."""
    applied: dict[str, Any] = {"f:metadata": {"f:labels": {}}, "f:spec": {"f:selector": {}, "f:template": {}}}
    managed = [
        {
            "manager": "pulumi-kubernetes-b3f83de5",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": applied,
        }
    ]
    if replicas_owner == "hpa":  # the autoscaler writes through the scale subresource: an Update
        managed.append(
            {
                "manager": "kube-controller-manager",
                "operation": "Update",
                "subresource": "scale",
                "fieldsV1": {"f:spec": {"f:replicas": {}}},
            }
        )
    elif replicas_owner == "program":
        applied["f:spec"]["f:replicas"] = {}
    metadata = {**deployment["metadata"], "uid": "0b6c", "managedFields": managed}
    return {
        **deployment,
        "metadata": metadata,
        "spec": {**deployment["spec"], "replicas": 2},
        "status": {"replicas": 2},
    }


def _mandatory(objects: list[dict]) -> Reports:
    reports = Reports()
    args = SimpleNamespace(resources=[resource(o) for o in objects])
    pack.validate_stack_mandatory(args, reports)
    pack.validate_stack_kube_score_mandatory(args, reports)
    return reports


HPA_REPLICAS = "[kube-score.deployment-targeted-by-hpa-does-not-have-replicas-configured]"


def autoscaled(objects):
    return find(objects, "Deployment", lambda d: "replicas" not in d["spec"])


def test_replicas_defaulted_or_set_by_the_autoscaler_are_not_the_programs(bundle_copy):
    for owner in (None, "hpa"):
        objects = bundle_copy("stack:local")
        live = _live(autoscaled(objects), owner)
        objects = [live if o is autoscaled(objects) else o for o in objects]
        assert _mandatory(objects) == [], owner


def test_replicas_an_applier_owns_on_an_autoscaled_deployment_are_blocked(bundle_copy):
    objects = bundle_copy("stack:local")
    target = autoscaled(objects)
    live = _live(target, "program")
    reports = _mandatory([live if o is target else o for o in objects])
    assert len(reports) == 1 and HPA_REPLICAS in reports[0][0], reports


def test_inputs_without_managed_fields_are_judged_as_they_are(bundle_copy):
    """A first preview hands the inputs themselves (no managedFields): a replicas field there is the program's."""
    objects = bundle_copy("stack:local")
    autoscaled(objects)["spec"]["replicas"] = 2
    reports = _mandatory(objects)
    assert len(reports) == 1 and HPA_REPLICAS in reports[0][0], reports
