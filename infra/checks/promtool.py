"""promtool test cases for the alerts of the embedding servers, generated from the rendered rules.

The rules themselves live in one place, the chart's templates/prometheusrule.yaml; the thresholds the plan
derives are decided in infra.core.thresholds. This module generates `promtool test rules` cases from those rendered rules and the release's values
  (`promtool_tests`): for every alert, one case where it stays quiet just below its threshold and one
  where it fires at it. Because the cases read names, selectors and thresholds from the rendered rules
  and values, they cannot drift from them; tests/alerts/ runs them with the pinned promtool.

`python -m infra alerts --env ENV --out DIR` writes the rules file and the test files for a person to
run `promtool test rules` by hand (see README, "On-call").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.core.release import ReleaseSpec
from infra.core.thresholds import (
    ALERT_NAMES,
    format_duration,
    parse_duration,
    rule_groups,
    rules_file,
)

# ---------------------------------------------------------------------------------------------
# Rendered rules
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# promtool tests
# ---------------------------------------------------------------------------------------------

_LABEL_REF = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
OTHER_NAMESPACE = "some-other-team"  # decoy series there must never make our alerts fire


@dataclass(frozen=True)
class ReleaseAlerts:
    """What the generated cases need to know about one release's rendered rules."""

    variant: str
    fullname: str
    namespace: str
    model_name: str
    thresholds: dict[str, Any]
    startup_budget: int
    hpa_name: str | None
    max_replicas: int
    rules: dict[str, dict[str, Any]]  # alert name -> rendered rule

    @property
    def pod(self) -> str:
        return f"{self.fullname}-5d9c7b8f6d-x2x7q"  # <deployment>-<pod-template-hash>-<suffix>

    @property
    def other_pod(self) -> str:
        return f"{self.fullname}-5d9c7b8f6d-q8w4z"

    def expected(self, alert: str, labels: dict[str, str]) -> dict[str, Any]:
        """The alert promtool must report: the series' labels + the rule's, its annotations templated."""
        rule = self.rules[alert]
        annotations = {}
        for key, text in rule.get("annotations", {}).items():

            def label(match: re.Match) -> str:
                if match.group(1) not in labels:
                    raise KeyError(
                        f"{alert}: annotation {key} uses $labels.{match.group(1)}, which the expected alert lacks"
                    )
                return labels[match.group(1)]

            rendered = _LABEL_REF.sub(label, text)
            if "{{" in rendered:
                raise ValueError(
                    f"{alert}: annotation {key} uses a template the test generator cannot expand: {text!r}"
                )
            annotations[key] = rendered
        return {"exp_labels": {**labels, **rule.get("labels", {})}, "exp_annotations": annotations}


def release_alerts(spec: ReleaseSpec, namespace: str, group: dict[str, Any]) -> ReleaseAlerts:
    return ReleaseAlerts(
        variant=spec.model.variant,
        fullname=spec.name,
        namespace=namespace,
        model_name=spec.model.served_model_name,
        thresholds=spec.effective_thresholds,
        startup_budget=spec.startup_window_seconds,
        hpa_name=spec.autoscaler_name,
        max_replicas=spec.scaling.max_replicas,
        rules={rule["alert"]: rule for rule in group["rules"] if "alert" in rule},
    )


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _case(
    name: str, series: list[dict[str, str]], checks: list[tuple[int, str, list[dict]]], interval: str = "1m"
) -> dict[str, Any]:
    return {
        "name": name,
        "interval": interval,
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": format_duration(t), "alertname": alert, "exp_alerts": exp} for t, alert, exp in checks
        ],
    }


def _minutes(seconds: int) -> int:
    return seconds // 60


# Each generator returns the test cases of one alert: quiet just below the threshold, firing at it.
# Time thresholds (`for`) are checked one evaluation (1m) before and at the moment they are reached;
# value thresholds with a series one step below the threshold and one at it.


def _variant_unavailable(r: ReleaseAlerts) -> list[dict]:
    alert, wait = "JinaEmbeddingsVariantUnavailable", parse_duration(r.thresholds["unavailableFor"])
    n = _minutes(wait) + 10
    dep = {"namespace": r.namespace, "deployment": r.fullname}
    decoy = {"namespace": OTHER_NAMESPACE, "deployment": r.fullname}
    fire = [
        _series("kube_deployment_status_replicas_available", dep, f"0x{n}"),
        _series("kube_deployment_spec_replicas", dep, f"2x{n}"),
        _series("kube_deployment_status_replicas_available", decoy, f"0x{n}"),
        _series("kube_deployment_spec_replicas", decoy, f"2x{n}"),
    ]
    quiet = [
        _series("kube_deployment_status_replicas_available", dep, f"1x{n}"),  # one replica left
        _series("kube_deployment_spec_replicas", dep, f"2x{n}"),
    ]
    scaled_to_zero = [
        _series("kube_deployment_status_replicas_available", dep, f"0x{n}"),
        _series("kube_deployment_spec_replicas", dep, f"0x{n}"),
    ]
    return [
        _case(
            f"{alert} {r.variant}: 0 available fires after {r.thresholds['unavailableFor']}",
            fire,
            [(wait - 60, alert, []), (wait, alert, [r.expected(alert, dep)])],
        ),
        _case(f"{alert} {r.variant}: 1 available stays quiet", quiet, [(wait + 300, alert, [])]),
        _case(f"{alert} {r.variant}: scaled to 0 on purpose stays quiet", scaled_to_zero, [(wait + 300, alert, [])]),
    ]


def _pod_not_ready(r: ReleaseAlerts) -> list[dict]:
    alert, wait = "JinaEmbeddingsPodNotReady", parse_duration(r.thresholds["podNotReadyFor"])
    n = _minutes(wait) + 10
    pod, other = {"namespace": r.namespace, "pod": r.pod}, {"namespace": r.namespace, "pod": r.other_pod}
    series = [
        _series("kube_pod_status_ready", {**pod, "condition": "true"}, f"0x{n}"),
        _series("kube_pod_status_unschedulable", pod, f"0x{n}"),
        _series("kube_pod_status_ready", {**other, "condition": "true"}, f"1x{n}"),  # a ready one
        _series("kube_pod_status_ready", {"namespace": OTHER_NAMESPACE, "pod": r.pod, "condition": "true"}, f"0x{n}"),
    ]
    pending = [
        _series("kube_pod_status_ready", {**pod, "condition": "true"}, f"0x{n}"),
        _series("kube_pod_status_unschedulable", pod, f"1x{n}"),
    ]  # PodsUnschedulable's case
    return [
        _case(
            f"{alert} {r.variant}: not ready fires after {r.thresholds['podNotReadyFor']}",
            series,
            [(wait - 60, alert, []), (wait, alert, [r.expected(alert, {**pod, "condition": "true"})])],
        ),
        _case(
            f"{alert} {r.variant}: an unschedulable pod is left to PodsUnschedulable",
            pending,
            [(wait + 300, alert, [])],
        ),
    ]


def _crash_looping(r: ReleaseAlerts) -> list[dict]:
    alert, restarts = "JinaEmbeddingsPodCrashLooping", int(r.thresholds["crashLoopRestarts"])
    labels = {"namespace": r.namespace, "pod": r.pod, "container": "vllm"}
    # One restart a minute from minute 11 on; the count reaches the threshold at minute 10 + restarts.
    steps = " ".join(str(i) for i in range(1, restarts + 1))
    series = [
        _series("kube_pod_container_status_restarts_total", labels, f"0x10 {steps} {restarts}x20"),
        _series(
            "kube_pod_container_status_restarts_total",
            {**labels, "namespace": OTHER_NAMESPACE},
            f"0x10 {steps} {restarts}x20",
        ),
    ]
    reached = (10 + restarts) * 60
    return [
        _case(
            f"{alert} {r.variant}: {restarts - 1} restarts stay quiet, {restarts} fire",
            series,
            [(reached - 60, alert, []), (reached, alert, [r.expected(alert, labels)])],
        )
    ]


def _startup_slow(r: ReleaseAlerts) -> list[dict]:
    alert = "JinaEmbeddingsStartupSlow"
    slow = r.startup_budget * int(r.thresholds["startupSlowPercent"]) // 100
    n = _minutes(r.startup_budget) + 5
    labels = {"namespace": r.namespace, "pod": r.pod, "container": "vllm"}
    ready_labels = {"namespace": r.namespace, "pod": r.other_pod, "container": "vllm"}
    # Both containers started at t=0 (the series' value is the start's unix time); one never gets ready.
    series = [
        _series("kube_pod_container_state_started", labels, f"0x{n}"),
        _series("kube_pod_container_status_ready", labels, f"0x{n}"),
        _series("kube_pod_container_state_started", ready_labels, f"0x{n}"),
        _series("kube_pod_container_status_ready", ready_labels, f"1x{n}"),
    ]
    return [
        _case(
            f"{alert} {r.variant}: still loading at {slow}s of a {r.startup_budget}s budget",
            series,
            [
                (slow - 1, alert, []),
                (slow, alert, [r.expected(alert, labels)]),
                # Older than the budget: it passed its start-up probe once; PodNotReady's business.
                (r.startup_budget, alert, []),
            ],
        )
    ]


def _request_backlog(r: ReleaseAlerts) -> list[dict]:
    alert, wait = "JinaEmbeddingsRequestBacklog", parse_duration(r.thresholds["backlogFor"])
    limit, n = int(r.thresholds["backlogWaitingPerPod"]), _minutes(wait) + 10
    engine = {"namespace": r.namespace, "model_name": r.model_name, "engine": "0"}
    at = [
        _series("vllm:num_requests_waiting", {**engine, "pod": r.pod}, f"{limit}x{n}"),
        _series("vllm:num_requests_waiting", {**engine, "pod": r.other_pod}, f"{limit}x{n}"),
        _series(
            "vllm:num_requests_waiting", {**engine, "namespace": OTHER_NAMESPACE, "pod": r.pod}, f"{limit * 10}x{n}"
        ),
    ]
    below = [
        _series("vllm:num_requests_waiting", {**engine, "pod": r.pod}, f"{limit}x{n}"),
        _series("vllm:num_requests_waiting", {**engine, "pod": r.other_pod}, f"{limit - 1}x{n}"),
    ]  # average limit - 0.5
    expected = {"namespace": r.namespace, "model_name": r.model_name}
    return [
        _case(
            f"{alert} {r.variant}: an average of {limit} waiting fires after {r.thresholds['backlogFor']}",
            at,
            [(wait - 60, alert, []), (wait, alert, [r.expected(alert, expected)])],
        ),
        _case(
            f"{alert} {r.variant}: an average of {limit - 0.5} waiting stays quiet", below, [(wait + 300, alert, [])]
        ),
    ]


def _latency_high(r: ReleaseAlerts) -> list[dict]:
    """Buckets around the objective T: (T/2, T] holds 95 of every 100 requests, so p95 is exactly T;
    with 96 of 100 there, p95 is just under T."""
    alert, wait = "JinaEmbeddingsLatencyHigh", parse_duration(r.thresholds["latencyFor"])
    objective, n = float(r.thresholds["latencyP95Seconds"]), _minutes(wait) + 10
    labels = {"namespace": r.namespace, "model_name": r.model_name, "engine": "0", "pod": r.pod}

    def histogram(in_objective: int) -> list[dict[str, str]]:
        cumulative = {objective / 2: 0, objective: in_objective, objective * 2: 100, "+Inf": 100}
        return [
            _series("vllm:e2e_request_latency_seconds_bucket", {**labels, "le": str(le)}, f"0+{per_minute}x{n}")
            for le, per_minute in cumulative.items()
        ]

    start = 60  # rate() needs two samples
    expected = {"namespace": r.namespace, "model_name": r.model_name}
    return [
        _case(
            f"{alert} {r.variant}: p95 = {objective}s fires after {r.thresholds['latencyFor']}",
            histogram(95),
            [(start + wait - 60, alert, []), (start + wait, alert, [r.expected(alert, expected)])],
        ),
        _case(
            f"{alert} {r.variant}: p95 just under {objective}s stays quiet",
            histogram(96),
            [(start + wait + 300, alert, [])],
        ),
    ]


def _engine_stalled(r: ReleaseAlerts) -> list[dict]:
    alert, wait = "JinaEmbeddingsEngineStalled", parse_duration(r.thresholds["stalledFor"])
    n = _minutes(wait) + 30
    labels = {"namespace": r.namespace, "model_name": r.model_name, "engine": "0", "pod": r.pod}
    # Tokens flow for 10 minutes, then stop while 3 requests wait: rate()[5m] is 0 from minute 15 on.
    stalled = [
        _series("vllm:num_requests_waiting", labels, f"3x{n}"),
        _series("vllm:prompt_tokens_total", labels, f"0+100x10 1000x{n}"),
    ]
    slow = [
        _series("vllm:num_requests_waiting", labels, f"3x{n}"),
        _series("vllm:prompt_tokens_total", labels, f"0+100x10 1000+1x{n}"),
    ]  # one token a minute: alive
    idle = [
        _series("vllm:num_requests_waiting", labels, f"0x{n}"),
        _series("vllm:prompt_tokens_total", labels, f"0+100x10 1000x{n}"),
    ]  # nothing to do
    start = 15 * 60
    expected = {"namespace": r.namespace, "pod": r.pod}
    return [
        _case(
            f"{alert} {r.variant}: waiting and no token fires after {r.thresholds['stalledFor']}",
            stalled,
            [(start + wait - 60, alert, []), (start + wait, alert, [r.expected(alert, expected)])],
        ),
        _case(f"{alert} {r.variant}: a slow but moving engine stays quiet", slow, [(start + wait + 300, alert, [])]),
        _case(f"{alert} {r.variant}: an idle engine stays quiet", idle, [(start + wait + 300, alert, [])]),
    ]


def _kv_cache_saturated(r: ReleaseAlerts) -> list[dict]:
    alert, wait = "JinaEmbeddingsKVCacheSaturated", parse_duration(r.thresholds["kvCacheFor"])
    usage, n = float(r.thresholds["kvCacheUsage"]), _minutes(wait) + 10
    labels = {"namespace": r.namespace, "model_name": r.model_name, "engine": "0", "pod": r.pod}
    expected = {"namespace": r.namespace, "pod": r.pod}
    return [
        _case(
            f"{alert} {r.variant}: {usage} used fires after {r.thresholds['kvCacheFor']}",
            [_series("vllm:kv_cache_usage_perc", labels, f"{usage}x{n}")],
            [(wait - 60, alert, []), (wait, alert, [r.expected(alert, expected)])],
        ),
        _case(
            f"{alert} {r.variant}: {round(usage - 0.01, 4)} used stays quiet",
            [_series("vllm:kv_cache_usage_perc", labels, f"{round(usage - 0.01, 4)}x{n}")],
            [(wait + 300, alert, [])],
        ),
    ]


def _hpa_maxed_out(r: ReleaseAlerts) -> list[dict]:
    alert, wait = "JinaEmbeddingsHPAMaxedOut", parse_duration(r.thresholds["hpaMaxedOutFor"])
    assert r.hpa_name is not None
    n, top = _minutes(wait) + 10, r.max_replicas
    hpa = {"namespace": r.namespace, "horizontalpodautoscaler": r.hpa_name}

    def series(current: int) -> list[dict[str, str]]:
        return [
            _series("kube_horizontalpodautoscaler_status_current_replicas", hpa, f"{current}x{n}"),
            _series("kube_horizontalpodautoscaler_spec_max_replicas", hpa, f"{top}x{n}"),
        ]

    return [
        _case(
            f"{alert} {r.variant}: {top} of {top} replicas fires after {r.thresholds['hpaMaxedOutFor']}",
            series(top),
            [(wait - 60, alert, []), (wait, alert, [r.expected(alert, hpa)])],
        ),
        _case(
            f"{alert} {r.variant}: {top - 1} of {top} replicas stays quiet", series(top - 1), [(wait + 300, alert, [])]
        ),
    ]


def _pods_unschedulable(r: ReleaseAlerts) -> list[dict]:
    alert, wait = "JinaEmbeddingsPodsUnschedulable", parse_duration(r.thresholds["unschedulableFor"])
    n = _minutes(wait) + 10
    pod = {"namespace": r.namespace, "pod": r.pod}
    series = [
        _series("kube_pod_status_unschedulable", pod, f"1x{n}"),
        _series("kube_pod_status_unschedulable", {"namespace": r.namespace, "pod": r.other_pod}, f"0x{n}"),
        # another release's pod whose name only starts like ours
        _series(
            "kube_pod_status_unschedulable",
            {"namespace": r.namespace, "pod": f"{r.fullname}-canary-5d9c7b8f6d-x2x7q"},
            f"1x{n}",
        ),
    ]
    return [
        _case(
            f"{alert} {r.variant}: unschedulable fires after {r.thresholds['unschedulableFor']}",
            series,
            [(wait - 60, alert, []), (wait, alert, [r.expected(alert, pod)])],
        )
    ]


def _metrics_missing(r: ReleaseAlerts) -> list[dict]:
    alert, wait = "JinaEmbeddingsMetricsMissing", parse_duration(r.thresholds["metricsMissingFor"])
    n = _minutes(wait) + 10
    dep = {"namespace": r.namespace, "deployment": r.fullname}
    available = _series("kube_deployment_status_replicas_available", dep, f"2x{n}")
    target = {"namespace": r.namespace, "job": r.fullname}
    all_down = [
        available,
        _series("up", {**target, "pod": r.pod}, f"0x{n}"),
        _series("up", {**target, "pod": r.other_pod}, f"0x{n}"),
    ]
    one_up = [
        available,
        _series("up", {**target, "pod": r.pod}, f"0x{n}"),
        _series("up", {**target, "pod": r.other_pod}, f"1x{n}"),
    ]
    return [
        _case(
            f"{alert} {r.variant}: no target discovered fires after {r.thresholds['metricsMissingFor']}",
            [available],
            [(wait - 60, alert, []), (wait, alert, [r.expected(alert, dep)])],
        ),
        _case(f"{alert} {r.variant}: every scrape failing fires", all_down, [(wait, alert, [r.expected(alert, dep)])]),
        _case(f"{alert} {r.variant}: one target scraped stays quiet", one_up, [(wait + 300, alert, [])]),
    ]


# Keyed by infra.core.thresholds.ALERT_NAMES, in that order.
CASES: dict[str, Callable[[ReleaseAlerts], list[dict]]] = {
    "JinaEmbeddingsVariantUnavailable": _variant_unavailable,
    "JinaEmbeddingsPodNotReady": _pod_not_ready,
    "JinaEmbeddingsPodCrashLooping": _crash_looping,
    "JinaEmbeddingsStartupSlow": _startup_slow,
    "JinaEmbeddingsRequestBacklog": _request_backlog,
    "JinaEmbeddingsLatencyHigh": _latency_high,
    "JinaEmbeddingsEngineStalled": _engine_stalled,
    "JinaEmbeddingsKVCacheSaturated": _kv_cache_saturated,
    "JinaEmbeddingsHPAMaxedOut": _hpa_maxed_out,
    "JinaEmbeddingsPodsUnschedulable": _pods_unschedulable,
    "JinaEmbeddingsMetricsMissing": _metrics_missing,
}
if tuple(CASES) != ALERT_NAMES:  # a new alert needs its cases here and its runbook template
    raise AssertionError(f"CASES {tuple(CASES)} != infra.core.thresholds.ALERT_NAMES {ALERT_NAMES}")
# StartupSlow's threshold is in seconds, not minutes: its cases run in a file evaluated every second.
PER_SECOND_ALERTS = frozenset({"JinaEmbeddingsStartupSlow"})


def promtool_tests(release: ReleaseAlerts, rules_path: str) -> dict[str, dict[str, Any]]:
    """Test files (name -> content) for `promtool test rules`: every alert of one release, against that
    release's rules only (each case evaluates every rule of its files, so smaller files run faster)."""
    per_minute: list[dict] = []
    per_second: list[dict] = []
    for alert in release.rules:
        if alert not in CASES:
            raise KeyError(
                f"alert {alert} of {release.fullname} has no promtool cases in infra/checks/promtool.py CASES"
            )
        (per_second if alert in PER_SECOND_ALERTS else per_minute).extend(CASES[alert](release))
    files = {
        f"tests-{release.variant}.yaml": {"rule_files": [rules_path], "evaluation_interval": "1m", "tests": per_minute}
    }
    if per_second:
        files[f"tests-{release.variant}-per-second.yaml"] = {
            "rule_files": [rules_path],
            "evaluation_interval": "1s",
            "tests": per_second,
        }
    return files


def write_promtool_files(plan, rendered: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    """Into `out`: rules.yaml (every release's rules, for `promtool check rules`), and per release its
    rules-<variant>.yaml with the generated tests-<variant>*.yaml. `rendered`: variant -> objects.
    Returns the test files."""
    out.mkdir(parents=True, exist_ok=True)
    groups, tests = [], []
    for release in plan.releases:
        release_groups = rule_groups(rendered[release.variant])
        if not release_groups:
            continue
        groups.extend(release_groups)
        (out / f"rules-{release.variant}.yaml").write_text(rules_file(release_groups))
        for group in release_groups:
            cases = promtool_tests(
                release_alerts(release.spec, release.namespace, group), f"rules-{release.variant}.yaml"
            )
            for name, content in cases.items():
                (out / name).write_text(yaml.safe_dump(content, sort_keys=False, width=200))
                tests.append(out / name)
    (out / "rules.yaml").write_text(rules_file(groups))
    return tests
