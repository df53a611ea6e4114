"""Alert thresholds: the two the plan derives per release, duration arithmetic, and the alert names.

The chart's templates/prometheusrule.yaml owns the rules; its values.yaml owns the static thresholds. This
module decides only what depends on the plan (PodNotReady waits out the start-up budget; RequestBacklog
follows the autoscaling target) and reads rendered rules back (`rule_groups`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from infra.core.config import StackConfig
from infra.core.sizing import Sizing

ALERT_NAMES = (
    "JinaEmbeddingsVariantUnavailable",
    "JinaEmbeddingsPodNotReady",
    "JinaEmbeddingsPodCrashLooping",
    "JinaEmbeddingsStartupSlow",
    "JinaEmbeddingsRequestBacklog",
    "JinaEmbeddingsLatencyHigh",
    "JinaEmbeddingsEngineStalled",
    "JinaEmbeddingsKVCacheSaturated",
    "JinaEmbeddingsHPAMaxedOut",
    "JinaEmbeddingsPodsUnschedulable",
    "JinaEmbeddingsMetricsMissing",
)
"""Every alert of the chart's templates/prometheusrule.yaml, in the order it renders them (HPAMaxedOut only for
autoscaled variants). Each has promtool cases (infra.checks.promtool) and a runbook template (infra.sinks)."""

# RequestBacklog fires at this multiple of the queue depth autoscaling aims for.
BACKLOG_TARGET_MULTIPLE = 4


# PodNotReady waits at least this long, and always longer than a start-up may take.
POD_NOT_READY_MIN_SECONDS = 900
POD_NOT_READY_MARGIN_SECONDS = 300


def parse_duration(text: str) -> int:
    """'15m' -> 900. Only the units the chart's schema allows (s, m, h)."""
    match = re.fullmatch(r"(\d+)([smh])", str(text))
    if not match:
        raise ValueError(f"not a duration of s, m or h: {text!r}")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def format_duration(seconds: int) -> str:
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m" if seconds % 60 == 0 and seconds > 0 else f"{seconds}s"


def thresholds_for(cfg: StackConfig, sizing: Sizing) -> dict[str, Any]:
    """The two thresholds that depend on the plan; the chart's values.yaml owns the others."""
    thresholds: dict[str, Any] = {}
    # A start-up may use its whole probe budget; PodNotReady must not fire on a normal one.
    not_ready = max(POD_NOT_READY_MIN_SECONDS, sizing.startup_budget_seconds + POD_NOT_READY_MARGIN_SECONDS)
    thresholds["podNotReadyFor"] = format_duration(-(-not_ready // 60) * 60)
    thresholds["backlogWaitingPerPod"] = BACKLOG_TARGET_MULTIPLE * cfg.autoscaling.target_waiting_per_pod
    return thresholds


def rule_groups(rendered_objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """spec.groups of every PrometheusRule among rendered objects (one group per release)."""
    groups: list[dict[str, Any]] = []
    for obj in rendered_objects:
        if obj.get("kind") == "PrometheusRule":
            groups.extend(obj["spec"]["groups"])
    return groups


def rules_file(groups: list[dict[str, Any]]) -> str:
    """A Prometheus rules file (what `promtool check rules` reads) holding these groups."""
    return yaml.safe_dump({"groups": groups}, sort_keys=True, width=200)
