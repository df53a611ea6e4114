"""kube-score (pinned, tools/bootstrap.sh kube-score) over every bundle: nothing beyond policy/kube-score.yaml.

And the mutations of the generic rules that left infra/checks/policy/rules.py for kube-score: each is caught
by kube-score, with the object named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.checks.policy import kube_score
from infra.checks.policy.violations import object_id
from infra.core.paths import REPO_ROOT
from tests.policy.conftest import find

Objects = list[dict[str, Any]]


@pytest.fixture(scope="session")
def config() -> kube_score.Config:
    return kube_score.load_config()


@pytest.fixture(scope="session")
def findings(bundles, config) -> dict[str, list]:
    return {name: kube_score.score(objects, config, name.startswith("chart:")) for name, objects in bundles.items()}


def test_kube_score_is_the_pinned_version():
    pin = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "tools" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )["KUBE_SCORE_VERSION"]
    assert f"kube-score version: {pin}," in kube_score.version()


def test_every_bundle_passes_kube_score(findings):
    failures = [f"{name}: {v}" for name, violations in findings.items() for v in violations]
    assert not failures, "\n".join(failures)


def test_every_configured_check_exists_and_has_a_reason(config):
    """A typo in policy/kube-score.yaml would silently ignore nothing: every id must be one kube-score knows."""
    known = kube_score.checks()
    configured = {**config.ignore, **config.optional, **config.ignore_in_chart_scenarios}
    assert set(configured) <= set(known), sorted(set(configured) - set(known))
    assert all(reason.strip() for reason in configured.values())
    assert all(known[c][2] == "optional" for c in config.optional), config.optional


def test_flags_follow_the_config(config):
    args = kube_score.flags(config, chart_only=True)
    assert f"--kubernetes-version={config.kubernetes_version}" in args
    for check in {**config.ignore, **config.ignore_in_chart_scenarios}:
        assert f"--ignore-test={check}" in args
    assert not any(f"--ignore-test={c}" in kube_score.flags(config) for c in config.ignore_in_chart_scenarios), (
        "chart-scenario ignores must not reach the stacks and exports"
    )


def _deployment(objects: Objects, name: str = "") -> dict:
    return find(objects, "Deployment", lambda o: name in o["metadata"]["name"])


def _server(objects: Objects) -> dict:
    return _deployment(objects)["spec"]["template"]["spec"]["containers"][0]


def _policy(objects: Objects, suffix: str) -> dict:
    return find(objects, "NetworkPolicy", lambda o: o["metadata"]["name"].endswith(suffix))


def _drop(objects: Objects, kind: str) -> None:
    objects[:] = [o for o in objects if o["kind"] != kind]


# the rule that left rules.py -> (kube-score check, bundle, mutation, the object kube-score must name)
MUTATIONS: dict[str, tuple[str, str, Callable[[Objects], None], Callable[[Objects], dict]]] = {
    "rules.pdb-present": (
        "deployment-has-poddisruptionbudget",
        "stack:local",
        lambda o: _drop(o, "PodDisruptionBudget"),
        lambda o: _deployment(o, "retrieval"),
    ),
    "rules.pdb-allows-drain (no policy)": (
        "poddisruptionbudget-has-policy",
        "stack:prod",
        lambda o: find(o, "PodDisruptionBudget")["spec"].pop("maxUnavailable"),
        lambda o: find(o, "PodDisruptionBudget"),
    ),
    "rules.autoscaler-sane (HPA min)": (
        "horizontalpodautoscaler-replicas",
        "stack:staging",
        lambda o: find(o, "HorizontalPodAutoscaler")["spec"].update(minReplicas=1),
        lambda o: find(o, "HorizontalPodAutoscaler"),
    ),
    "rules.autoscaler-sane (HPA target)": (
        "horizontalpodautoscaler-has-target",
        "stack:staging",
        lambda o: find(o, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(name="typo"),
        lambda o: find(o, "HorizontalPodAutoscaler"),
    ),
    "rules.no-replicas-with-autoscaler (HPA)": (
        "deployment-targeted-by-hpa-does-not-have-replicas-configured",
        "stack:staging",
        lambda o: _deployment(o)["spec"].update(replicas=3),
        _deployment,
    ),
    "rules.probes (readiness missing)": (
        "pod-probes",
        "stack:dev",
        lambda o: _server(o).pop("readinessProbe"),
        _deployment,
    ),
    "rules.ephemeral-storage": (
        "container-ephemeral-storage-request-and-limit",
        "chart:nvidia-whole-gpu",
        lambda o: _server(o)["resources"]["requests"].pop("ephemeral-storage"),
        _deployment,
    ),
    "rules.service-selects-pods": (
        "service-targets-pod",
        "stack:dev",
        lambda o: find(o, "Service")["spec"]["selector"].update({"app.kubernetes.io/instance": "typo"}),
        lambda o: find(o, "Service"),
    ),
    "rules.networkpolicy-selects-pods": (
        "networkpolicy-targets-pod",
        "stack:dev",
        lambda o: _policy(o, "allow-serving")["spec"]["podSelector"]["matchLabels"].update(
            {"app.kubernetes.io/component": "embedding-sever"}
        ),
        lambda o: _policy(o, "allow-serving"),
    ),
    "rules.pod-isolated": ("pod-networkpolicy", "stack:dev", lambda o: _drop(o, "NetworkPolicy"), _deployment),
}


@pytest.mark.parametrize("removed_rule", sorted(MUTATIONS))
def test_kube_score_catches_what_the_removed_rules_caught(bundle_copy, findings, config, removed_rule):
    check, bundle, mutate, culprit = MUTATIONS[removed_rule]
    assert not findings[bundle], "the unmutated bundle must pass"
    objects = bundle_copy(bundle)
    mutate(objects)
    caught = [v for v in kube_score.score(objects, config) if v.control == kube_score.CONTROL_PREFIX + check]
    assert caught, f"kube-score {check} missed the mutation of {removed_rule}"
    assert object_id(culprit(objects)) in {v.object for v in caught}, caught


def test_a_failing_binary_is_an_error_not_a_pass(monkeypatch, bundles):
    monkeypatch.setenv("KUBE_SCORE", "/bin/false")
    with pytest.raises(kube_score.KubeScoreError):
        kube_score.score(bundles["chart:nvidia-whole-gpu"])
