"""Running the pinned helm binary (built by tools/bootstrap.sh) over the bundle's chart."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from infra.core.paths import TOOLS_DIR
from infra.core.plan import PlannedRelease


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""


def helm_binary() -> str:
    """The pinned helm: $HELM, else the tool cache's bin/helm, else helm on PATH."""
    for candidate in (os.environ.get("HELM"), str(TOOLS_DIR / "bin" / "helm"), shutil.which("helm")):
        if candidate and Path(candidate).exists():
            return candidate
    raise HelmError("helm not found: run `make tools` (tools/bootstrap.sh helm) to build the pinned helm")


def run_helm(*args: str) -> str:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HelmError(f"helm {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def template(chart: Path, release_name: str, namespace: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """`helm template` with the given values; returns the rendered objects."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(values, f, sort_keys=True)
        values_path = f.name
    try:
        out = run_helm("template", release_name, str(chart), "--namespace", namespace, "--values", values_path)
    finally:
        os.unlink(values_path)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render_release(release: PlannedRelease) -> list[dict[str, Any]]:
    return template(release.chart_path, release.name, release.namespace, release.values)
