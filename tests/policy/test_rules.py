"""Reliability and exposure rules (infra/checks/policy/rules.py) over every bundle, and one mutation per rule
proving each is caught, with the object named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.checks.policy import rules
from infra.checks.policy.violations import object_id
from tests.policy.conftest import find

Objects = list[dict[str, Any]]


def test_every_bundle_passes_every_rule(bundles):
    failures, checked = [], 0
    for name, objects in bundles.items():
        for r in rules.RULES:
            n, violations = rules.check_rule(r, objects)
            checked += n
            failures += [f"{name}: {v}" for v in violations]
    assert not failures, "\n".join(failures)
    print(f"\n{len(rules.RULES)} rules, {checked} rule x object checks over {len(bundles)} bundles: 0 failures")


def test_no_rule_is_vacuous(bundles):
    """Every rule has subjects somewhere, so its zero failures mean something."""
    for r in rules.RULES:
        assert sum(rules.check_rule(r, objects)[0] for objects in bundles.values()) > 0, r.name


def _deployment(objects: Objects, name: str = "") -> dict:
    return find(objects, "Deployment", lambda o: name in o["metadata"]["name"])


def _pod(objects: Objects) -> dict:
    return _deployment(objects)["spec"]["template"]["spec"]


def _server(objects: Objects) -> dict:
    return _pod(objects)["containers"][0]


def _policy(objects: Objects, suffix: str) -> dict:
    return find(objects, "NetworkPolicy", lambda o: o["metadata"]["name"].endswith(suffix))


def _set_offline(objects: Objects) -> None:
    """Make the servers offline (HF_HUB_OFFLINE=1) while the hub egress still selects them."""
    for d in (o for o in objects if o["kind"] == "Deployment"):
        d["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "HF_HUB_OFFLINE", "value": "1"})


# rule -> (bundle to mutate, mutation, the object the violation must name)
MUTATIONS: dict[str, tuple[str, Callable[[Objects], None], Callable[[Objects], dict]]] = {
    "rules.pdb-allows-drain": (
        "stack:prod",
        lambda o: find(o, "PodDisruptionBudget")["spec"].update(maxUnavailable=0),
        lambda o: find(o, "PodDisruptionBudget"),
    ),
    "rules.spread": ("stack:prod", lambda o: _pod(o).pop("topologySpreadConstraints"), _deployment),
    "rules.autoscaler-sane": (
        "stack:staging",
        lambda o: find(o, "HorizontalPodAutoscaler")["spec"].update(minReplicas=4, maxReplicas=4),
        lambda o: find(o, "HorizontalPodAutoscaler"),
    ),
    "rules.no-replicas-with-autoscaler": (
        "chart:amd-cpx-keda",
        lambda o: _deployment(o)["spec"].update(replicas=3),
        _deployment,
    ),
    "rules.probes": ("stack:dev", lambda o: _server(o)["livenessProbe"].update(timeoutSeconds=1), _deployment),
    "rules.budgets": ("stack:dev", lambda o: _pod(o).update(terminationGracePeriodSeconds=30), _deployment),
    "rules.gpu-request-equals-limit": (
        "stack:prod-amd",
        lambda o: _server(o)["resources"]["requests"].update({"amd.com/gpu": "2"}),
        _deployment,
    ),
    "rules.priority-class": ("chart:amd-cpx-keda", lambda o: _pod(o).pop("priorityClassName"), _deployment),
    "rules.no-secret-literals": (
        "chart:pvc-offline-secrets",
        lambda o: _server(o)["env"].append({"name": "HF_TOKEN", "value": "x"}),
        _deployment,
    ),
    "rules.service-sane": (
        "stack:dev",
        lambda o: find(o, "Service")["spec"].update(type="LoadBalancer"),
        lambda o: find(o, "Service"),
    ),
    "net.default-deny": ("stack:prod", lambda o: o.remove(_policy(o, "default-deny")), lambda o: find(o, "Namespace")),
    "net.ingress-restricted": (
        "stack:prod",
        lambda o: _policy(o, "allow-serving")["spec"]["ingress"][0]["from"].append({"ipBlock": {"cidr": "0.0.0.0/0"}}),
        lambda o: _policy(o, "allow-serving"),
    ),
    "net.egress-restricted": ("stack:dev", _set_offline, lambda o: _policy(o, "allow-model-hub")),
    "net.httproute-embeddings-only": (
        "stack:prod",
        lambda o: find(o, "HTTPRoute")["spec"]["rules"][0]["filters"][0]["urlRewrite"]["path"].update(
            replaceFullPath="/pooling"
        ),
        lambda o: find(o, "HTTPRoute"),
    ),
}


def test_every_rule_has_a_mutation():
    assert set(MUTATIONS) == {r.name for r in rules.RULES}


@pytest.mark.parametrize("rule_name", sorted(MUTATIONS))
def test_each_rule_catches_its_violation_and_names_the_object(bundle_copy, rule_name):
    bundle, mutate, culprit = MUTATIONS[rule_name]
    objects = bundle_copy(bundle)
    r = rules.rule(rule_name)
    assert rules.check_rule(r, objects)[1] == [], "the unmutated bundle must pass"
    mutate(objects)
    violations = rules.check_rule(r, objects)[1]
    assert violations, f"{rule_name} missed the mutation"
    assert object_id(culprit(objects)) in {v.object for v in violations}, violations


def test_identical_readiness_and_liveness_probes_are_caught_by_the_budgets(bundle_copy):
    """kube-score's pod-probes-identical is off (policy/kube-score.yaml: vLLM has one /health): the budgets
    rule still refuses a liveness probe that gives up as soon as readiness does."""
    objects = bundle_copy("stack:dev")
    _server(objects).update(livenessProbe=_server(objects)["readinessProbe"])
    assert rules.check_rule(rules.rule("rules.budgets"), objects)[1]


def test_hpa_with_max_not_above_min_is_caught_and_keda_min_below_two(bundle_copy):
    objects = bundle_copy("chart:amd-cpx-keda")
    find(objects, "ScaledObject")["spec"].update(minReplicaCount=1)
    assert rules.check_rule(rules.rule("rules.autoscaler-sane"), objects)[1]


@pytest.mark.parametrize(
    "variant",
    [
        ("maxUnavailable 0%", {"maxUnavailable": "0%"}),
        ("minAvailable = replicas", {"minAvailable": 3}),
        ("minAvailable 100%", {"minAvailable": "100%"}),
        ("no unhealthyPodEvictionPolicy", {"unhealthyPodEvictionPolicy": None}),
    ],
    ids=lambda v: v[0],
)
def test_pdb_blocking_a_drain_in_any_form_is_caught(bundle_copy, variant):
    objects = bundle_copy("stack:prod")
    pdb = find(objects, "PodDisruptionBudget", lambda o: o["metadata"]["name"].endswith("retrieval"))  # min 3 replicas
    pdb["spec"].pop("maxUnavailable")
    pdb["spec"].setdefault("minAvailable", 1)
    pdb["spec"].update({k: v for k, v in variant[1].items() if v is not None})
    if variant[1].get("unhealthyPodEvictionPolicy", "") is None:
        pdb["spec"].pop("unhealthyPodEvictionPolicy")
    assert rules.check_rule(rules.rule("rules.pdb-allows-drain"), objects)[1]


@pytest.mark.parametrize(
    "path",
    [{"type": "PathPrefix", "value": "/retrieval/v1/embeddings"}, {"type": "Exact", "value": "/retrieval/pooling"}],
    ids=["prefix", "unrewritten-pooling"],
)
def test_route_reaching_anything_but_embeddings_and_models_is_caught(bundle_copy, path):
    objects = bundle_copy("stack:prod")
    rule = find(objects, "HTTPRoute")["spec"]["rules"][0]
    rule["matches"] = [{"path": path}]
    rule.pop("filters")
    assert rules.check_rule(rules.rule("net.httproute-embeddings-only"), objects)[1]


def test_routes_of_one_bundle_on_two_hosts_are_caught(bundle_copy):
    objects = bundle_copy("stack:prod")
    find(objects, "HTTPRoute")["spec"]["hostnames"] = ["other.example.com"]
    violations = rules.check_rule(rules.rule("net.httproute-embeddings-only"), objects)[1]
    assert len({v.object for v in violations}) == 4 and all("2 hosts" in v.message for v in violations)


def test_selector_matching_follows_label_selector_semantics():
    labels = {"app": "x", "tier": "gpu"}
    assert rules.selector_matches({}, labels)
    assert rules.selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu", "cpu"]}]}, labels
    )
    assert not rules.selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gpu"]}]}, labels
    )
    assert rules.selector_matches({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, labels)
    assert not rules.selector_matches({"matchLabels": {"app": "y"}}, labels)
