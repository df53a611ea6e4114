"""docs/configuration.md's "Deploying with Pulumi" commands name only things that exist: stacks
with a stack file, config keys the program accepts, outputs the program exports. (Running them needs
the engine and a cluster: the end-to-end tier's job.)"""

from __future__ import annotations

import re
import shlex

import yaml

from infra.core.config import TOP_LEVEL_KEYS
from infra.core.names import PROJECT
from infra.core.paths import REPO_ROOT
from infra.core.stackfile import stack_names
from tests.unit.pulumi_program_harness import run_program

PAGE = REPO_ROOT / "docs" / "configuration.md"
SECTION = "## Deploying with Pulumi"


def section_commands() -> list[list[str]]:
    text = PAGE.read_text()
    assert SECTION in text, f"docs/configuration.md lacks the section {SECTION!r}"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, re.S)
    assert blocks, "the section shows no bash block"
    commands: list[list[str]] = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.extend(shlex.split(part) for part in line.split("&&"))
    return commands


def test_readme_pulumi_commands_name_real_stacks_keys_and_outputs():
    commands = section_commands()
    pulumi_cmds = [c for c in commands if c[0] == "pulumi"]
    verbs = {" ".join(c[1:3]) if c[1] in ("stack", "config") else c[1] for c in pulumi_cmds}
    assert {
        "login",
        "stack select",
        "config set",
        "preview",
        "up",
        "stack output",
        "stack history",
        "destroy",
    } <= verbs, verbs

    stacks = set(stack_names())
    for c in pulumi_cmds:
        if c[1:3] in (["stack", "select"], ["stack", "rm"]):
            assert c[-1] in stacks, f"{' '.join(c)}: no Pulumi.{c[-1]}.yaml"
        if c[1:3] == ["config", "set"]:
            key = [w for w in c[3:] if not w.startswith("-")][0]
            namespace, _, name = key.partition(":")
            assert namespace == "kubernetes" or (namespace == PROJECT and name in TOP_LEVEL_KEYS), (
                f"{' '.join(c)}: unknown key"
            )
            if name in ("hfToken", "apiKey"):
                assert "--secret" in c, f"{' '.join(c)} must use --secret"
    for c in commands:
        for word in c:
            if m := re.fullmatch(r"Pulumi\.([\w-]+)\.yaml", word):
                assert m.group(1) in stacks, f"{' '.join(c)}: no {word}"

    outputs = {c[3] for c in pulumi_cmds if c[1:3] == ["stack", "output"] and len(c) > 3 and not c[3].startswith("-")}
    exported = run_program("prod", yaml.safe_load((REPO_ROOT / "Pulumi.prod.yaml").read_text())["config"]).exports
    assert outputs and outputs <= set(exported), (
        f"docs/configuration.md reads outputs {outputs}; the program exports {sorted(exported)}"
    )
