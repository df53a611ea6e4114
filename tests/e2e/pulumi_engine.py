"""Drives the real Pulumi engine for the e2e tests: `python -m infra engine ... --json` (the pinned `pulumi`
CLI and pulumi-resource-kubernetes, the program served inline; infra/sinks/pulumi/engine.py) and the `pulumi` CLI itself.

Each `Engine` has its own throw-away project directory (Pulumi.yaml, a copy of Pulumi.<env>.yaml, `infra`
linked to the repository's program), file state backend and PULUMI_HOME (its `plugins` linked to the
toolchain's plugin cache), so the tests never write into the repository, the shared state backend or the
shared Pulumi home, and config changes stay in the copy. Every command gets the test cluster's kubeconfig.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.core.paths import REPO_ROOT
from infra.core.plan import Plan
from infra.sinks.helm import TOOLS_DIR, render_release
from infra.sinks.pulumi.engine import LOCAL_PASSPHRASE, LOCAL_STACK
from tests.conftest import type_token
from tests.e2e.kube import Cluster

POLICY_PACK = REPO_ROOT / "policy" / "pulumi-analyzer-jina-embeddings"
ENGINE_TIMEOUT_S = 1500  # the longest rollout await of the local stack is 1170 s; a hang fails the test, not CI
# Not resources of the stack: the engine's provider instances (default providers come and go with the
# SDK version that registers through them; see test_second_up_changes_nothing).
PROVIDER_TYPES = ("pulumi:providers:",)


def expected_resources(plan: Plan) -> set[tuple[str, str]]:
    """(type, name) of every resource the program registers for `plan`: the components, each platform
    object (`platform-<kind>-<name>`), and per variant its Chart and every object the chart renders
    (`<variant>-chart:<namespace>/<name>`). The rendering is the pinned helm's (the GitOps export's)."""
    resources = {
        ("pulumi:pulumi:Stack", f"jina-embeddings-{plan.env}"),
        ("jina-embeddings:platform:Platform", "platform"),
    }
    for obj in plan.platform:
        resources.add((type_token(obj), f"platform-{obj['kind'].lower()}-{obj['metadata']['name']}"))
    secrets = plan.config.secrets
    if secrets.hf_token_given or secrets.api_key_given:  # values set with `pulumi config set --secret`
        resources.add(("jina-embeddings:secrets:StackSecrets", "secrets"))
        for given, name in (
            (secrets.hf_token_given, secrets.hf_token_secret_name),
            (secrets.api_key_given, secrets.api_key_secret_name),
        ):
            if given:
                resources.add(("kubernetes:core/v1:Secret", f"secrets-{name}"))
    for release in plan.releases:
        resources.add(("jina-embeddings:variant:VariantRelease", release.variant))
        resources.add(("kubernetes:helm.sh/v4:Chart", f"{release.variant}-chart"))
        resources |= set(chart_children(release))
    return resources


def chart_children(release) -> dict[tuple[str, str], dict[str, Any]]:
    """(type, name) -> manifest of every object the release's chart renders (pinned helm, as the export).
    The provider names a Chart's child `<chart resource>:<namespace>/<name>`; every object of this chart is
    namespaced, in the release's namespace (`helm template` leaves metadata.namespace out; the provider fills it)."""
    return {
        (
            type_token(o),
            f"{release.variant}-chart:{o['metadata'].get('namespace', release.namespace)}/{o['metadata']['name']}",
        ): o
        for o in render_release(release)
    }


@dataclass
class EngineRun:
    proc: subprocess.CompletedProcess
    report: dict[str, Any]

    @property
    def log(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def steps(self, *ops: str) -> set[tuple[str, str]]:
        """(type, name) of the stack's resource steps with one of `ops` (every op when none is given)."""
        return {
            (s["type"], s["urn"].rsplit("::", 1)[-1])
            for s in self.report.get("steps", [])
            if (not ops or s["op"] in ops) and not s["type"].startswith(PROVIDER_TYPES)
        }

    def ops(self) -> dict[str, str]:
        """name -> op of every non-provider step."""
        return {
            s["urn"].rsplit("::", 1)[-1]: s["op"]
            for s in self.report.get("steps", [])
            if not s["type"].startswith(PROVIDER_TYPES)
        }


@dataclass
class Engine:
    cluster: Cluster
    workdir: Path
    env_name: str = "local"
    env: dict[str, str] = field(init=False)
    project: Path = field(init=False)

    def __post_init__(self) -> None:
        self.project = self.workdir / "project"
        self.project.mkdir(parents=True)
        for name in ("Pulumi.yaml", f"Pulumi.{self.env_name}.yaml"):
            shutil.copy(REPO_ROOT / name, self.project / name)
        (self.project / "infra").symlink_to(REPO_ROOT / "infra")  # Pulumi.yaml's `main:` must exist
        state = self.workdir / "state"
        state.mkdir()
        home = self.workdir / "pulumi-home"
        home.mkdir()
        (home / "plugins").symlink_to(TOOLS_DIR / "pulumi-home" / "plugins")
        self.env = {
            **self.cluster.env,
            "PULUMI_BACKEND_URL": f"file://{state}",
            "PULUMI_HOME": str(home),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
        }
        if self.env_name == LOCAL_STACK:  # what `python -m infra engine` uses; the plain CLI needs it too
            self.env["PULUMI_CONFIG_PASSPHRASE"] = LOCAL_PASSPHRASE

    @property
    def stack_file(self) -> Path:
        return self.project / f"Pulumi.{self.env_name}.yaml"

    def run(self, operation: str, *args: str, cwd: Path = REPO_ROOT, project: Path | None = None) -> EngineRun:
        """`python -m infra engine OPERATION --stack ENV --json ...`; the JSON report parsed."""
        cmd = [
            sys.executable,
            "-m",
            "infra",
            "engine",
            operation,
            "--stack",
            self.env_name,
            "--json",
            "--project-dir",
            str(project or self.project),
            *args,
        ]
        proc = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=ENGINE_TIMEOUT_S)
        report = json.loads(proc.stdout) if proc.stdout.lstrip().startswith("{") else {}
        return EngineRun(proc, report)

    def pulumi(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        """The `pulumi` CLI in the project copy (commands that need no language host)."""
        proc = subprocess.run(
            ["pulumi", *args, "--non-interactive"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def state(self) -> list[dict[str, Any]]:
        """The resources in the stack's state (`pulumi stack export`), providers left out."""
        exported = json.loads(self.pulumi("stack", "export", "--stack", self.env_name).stdout)
        return [r for r in exported["deployment"].get("resources") or [] if not r["type"].startswith(PROVIDER_TYPES)]

    def edit_stack_file(self, edit) -> None:
        """Apply `edit(config_dict)` to the project copy's stack file (comments are not kept: it is a copy)."""
        document = yaml.safe_load(self.stack_file.read_text())
        edit(document["config"])
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
