"""`make policy` (python -m infra policy): every gate passes, and docs/security.md's table is what it measures."""

from __future__ import annotations

import re
import subprocess

from infra.cli import policy as report
from infra.core.paths import REPO_ROOT


def _rows(table: str) -> dict[str, list[str]]:
    """Table rows by control; the repository's file count (and so the total) moves with every new file."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[1].startswith("`"):
            if cells[1] == "`secrets.repository`":
                cells[4] = "<files>"
            rows[cells[1]] = cells
    return rows


def test_make_policy_passes_and_names_every_control():
    proc = subprocess.run(["make", "policy"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ controls, \d+ control x object checks, 0 failures", proc.stdout), proc.stdout[-2000:]


def test_security_doc_table_is_the_measured_one():
    bundles, rows = report.build_rows(report.stack_names(), with_scenarios=True, with_exports=True)
    live = report.markdown(rows, bundles)
    documented = report.report_block(report.SECURITY_DOC.read_text())
    assert _rows(documented) == _rows(live), "docs/security.md is stale: run `python -m infra policy --write-docs`"
    assert all(cells[5] == "0" for cells in _rows(documented).values())


def test_unknown_stack_is_bad_input():
    proc = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/python"), "-m", "infra", "policy", "--env", "nosuch"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "nosuch" in proc.stderr


def test_the_readme_carries_no_policy_table():
    """The table lives in docs/security.md only; README.md links to it."""
    assert report.REPORT_BEGIN not in (REPO_ROOT / "README.md").read_text()
