"""The alert rules the chart renders, run through the pinned promtool: `check rules`, and generated
`test rules` cases per alert (quiet just below the threshold, firing at it). See infra/checks/promtool.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.checks.promtool import CASES, release_alerts, write_promtool_files
from infra.core.thresholds import (
    ALERT_NAMES,
    parse_duration,
    rule_groups,
)
from infra.sinks.helm import TOOLS_DIR, effective_values
from tests.conftest import CHART_DIR, pin, repo_path

TEMPLATES = repo_path("infra", "sinks", "runbook_templates")


def promtool() -> str:
    for candidate in (str(TOOLS_DIR / "bin" / "promtool"), shutil.which("promtool")):
        if candidate and Path(candidate).exists():
            return candidate
    raise AssertionError("promtool not found: run `tools/bootstrap.sh promtool` (make test does)")


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True)


def envs_with_rules(stack_plans) -> list[str]:
    return [env for env, plan in stack_plans.items() if plan.config.monitoring.prometheus_rule]


def env_objects(rendered_releases, env: str) -> dict[str, list[dict]]:
    return {variant: objs for (e, variant), objs in rendered_releases.items() if e == env}


def test_promtool_is_the_pinned_version():
    out = subprocess.run([promtool(), "--version"], capture_output=True, text=True)
    # the Debian package's upstream version: 2.42.0 of 2.42.0+ds-5+deb12u1
    assert pin("PROMETHEUS_DEB_VERSION").split("+")[0] in out.stdout + out.stderr


def test_some_stacks_have_rules_and_the_others_none(stack_plans, rendered_releases):
    with_rules = envs_with_rules(stack_plans)
    assert {"prod", "staging", "prod-amd"} <= set(with_rules)
    for (env, variant), objects in rendered_releases.items():
        rules = [o for o in objects if o["kind"] == "PrometheusRule"]
        assert len(rules) == (1 if env in with_rules else 0), f"{env}/{variant}: {len(rules)} PrometheusRule(s)"


@pytest.mark.parametrize("env", ["prod", "staging", "prod-amd"])
def test_rules_pass_promtool_check_and_their_generated_tests(env, stack_plans, rendered_releases, tmp_path):
    plan = stack_plans[env]
    test_files = write_promtool_files(plan, env_objects(rendered_releases, env), tmp_path)
    check = run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    test = run_promtool("test", "rules", *[p.name for p in test_files], cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr
    # Every alert of every release has a case that expects it to fire and one that expects silence.
    cases = [case for p in test_files for case in yaml.safe_load(p.read_text())["tests"]]
    for release in plan.releases:
        for alert in [r["alert"] for g in rule_groups(rendered_releases[(env, release.variant)]) for r in g["rules"]]:
            checks = [
                c
                for case in cases
                if case["name"].startswith(f"{alert} {release.variant}:")
                for c in case["alert_rule_test"]
            ]
            assert any(c["exp_alerts"] for c in checks), f"{env}/{release.variant}: no case where {alert} fires"
            assert any(not c["exp_alerts"] for c in checks), (
                f"{env}/{release.variant}: no case where {alert} stays quiet"
            )


@pytest.mark.parametrize(
    "old, new, alert",
    [
        (">= 20\n", ">= 21\n", "JinaEmbeddingsRequestBacklog"),  # a threshold moved up: the at-threshold case fails
        (">= 0.95\n", "> 0.95\n", "JinaEmbeddingsKVCacheSaturated"),  # >= became >: the at-threshold case fails
        (
            "[30m]) >= 3\n",
            "[30m]) >= 2\n",
            "JinaEmbeddingsPodCrashLooping",
        ),  # a threshold moved down: the below case fails
    ],
)
def test_the_generated_tests_catch_a_moved_threshold(old, new, alert, stack_plans, rendered_releases, tmp_path):
    plan = stack_plans["prod"]
    objects = {"retrieval": rendered_releases[("prod", "retrieval")]}
    retrieval_only = type(plan)(plan.env, plan.config, plan.platform, (plan.release("retrieval"),))
    write_promtool_files(retrieval_only, objects, tmp_path)
    rules = (tmp_path / "rules-retrieval.yaml").read_text()
    assert rules.count(old) == 1, f"expected one {old!r} in the rendered rules"
    (tmp_path / "rules-retrieval.yaml").write_text(rules.replace(old, new))
    test = run_promtool("test", "rules", "tests-retrieval.yaml", cwd=tmp_path)
    assert test.returncode != 0 and alert in test.stdout + test.stderr, test.stdout[-2000:]


# vLLM 0.20-0.33 metric names (research: vllm-jina-facts.md §4; counters get _total, histograms _bucket)
# and kube-state-metrics v2 names; vllm:gpu_cache_usage_perc no longer exists.
KNOWN_METRICS = {
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:e2e_request_latency_seconds_bucket",
    "up",
    "kube_deployment_status_replicas_available",
    "kube_deployment_spec_replicas",
    "kube_pod_status_ready",
    "kube_pod_status_unschedulable",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_state_started",
    "kube_pod_container_status_ready",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
}


def test_rules_use_real_metric_names_and_filter_on_the_release(stack_plans, rendered_releases):
    for (env, variant), objects in rendered_releases.items():
        release = stack_plans[env].release(variant)
        for group in rule_groups(objects):
            for rule in group["rules"]:
                expr = rule["expr"]
                names = set(re.findall(r"\b((?:vllm:|kube_)[a-z0-9_:]+|up)\{", expr))
                assert names and names <= KNOWN_METRICS, (
                    f"{env}/{variant} {rule['alert']}: unknown metric(s) {names - KNOWN_METRICS}"
                )
                without_quantifiers = re.sub(r"\{\d+(,\d+)?\}", "", expr)  # the pod-name regex's {1,10} and {5}
                selectors = re.findall(r"\{([^}]*)\}", without_quantifiers)
                assert len(selectors) >= len(re.findall(r"[a-z_:]\{", without_quantifiers)) > 0
                for selector in selectors:
                    assert f'namespace="{release.namespace}"' in selector, (
                        f"{env}/{variant} {rule['alert']}: selector without namespace: {selector}"
                    )
                    assert release.name in selector or release.served_model_name in selector, (
                        f"{env}/{variant} {rule['alert']}: selector not filtered to the release: {selector}"
                    )


def test_every_alert_links_its_runbook_page(rendered_releases):
    for (env, variant), objects in rendered_releases.items():
        for group in rule_groups(objects):
            for rule in group["rules"]:
                url = rule["annotations"]["runbook_url"]
                assert url == f"docs/runbooks/{env}/{rule['alert']}.md", f"{env}/{variant}: {url}"
                assert repo_path(url).is_file(), f"{env}/{variant} {rule['alert']}: {url} does not exist"


def test_alert_catalogue_chart_cases_and_templates_agree(rendered_releases):
    rendered = {r["alert"] for objects in rendered_releases.values() for g in rule_groups(objects) for r in g["rules"]}
    assert rendered == set(ALERT_NAMES) == set(CASES)
    assert {p.name[: -len(".md.j2")] for p in TEMPLATES.glob("JinaEmbeddings*.md.j2")} == set(ALERT_NAMES)


def test_the_chart_owns_the_static_thresholds_and_the_plan_only_the_derived_ones(stack_plans):
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["prometheusRule"]["enabled"] is False
    for plan in stack_plans.values():
        for release in plan.releases:
            assert set(release.spec.monitoring.derived_thresholds) == {"backlogWaitingPerPod", "podNotReadyFor"}
            assert set(effective_values(release.spec)["prometheusRule"]["thresholds"]) == set(
                values["prometheusRule"]["thresholds"]
            )


def test_pod_not_ready_waits_longer_than_any_start_up(stack_plans, rendered_releases):
    for (env, variant), objects in rendered_releases.items():
        release = stack_plans[env].release(variant)
        for group in rule_groups(objects):
            alerts = release_alerts(release.spec, release.namespace, group)
            not_ready = next(r for r in group["rules"] if r["alert"] == "JinaEmbeddingsPodNotReady")["for"]
            assert parse_duration(not_ready) > alerts.startup_budget, (
                f"{env}/{variant}: PodNotReady after {not_ready}, start-up budget {alerts.startup_budget}s"
            )


def test_the_alerts_command_writes_rules_and_tests_promtool_accepts(tmp_path, capsys):
    from infra.cli import main

    out = tmp_path / "build" / "alerts" / "prod"
    assert main(["alerts", "--env", "prod", "--out", str(out)]) == 0
    assert "promtool test rules" in capsys.readouterr().out
    check = run_promtool("check", "rules", "rules.yaml", *sorted(p.name for p in out.glob("rules-*.yaml")), cwd=out)
    assert check.returncode == 0, check.stdout + check.stderr
