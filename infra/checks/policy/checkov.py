"""Checkov's Kubernetes checks over everything the bundle renders: `python -m infra checkov`.

Checkov lives in its own virtualenv in the tool cache (`tools/bootstrap.sh checkov`, pinned by
requirements-checkov.lock; its pins conflict with pulumi's), so this module runs it as a program and reads its
JSON report. It writes every stack's and every chart scenario's objects (infra.sinks.bundles) one file per
object, runs Checkov over them and over the committed manifests/ tree, and fails on any failed check, any
parsing error, and any suppression (`checkov.io/skipN: CKV_K8S_xx=<reason>`) without a reason.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.core.names import object_stem
from infra.core.paths import TOOLS_DIR

# tools/bootstrap.sh builds it into $BUNDLE_TOOLS_DIR/checkov-<CHECKOV_VERSION of tools/versions.env>, linked as checkov
CHECKOV_VENV = TOOLS_DIR / "checkov" / "venv"
# Offline: no PyPI version check, no Prisma Cloud ID mapping, no guideline download (--skip-download).
OFFLINE_ENV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE", "PYTHONWARNINGS": "ignore"}
NO_REASON = "No comment provided"  # what Checkov records for a skip annotation without `=<reason>`


def checkov_binary() -> Path:
    binary = CHECKOV_VENV / "bin" / "checkov"
    if not binary.exists():
        raise FileNotFoundError(
            f"{binary} not found: run `tools/bootstrap.sh checkov` (installs the checkov pinned in tools/versions.env"
            " from requirements-checkov.lock into the tool cache)"
        )
    return binary


@dataclass
class CheckovResult:
    passed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)  # Checkov's failed_checks entries
    skipped: list[dict[str, Any]] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)
    resources: int = 0

    @property
    def unreasoned_skips(self) -> list[dict[str, Any]]:
        return [
            s
            for s in self.skipped
            if (s.get("check_result") or {}).get("suppress_comment", NO_REASON).strip() in ("", NO_REASON)
        ]

    def describe(self) -> str:
        return (
            f"{self.resources} resources: {self.passed} passed, {len(self.failed)} failed, {len(self.skipped)} skipped "
            f"({len(self.unreasoned_skips)} without a reason), {len(self.parsing_errors)} parsing errors"
        )


def run(directory: Path) -> CheckovResult:
    """Checkov's kubernetes framework over `directory`, offline; the report parsed."""
    proc = subprocess.run(
        [
            str(checkov_binary()),
            "--directory",
            str(directory),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_ENV},
    )
    # Exit code 1 means "some check failed"; anything else non-zero, or no JSON, is a broken run.
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"checkov exited {proc.returncode} without a JSON report:\n{proc.stderr[-3000:]}") from None
    reports = report if isinstance(report, list) else [report]
    result = CheckovResult()
    for r in reports:
        results, summary = r.get("results") or {}, r.get("summary") or {}
        result.passed += int(summary.get("passed", 0))
        result.resources += int(summary.get("resource_count", 0))
        result.failed += results.get("failed_checks") or []
        result.skipped += results.get("skipped_checks") or []
        result.parsing_errors += results.get("parsing_errors") or []
    return result


def write_objects(bundles: Mapping[str, Iterable[Mapping[str, Any]]], root: Path) -> int:
    """One YAML file per object under root/<bundle>/; returns the number of objects written."""
    count = 0
    for name, objects in bundles.items():
        directory = root / name.replace(":", "-")
        directory.mkdir(parents=True, exist_ok=True)
        for i, obj in enumerate(objects):
            (directory / f"{i:03d}-{object_stem(obj)}.yaml").write_text(yaml.safe_dump(obj, sort_keys=True))
            count += 1
    return count
