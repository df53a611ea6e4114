"""The `prometheusRule` values each release gets (infra.core.thresholds) and the stack config behind them."""

from __future__ import annotations

import pytest

from infra.core.config import ConfigError, load
from infra.core.plan import build, build_for_env, measured_constants
from infra.core.release import chart_defaults
from infra.core.stackfile import read_stack_file
from infra.core.thresholds import format_duration, parse_duration
from infra.sinks.helm import effective_values, helm_values


def test_prod_releases_get_rules_linking_their_env_pages_and_derived_thresholds():
    plan = build_for_env("prod")
    for release in plan.releases:
        rule = helm_values(release.spec)["prometheusRule"]
        assert rule["enabled"] is True and rule["runbookBaseUrl"] == "docs/runbooks/prod"
        t = rule["thresholds"]
        assert t["backlogWaitingPerPod"] == 4 * plan.config.autoscaling.target_waiting_per_pod
        assert parse_duration(t["podNotReadyFor"]) >= max(900, release.sizing.startup_budget_seconds + 300)
        # The plan emits only the two it derives; the chart's values.yaml owns the rest.
        assert set(t) == {"backlogWaitingPerPod", "podNotReadyFor"}
        effective = effective_values(release.spec)["prometheusRule"]["thresholds"]
        assert effective == {**chart_defaults()["prometheusRule"]["thresholds"], **t}


def test_dev_has_no_rules():
    assert not any(r.spec.monitoring.prometheus_rule for r in build_for_env("dev").releases)


def test_runbook_base_url_is_stack_config():
    raw = read_stack_file("prod")
    raw["jina-embeddings:monitoring"] = {
        **raw["jina-embeddings:monitoring"],
        "runbookBaseUrl": "https://git.example.com/ops/blob/main/docs/runbooks",
    }
    plan = build(load(raw, "prod"), measured_constants())
    assert (
        plan.releases[0].spec.monitoring.runbook_base_url == "https://git.example.com/ops/blob/main/docs/runbooks/prod"
    )


@pytest.mark.parametrize(
    "monitoring, path",
    [
        ({"serviceMonitor": False, "prometheusRule": True}, "monitoring.prometheusRule"),
        (
            {"serviceMonitor": True, "prometheusRule": True, "runbookBaseUrl": "docs/runbooks/"},
            "monitoring.runbookBaseUrl",
        ),
    ],
)
def test_bad_monitoring_config_names_the_key(monitoring, path):
    raw = read_stack_file("dev")
    raw["jina-embeddings:monitoring"] = monitoring
    with pytest.raises(ConfigError) as exc:
        load(raw, "dev")
    assert f"jina-embeddings:{path}" in str(exc.value) and "pulumi config" in str(exc.value)


def test_durations_round_trip():
    assert [parse_duration(d) for d in ("90s", "15m", "2h")] == [90, 900, 7200]
    assert [format_duration(s) for s in (90, 900, 7200)] == ["90s", "15m", "2h"]
    with pytest.raises(ValueError):
        parse_duration("15 minutes")


# Static chart defaults: values.yaml is their one owner (issue "one owner per fact"); the plan never emits them.
CHART_OWNED = (
    "model.dtype",
    "image.digest",
    "image.pullPolicy",
    "vllm.shutdownTimeoutSeconds",
    "vllm.extraArgs",
    "gpu.count",
    "probes.startup.path",
    "probes.startup.timeoutSeconds",
    "probes.readiness",
    "probes.liveness",
    "lifecycle",
    "terminationGracePeriodSeconds",
    "autoscaling.keda.pollingInterval",
    "autoscaling.keda.cooldownPeriod",
    "autoscaling.behavior",
    "podDisruptionBudget",
    "topologySpread",
    "podSecurityContext.runAsUser",
    "podSecurityContext.runAsGroup",
    "podSecurityContext.fsGroup",
    "service.type",
    "serviceMonitor.interval",
    "serviceMonitor.scrapeTimeout",
    "podLabels",
    "podAnnotations",
)


@pytest.mark.parametrize("env", __import__("infra.core.stackfile", fromlist=["stack_names"]).stack_names())
def test_the_plan_never_emits_a_static_chart_default(env):
    for release in build_for_env(env).releases:
        for path in CHART_OWNED:
            node = helm_values(release.spec)
            for key in path.split("."):
                node = node.get(key, {}) if isinstance(node, dict) else {}
            assert node == {}, f"{env}/{release.variant}: {path} is emitted by the plan; values.yaml owns it"
            effective = effective_values(release.spec)
            for key in path.split("."):
                effective = effective[key]
            assert effective is not None  # and the chart does define it
