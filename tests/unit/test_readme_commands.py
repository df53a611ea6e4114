"""Every command README.md shows is one this repository has: each `python -m infra ...` line parses with the
real CLI parser, each `make` target exists. The tiers run the commands themselves (the section tests named in
the README); here the write-mode commands that CI otherwise only checks (`runbooks`, `infra alerts`) run for real."""

from __future__ import annotations

import filecmp
import re
import shlex
import subprocess
import sys

import pytest

from infra.cli import build_parser
from infra.core.paths import REPO_ROOT
from infra.sinks.runbooks import RUNBOOKS_DIR

PYTHON = [".venv/bin/python", "-m"]


def readme_commands() -> list[list[str]]:
    text = (REPO_ROOT / "README.md").read_text()
    lines = [
        line.split(" #", 1)[0].strip()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S)
        for line in block.splitlines()
    ]
    return [shlex.split(line) for line in lines if line and not line.startswith("#")]


def make_targets() -> set[str]:
    makefiles = [REPO_ROOT / "Makefile", *sorted((REPO_ROOT / "mk").glob("*.mk"))]
    return {t for f in makefiles for t in re.findall(r"^([a-z][a-z0-9-]*):", f.read_text(), re.M)}


def test_the_readme_starts_with_the_two_setup_commands():
    assert readme_commands()[:2] == [["make", "demo"], ["make", "test"]]


def test_every_make_target_the_readme_shows_exists():
    shown = {c[1] for c in readme_commands() if c[0] == "make"}
    assert shown and shown <= make_targets(), shown - make_targets()


def test_every_infra_command_the_readme_shows_parses():
    commands = [c for c in readme_commands() if c[:3] == [*PYTHON, "infra"]]
    assert len(commands) >= 10
    for command in commands:
        build_parser().parse_args(command[3:])  # exits 2 (SystemExit) on an unknown command or flag


def test_python_commands_use_the_projects_virtualenv():
    """A bare `python` may lack the pinned packages; the README's commands name `.venv/bin/python`."""
    assert not [c for c in readme_commands() if c[0] in ("python", "python3")]


@pytest.mark.parametrize(
    "command", [c for c in readme_commands() if c[:4] == [*PYTHON, "infra", "alerts"]], ids=lambda c: " ".join(c[2:4])
)
def test_the_readme_alerts_command_writes_rules_and_promtool_tests(command, tmp_path):
    args = [a if a != command[command.index("--out") + 1] else str(tmp_path / "out") for a in command[2:]]
    proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "rules.yaml" in written and len(written) >= 2, written


def test_runbooks_in_write_mode_rewrite_exactly_the_committed_pages(tmp_path):
    out = tmp_path / "runbooks"
    (out / "prod").mkdir(parents=True)
    (out / "prod" / "RemovedAlert.md").write_text("a page whose alert no longer exists\n")
    proc = subprocess.run(
        [sys.executable, "-m", "infra", "runbooks", "--runbooks-dir", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    committed = sorted(p.relative_to(RUNBOOKS_DIR) for p in RUNBOOKS_DIR.rglob("*.md"))
    assert sorted(p.relative_to(out) for p in out.rglob("*.md")) == committed
    match, mismatch, errors = filecmp.cmpfiles(RUNBOOKS_DIR, out, [str(p) for p in committed], shallow=False)
    assert not mismatch and not errors and len(match) == len(committed) >= 30
