"""`python -m infra engine`: the parts that decide before the engine runs (environment, refusals) and the
report it builds from the engine's events. The engine itself runs in tests/e2e/test_engine.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from infra.cli import engine as engine_command
from infra.cli import main
from infra.core.errors import EXIT_USAGE
from infra.sinks.pulumi import engine


def test_the_local_stack_gets_the_public_passphrase_and_no_downloads():
    env = engine.engine_env("local", {"PATH": "/bin", "PULUMI_CONFIG_PASSPHRASE": "something-else"})
    assert env["PULUMI_CONFIG_PASSPHRASE"] == engine.LOCAL_PASSPHRASE
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true" and env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PATH"] == "/bin"


def test_no_other_stack_is_ever_encrypted_with_the_local_passphrase():
    assert "PULUMI_CONFIG_PASSPHRASE" not in engine.engine_env(
        "prod", {"PULUMI_CONFIG_PASSPHRASE": engine.LOCAL_PASSPHRASE}
    )
    # a stack's own passphrase (or none, for a cloud secrets provider) is left as it is
    assert (
        engine.engine_env("prod", {"PULUMI_CONFIG_PASSPHRASE": "team-secret"})["PULUMI_CONFIG_PASSPHRASE"]
        == "team-secret"
    )
    assert "PULUMI_CONFIG_PASSPHRASE" not in engine.engine_env("staging", {})


def test_the_committed_local_stack_file_carries_the_salt_of_the_local_passphrase():
    """Without it, `pulumi stack init` would write an encryptionsalt into Pulumi.local.yaml on every fresh backend."""
    import yaml

    from infra.core.paths import REPO_ROOT

    document = yaml.safe_load((REPO_ROOT / "Pulumi.local.yaml").read_text())
    assert document["encryptionsalt"].startswith("v1:")
    assert "public passphrase 'local-test-only'" in (REPO_ROOT / "Pulumi.local.yaml").read_text()
    assert engine.LOCAL_PASSPHRASE == "local-test-only"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["engine", "up", "--stack", "nope"], "no stack file Pulumi.nope.yaml"),
        (["engine", "up", "--stack", "local"], "add --yes"),
        (["engine", "destroy", "--stack", "prod"], "add --yes"),
        (["engine", "refresh", "--stack", "dev"], "add --yes"),
    ],
)
def test_refusals_before_the_engine_starts(argv, message, capsys):
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_without_a_pulumi_cli_it_says_how_to_get_one(monkeypatch, capsys):
    monkeypatch.setattr(engine_command.shutil, "which", lambda name: None)
    assert main(["engine", "preview", "--stack", "local"]) == EXIT_USAGE
    assert "source tools/env.sh" in capsys.readouterr().err


def _event(pre=None, policy=None):
    return SimpleNamespace(resource_pre_event=pre, policy_event=policy)


def test_the_report_records_steps_with_their_changed_properties_and_policy_violations():
    report = engine.Report(operation="preview", stack="local")
    record = engine.Recorder(report)
    urn = (
        "urn:pulumi:local::jina-embeddings::jina-embeddings:variant:VariantRelease$kubernetes:helm.sh/v4:Chart$"
        "kubernetes:apps/v1:Deployment::text-matching-chart:jina-embeddings/jina-embeddings-text-matching"
    )
    step = SimpleNamespace(
        op=SimpleNamespace(value="update"),
        type="kubernetes:apps/v1:Deployment",
        urn=urn,
        diffs=["spec"],
        detailed_diff={"spec.replicas": object()},
    )
    record(_event(pre=SimpleNamespace(metadata=step)))
    record(
        _event(
            policy=SimpleNamespace(
                policy_pack_name="jina-embeddings-bundle",
                policy_name="bundle-mandatory",
                enforcement_level="mandatory",
                resource_urn=urn,
                message=" [rules.x] bad \n",
            )
        )
    )
    record(_event())  # other events (output, diagnostics, summary) add nothing
    assert report.steps == [engine.Step("update", "kubernetes:apps/v1:Deployment", urn, ["spec.replicas"])]
    assert report.steps[0].name == "text-matching-chart:jina-embeddings/jina-embeddings-text-matching"
    assert report.policy == [
        engine.PolicyViolation("jina-embeddings-bundle/bundle-mandatory", "mandatory", urn, "[rules.x] bad")
    ]
    parsed = json.loads(report.to_json())
    assert parsed["steps"][0]["diffs"] == ["spec.replicas"] and parsed["result"] == "failed"


def test_the_docs_engine_section_shows_only_commands_that_parse():
    """docs/development.md, "Pulumi without the Python language host": every `python -m infra engine` line parses
    with the real parser; tests/e2e runs each of them."""
    import re
    import shlex

    from infra.cli import build_parser
    from infra.core.paths import REPO_ROOT

    text = (REPO_ROOT / "docs" / "development.md").read_text()
    body = text.split("### Pulumi without the Python language host", 1)[1].split("\n### ", 1)[0]
    lines = [
        line.split(" #", 1)[0].strip()
        for block in re.findall(r"```bash\n(.*?)```", body, re.S)
        for line in block.splitlines()
    ]
    commands = [shlex.split(line) for line in lines if line and not line.startswith("#")]
    engine_commands = [c for c in commands if c[:4] == [".venv/bin/python", "-m", "infra", "engine"]]
    assert {c[4] for c in engine_commands} == {"preview", "up", "outputs", "destroy"}
    for c in engine_commands:
        args = build_parser().parse_args(c[3:])
        assert args.stack == "local" and all((REPO_ROOT / p).exists() for p in args.policy_pack), c
    assert all(c[0] in ("source", ".venv/bin/python") for c in commands), commands
