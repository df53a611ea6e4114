"""`make policy` (python -m infra policy): every gate passes, and docs/security.md's table is what it measures
(one run does both: building every row takes minutes)."""

from __future__ import annotations

import re
import subprocess

from infra.cli import policy as report
from infra.core.paths import REPO_ROOT


def test_make_policy_passes_names_every_control_and_finds_the_doc_table_measured():
    proc = subprocess.run(["make", "policy"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ controls, \d+ control x object checks, 0 failures", proc.stdout), proc.stdout[-2000:]
    assert "docs/security.md: the policy table is the measured one" in proc.stdout, proc.stdout[-2000:]


def test_the_documented_table_shows_no_failure():
    rows = report.table_rows(report.report_block(report.SECURITY_DOC.read_text()))
    assert rows and all(cells[5] == "0" for cells in rows.values()), rows


def test_a_stale_row_is_named_and_the_file_count_is_not_compared():
    documented = report.report_block(report.SECURITY_DOC.read_text())
    assert report.stale_controls(documented, documented) == []
    files_row = next(line for line in documented.splitlines() if "`secrets.repository`" in line)
    cells = files_row.split("|")
    cells[5] = f" {int(cells[5]) + 7} "  # a file added since the table was written
    assert report.stale_controls(documented, documented.replace(files_row, "|".join(cells))) == []
    probes_row = next(line for line in documented.splitlines() if "`kube-score.pod-probes`" in line)
    stale = documented.replace(probes_row, probes_row.replace("| 0 |", "| 1 |"))
    assert report.stale_controls(stale, documented) == ["kube-score.pod-probes"]
    assert report.stale_controls(documented.replace(probes_row + "\n", ""), documented) == ["kube-score.pod-probes"]


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
