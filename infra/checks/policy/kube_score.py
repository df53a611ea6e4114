"""Generic workload lint by kube-score (github.com/zegl/kube-score, pinned in tools/versions.env), over one bundle.

kube-score judges what every Kubernetes workload should have: probes that differ, PDBs for replicated
Deployments, resources and ephemeral-storage, NetworkPolicies that select pods (and pods selected for
ingress and egress), Services that select pods, HPA targets, no `replicas` under an HPA, host
anti-affinity or spread, security context, deprecated API versions. Which of its checks are off (or
optional checks on), and why, is the committed policy/kube-score.yaml; `flags()` turns it into arguments.

`score()` is pure apart from the binary: it takes the bundle's objects, writes them to a temporary file,
runs `kube-score score --output-format json` and returns one Violation per failing check and object
(grade Warning or Critical, not skipped: kube-score's own `--exit-one-on-warning` threshold). Objects of
kinds kube-score does not know (HTTPRoute, ScaledObject, ServiceMonitor, Argo CD / Flux objects) are
ignored by it. The bundle's own rules stay in infra.checks.policy.rules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.checks.policy.violations import Violation
from infra.core.paths import REPO_ROOT, TOOLS_DIR

CONFIG_PATH = REPO_ROOT / "policy" / "kube-score.yaml"
CONTROL_PREFIX = "kube-score."
# scorecard.GradeWarning: kube-score's `--exit-one-on-warning` fails on this grade and below (Critical = 1).
FAILING_GRADE = 5
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class KubeScoreError(RuntimeError):
    """kube-score is missing or failed (not: it found something)."""


@dataclass(frozen=True)
class Config:
    kubernetes_version: str
    ignore: Mapping[str, str]  # check id -> reason, for every bundle
    optional: Mapping[str, str]  # optional check id -> why it is on
    ignore_in_chart_scenarios: Mapping[str, str]  # check id -> reason, only where the bundle is the chart alone
    flags: Mapping[str, Any]  # other kube-score flags (name without --, value)


def _reasons(entries: Any, field: str) -> dict[str, str]:
    out = {}
    for entry in entries or ():
        if not isinstance(entry, Mapping) or not entry.get("check") or not str(entry.get("reason", "")).strip():
            raise ValueError(f"{CONFIG_PATH.name}: every {field} entry needs `check` and a non-empty `reason`: {entry}")
        out[str(entry["check"])] = str(entry["reason"]).strip()
    return out


def load_config(path: Path = CONFIG_PATH) -> Config:
    raw = yaml.safe_load(path.read_text()) or {}
    return Config(
        kubernetes_version=str(raw["kubernetesVersion"]),
        ignore=_reasons(raw.get("ignore"), "ignore"),
        optional=_reasons(raw.get("optional"), "optional"),
        ignore_in_chart_scenarios=_reasons(raw.get("ignoreInChartScenarios"), "ignoreInChartScenarios"),
        flags=dict(raw.get("flags") or {}),
    )


def flags(config: Config, chart_only: bool = False) -> list[str]:
    """kube-score arguments for one bundle; `chart_only`: a chart scenario (no platform objects)."""
    ignored = {**config.ignore, **(config.ignore_in_chart_scenarios if chart_only else {})}
    args = [f"--kubernetes-version={config.kubernetes_version}"]
    args += [f"--ignore-test={check}" for check in sorted(ignored)]
    args += [f"--enable-optional-test={check}" for check in sorted(config.optional)]
    for name, value in sorted(config.flags.items()):
        args.append(f"--{name}" if value is True else f"--{name}={value}")
    return args


def binary() -> str:
    """The pinned kube-score: $KUBE_SCORE, else the tool cache's bin/kube-score, else kube-score on PATH."""
    for candidate in (os.environ.get("KUBE_SCORE"), str(TOOLS_DIR / "bin" / "kube-score"), shutil.which("kube-score")):
        if candidate and Path(candidate).exists():
            return candidate
    raise KubeScoreError("kube-score not found: run `tools/bootstrap.sh kube-score`")


def version(kube_score: str | None = None) -> str:
    return subprocess.run([kube_score or binary(), "version"], capture_output=True, text=True, check=True).stdout


def _object_id(scored: Mapping[str, Any]) -> str:
    kind = (scored.get("type_meta") or {}).get("kind") or "<no kind>"
    meta = scored.get("object_meta") or {}
    name, namespace = meta.get("name", "<unnamed>"), meta.get("namespace")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def parse(scored_objects: Sequence[Mapping[str, Any]]) -> list[Violation]:
    """Violations out of `--output-format json` (v2): a list of scored objects, each with its checks."""
    violations = []
    for scored in scored_objects:
        for check in scored.get("checks") or ():
            if check.get("skipped") or int(check.get("grade", 10)) > FAILING_GRADE:
                continue
            for comment in check.get("comments") or [{}]:
                path = f"{comment['path']}: " if comment.get("path") else ""
                message = f"{path}{comment.get('summary') or check['check'].get('name')}"
                violations.append(Violation(CONTROL_PREFIX + check["check"]["id"], _object_id(scored), message))
    return sorted(set(violations))


def checked(scored_objects: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """Objects each check judged (not skipped), by check id."""
    return Counter(
        c["check"]["id"] for scored in scored_objects for c in scored.get("checks") or () if not c.get("skipped")
    )


def run(
    objects: Sequence[Mapping[str, Any]], config: Config | None = None, chart_only: bool = False
) -> list[dict[str, Any]]:
    """kube-score's JSON report (v2) over one bundle (objects that cross-reference: run a bundle at a time)."""
    config = config or load_config()
    with tempfile.TemporaryDirectory(prefix="kube-score-") as tmp:
        path = Path(tmp) / "bundle.yaml"
        path.write_text(yaml.dump_all(list(objects), Dumper=_DUMPER, sort_keys=True))
        proc = subprocess.run(
            [binary(), "score", "--output-format=json", *flags(config, chart_only), str(path)],
            capture_output=True,
            text=True,
        )
    # exit 1 means "found something"; anything else non-zero, or no JSON, is kube-score failing
    try:
        report = json.loads(proc.stdout) if proc.returncode in (0, 1) else None
    except ValueError:
        report = None
    if not isinstance(report, list) and not (report is None and proc.stdout.strip() == "null"):
        raise KubeScoreError(f"kube-score exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return report or []


def score(
    objects: Sequence[Mapping[str, Any]], config: Config | None = None, chart_only: bool = False
) -> list[Violation]:
    """Every failing kube-score check over one bundle."""
    return parse(run(objects, config, chart_only))


def checks(kube_score: str | None = None) -> dict[str, tuple[str, str, str]]:
    """Every check kube-score has: id -> (target kind, description, "default" | "optional"), from `kube-score list`."""
    listed = subprocess.run([kube_score or binary(), "list"], capture_output=True, text=True, check=True).stdout
    out = {}
    for line in listed.splitlines():
        if line.strip():
            check_id, target, rest = line.split(",", 2)
            description, _, enabled = rest.rpartition(",")
            out[check_id] = (target, description, enabled)
    return out
