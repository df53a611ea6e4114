"""The reference tables of docs/*.md are generated from the code (infra.sinks.docs) and fresh, like manifests/."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra.core import config
from infra.core.errors import EXIT_OK, EXIT_STALE, EXIT_USAGE
from infra.core.paths import REPO_ROOT
from infra.sinks import docs


def run_docs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infra", "docs", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def test_generated_tables_are_fresh():
    proc = run_docs("--check")
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:] + proc.stderr


def test_a_stale_table_fails_the_check_with_a_diff(tmp_path):
    for page in {page for page, _ in docs.BLOCKS.values()}:
        text = (REPO_ROOT / "docs" / page).read_text()
        (tmp_path / page).write_text(text.replace("| --- |", "| --- | stale |", 1))
    proc = run_docs("--check", "--docs-dir", str(tmp_path))
    assert proc.returncode == EXIT_STALE and "+| --- |" in proc.stdout and "python -m infra docs" in proc.stderr


def test_a_page_without_its_markers_is_bad_input(tmp_path):
    for page in {page for page, _ in docs.BLOCKS.values()}:
        (tmp_path / page).write_text("# no markers\n")
    proc = run_docs("--docs-dir", str(tmp_path))
    assert proc.returncode == EXIT_USAGE and "generated:" in proc.stderr


def test_every_config_key_is_documented_with_the_readers_default():
    table = docs.stack_keys_table()
    for path in docs.config_key_paths():
        assert f"| `{path}` |" in table
    assert len(docs.config_key_paths()) > len(config.TOP_LEVEL_KEYS) + len(config.POOL_KEYS)
    assert f"| `autoscaling.targetWaitingPerPod` | `{config.AutoscalingConfig().target_waiting_per_pod}` |" in table


def test_an_undocumented_config_key_fails_the_generator(monkeypatch):
    monkeypatch.setattr(config, "WEIGHTS_KEYS", (*config.WEIGHTS_KEYS, "newKey"))
    monkeypatch.setitem(docs.SECTION_KEYS, "weights", config.WEIGHTS_KEYS)
    with pytest.raises(ValueError, match="weights.newKey"):
        docs.stack_keys_table()


def test_every_chart_value_has_a_row():
    table = docs.chart_values_table()
    for path, _, _ in docs.chart_values_rows():
        assert f"| `{path}` |" in table
    assert "| `probes.readiness.periodSeconds` |" in table


def test_values_comments_follow_the_helm_docs_convention():
    text = "a:\n  # -- first line\n  # second line\n  b: 1\n  # plain note\n  c: 2\n"
    assert docs.values_comments(text) == {"a.b": "first line second line"}


def test_replace_block_keeps_the_rest_of_the_page():
    page = "head\n<!-- generated:x:begin -->\nold\n<!-- generated:x:end -->\ntail\n"
    assert (
        docs.replace_block(page, "x", "new")
        == "head\n<!-- generated:x:begin -->\nnew\n<!-- generated:x:end -->\ntail\n"
    )
