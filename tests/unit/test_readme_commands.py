"""Every command README.md and docs/*.md show is one this repository has: each `python -m infra ...` line parses
with the real CLI parser, each `make` target exists, each `.venv/bin/<tool>` is pinned. The tiers run the commands
themselves (the section tests named in the pages); here the write-mode commands that CI otherwise only checks
(`runbooks`, `docs`, `infra alerts`) run for real. docs/runbooks/ is generated and tested by tests/alerts."""

from __future__ import annotations

import filecmp
import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from infra.cli import build_parser
from infra.core.paths import REPO_ROOT
from infra.sinks.runbooks import RUNBOOKS_DIR

PYTHON = [".venv/bin/python", "-m"]


DOC_PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def page_commands(page) -> list[list[str]]:
    """The commands of a page's bash blocks, one per `&&` part, comments dropped."""
    lines = [
        line.split(" #", 1)[0].strip()
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)
        for line in block.splitlines()
    ]
    return [shlex.split(part) for line in lines if line and not line.startswith("#") for part in line.split("&&")]


def readme_commands() -> list[list[str]]:
    return page_commands(REPO_ROOT / "README.md")


def doc_commands() -> list[list[str]]:
    return [c for page in DOC_PAGES for c in page_commands(page)]


def make_targets() -> set[str]:
    makefiles = [REPO_ROOT / "Makefile", *sorted((REPO_ROOT / "mk").glob("*.mk"))]
    return {t for f in makefiles for t in re.findall(r"^([a-z][a-z0-9-]*):", f.read_text(), re.M)}


def test_the_readme_starts_with_the_two_setup_commands():
    assert readme_commands()[:2] == [["make", "demo"], ["make", "test"]]


def test_every_doc_page_is_linked_from_the_readme():
    readme = (REPO_ROOT / "README.md").read_text()
    assert all(f"](docs/{page.name})" in readme for page in DOC_PAGES[1:]), "README.md lacks a link to a docs page"


def test_every_make_target_the_docs_show_exists():
    shown = {c[1] for c in doc_commands() if c[0] == "make"}
    assert shown and shown <= make_targets(), shown - make_targets()


def test_every_infra_command_the_docs_show_parses():
    commands = [c for c in doc_commands() if c[:3] == [*PYTHON, "infra"]]
    assert len(commands) >= 20
    for command in commands:
        build_parser().parse_args(command[3:])  # exits 2 (SystemExit) on an unknown command or flag
    shown = {c[3] for c in commands}
    subparsers = build_parser()._subparsers
    assert subparsers is not None
    registered = {name for action in subparsers._group_actions for name in (action.choices or {})}
    assert registered - shown <= {"checkov"}, f"commands no page shows: {registered - shown}"


def test_python_commands_use_the_projects_virtualenv():
    """A bare `python` may lack the pinned packages; the pages' commands name `.venv/bin/python`."""
    assert not [c for c in doc_commands() if c[0] in ("python", "python3")]


def test_every_venv_tool_the_docs_show_is_pinned():
    pinned = {"lint-imports": "import-linter", "ruff": "ruff", "mypy": "mypy"}
    lock = (REPO_ROOT / "requirements.lock").read_text()
    tools = {c[0].removeprefix(".venv/bin/") for c in doc_commands() if c[0].startswith(".venv/bin/")} - {"python"}
    assert tools <= set(pinned), tools - set(pinned)
    assert all(re.search(rf"^{pinned[t]}==", lock, re.M) for t in tools)


@pytest.mark.parametrize(
    "command", [c for c in doc_commands() if c[:4] == [*PYTHON, "infra", "alerts"]], ids=lambda c: " ".join(c[2:4])
)
def test_the_docs_alerts_command_writes_rules_and_promtool_tests(command, tmp_path):
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


def test_docs_in_write_mode_rewrites_only_the_generated_blocks(tmp_path):
    """`python -m infra docs` (the write-mode command docs/development.md shows) on a copy of docs/ with one stale
    table: it restores exactly the committed pages."""
    shutil.copytree(REPO_ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("runbooks"))
    page = tmp_path / "docs" / "configuration.md"
    page.write_text(page.read_text().replace("| `namespace` |", "| `stale` |", 1))
    assert [*PYTHON, "infra", "docs"] in doc_commands()
    proc = subprocess.run(
        [sys.executable, "-m", "infra", "docs", "--docs-dir", str(tmp_path / "docs")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    for committed in (REPO_ROOT / "docs").glob("*.md"):
        assert (tmp_path / "docs" / committed.name).read_text() == committed.read_text(), committed.name


def test_make_ci_time_warm_times_each_step_of_a_tier(tmp_path):
    """docs/development.md's `make ci-time CI_TIME_ARGS=...`: the warm mode times the bootstrap (every component found
    cached, each with its own wall and CPU seconds) and the tiers asked for, wall and CPU each, into the JSON it names.
    The alerts tier is the one run here (the cold mode builds everything from empty caches: an hour, measured by hand and recorded in the page)."""
    assert any(c[:2] == ["make", "ci-time"] for c in doc_commands())
    out = tmp_path / "ci-time.json"
    proc = subprocess.run(
        ["make", "ci-time", f"CI_TIME_ARGS=--warm-only --tiers alerts --json {out}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {(r["group"], r["name"]): r for r in json.loads(out.read_text())["rows"]}
    assert rows[("tests", "alerts")]["rc"] == 0 and rows[("tests", "alerts")]["cpu_s"] > 0, rows
    assert rows[("toolchain", "bootstrap")]["rc"] == 0, rows
    components = {line.split()[0]: line.split()[1] for line in json.loads(out.read_text())["bootstrap"][1:]}
    assert {"helm", "kubernetes", "pulumi"} <= {c for c, status in components.items() if status == "cached"}, components
    assert "total     all" in proc.stdout
