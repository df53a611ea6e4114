"""The code gates, as `make test` runs them: import layers, lint, format and types all pass on the whole tree.

Each tool runs as a subprocess from the repository root with its configuration in pyproject.toml, taken from the
same environment as the test run (next to sys.executable), so a finding fails here with the tool's own output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.core.paths import REPO_ROOT

BIN = Path(sys.executable).parent

GATES = {
    "import-linter": ["lint-imports", "--no-cache"],
    "ruff-check": ["ruff", "check", "."],
    "ruff-format": ["ruff", "format", "--check", "."],
    "mypy": ["mypy"],
}


@pytest.mark.parametrize("gate", list(GATES))
def test_gate_passes(gate: str) -> None:
    tool, *args = GATES[gate]
    executable = BIN / tool
    assert executable.exists(), f"{tool} is not installed next to {sys.executable}"
    proc = subprocess.run([str(executable), *args], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join([tool, *args])} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
