"""`python -m infra engine preview|up|destroy|refresh|outputs --stack ENV`: the real Pulumi engine.

Runs the Pulumi program (infra.sinks.pulumi.program.run) through the Pulumi CLI and the Kubernetes provider, with
the repository's Pulumi.yaml and the same Pulumi.<env>.yaml stack files `pulumi up` reads.

Why not plain `pulumi up`: a `runtime: python` project needs the CLI's Python language host
(pulumi-language-python), and the Go module proxy this bundle builds its toolchain from does not serve
it (tools/README.md, "Deviations"). The Automation API runs the program *inline* instead: it serves
the program from this process over gRPC and runs the real `pulumi` binary with `--client=<address>`,
so the engine, the state, the diff, the provider and its await logic are exactly those of `pulumi up`;
only the process that executes the Python program differs. Users with the standard Pulumi install
(which bundles the language host) can run `pulumi up --stack ENV` directly; both read the same files.
(The Automation API's inline mode: pulumi/automation/_local_workspace.py, _server.py in the SDK.)

Environment (tools/env.sh sets it): `pulumi` on PATH, PULUMI_HOME, PULUMI_BACKEND_URL (a local
`file://` backend), KUBECONFIG, and PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION so a missing plugin
is an error rather than a download. The `local` stack is encrypted with a fixed, public passphrase
(LOCAL_PASSPHRASE): it holds no secret, and Pulumi.local.yaml carries the matching `encryptionsalt`,
so initialising the stack never rewrites the committed file. Every other stack keeps the secrets
provider its owners chose; the local passphrase is never used for it.

Exit codes: 0 success, 1 the engine failed (bad config reported by the program, a policy violation,
a resource that did not become ready), 2 bad input (unknown stack, no `pulumi` on PATH, no --yes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.core.names import PROJECT
from infra.core.paths import REPO_ROOT

OPERATIONS = ("preview", "up", "destroy", "refresh", "outputs")
CHANGING = ("up", "destroy", "refresh")  # need --yes
LOCAL_STACK = "local"
# The `local` stack's passphrase. Public on purpose: the stack runs on a simulated cluster and has no
# secret; Pulumi.local.yaml's `encryptionsalt` was made with it (`pulumi stack init`). Only engine_env
# sets it (tools/env.sh sets no passphrase).
LOCAL_PASSPHRASE = "local-test-only"


def engine_env(stack: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the CLI runs with: no update check, no plugin download, and the local
    passphrase for the `local` stack only (removed for any other stack, so a production stack is never
    initialised or encrypted with a passphrase that is published in this repository)."""
    env = dict(environ)
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
    if stack == LOCAL_STACK:
        env["PULUMI_CONFIG_PASSPHRASE"] = LOCAL_PASSPHRASE
    elif env.get("PULUMI_CONFIG_PASSPHRASE") == LOCAL_PASSPHRASE:
        del env["PULUMI_CONFIG_PASSPHRASE"]
    return env


@dataclass
class Step:
    op: str  # create, update, delete, replace, same, ...
    type: str  # e.g. kubernetes:apps/v1:Deployment
    urn: str
    diffs: list[str] = field(default_factory=list)  # changed properties of an update, e.g. spec.replicas

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


@dataclass
class PolicyViolation:
    policy: str
    level: str  # mandatory, advisory
    urn: str
    message: str


@dataclass
class Report:
    """What an operation did, in a form scripts and tests read (`--json`)."""

    operation: str
    stack: str
    result: str = "failed"  # succeeded | failed
    changes: dict[str, int] = field(default_factory=dict)  # op -> count, the engine's summary
    steps: list[Step] = field(default_factory=list)  # every resource step, in engine order
    policy: list[PolicyViolation] = field(default_factory=list)
    policy_packs: dict[str, str] = field(default_factory=dict)  # the packs that ran: name -> version
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


class Recorder:
    """Collects the engine's events into a Report (steps, policy violations)."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def __call__(self, event: Any) -> None:
        pre = event.resource_pre_event
        if pre is not None:
            m = pre.metadata
            changed = set(m.detailed_diff or {}) or set(
                m.diffs or []
            )  # the provider's detailed diff, when it gives one
            self.report.steps.append(
                Step(op=str(getattr(m.op, "value", m.op)), type=m.type, urn=m.urn, diffs=sorted(changed))
            )
        summary = getattr(event, "summary_event", None)
        if summary is not None:
            self.report.policy_packs.update(summary.policy_packs or {})
        policy = event.policy_event
        if policy is not None:
            self.report.policy.append(
                PolicyViolation(
                    policy=f"{policy.policy_pack_name}/{policy.policy_name}",
                    level=policy.enforcement_level,
                    urn=policy.resource_urn or "",
                    message=policy.message.strip(),
                )
            )


def _program() -> None:
    # Imported here so `python -m infra engine --help` needs no pulumi_kubernetes import.
    from infra.sinks.pulumi.program import run

    run()


def select_stack(
    stack: str, project_dir: Path, env: Mapping[str, str], create: bool, program: Callable[[], None] = _program
) -> Any:
    """The stack, with the project's Pulumi.yaml and Pulumi.<stack>.yaml in `project_dir` (the
    repository root unless told otherwise); created in the backend on first use when `create`."""
    from pulumi import automation as auto

    ws_opts = auto.LocalWorkspaceOptions(
        work_dir=str(project_dir),
        pulumi_home=env.get("PULUMI_HOME"),
        env_vars=dict(env),
        # Never auto.PulumiCommand.install(): it downloads the CLI. The one on PATH is tools/'s pinned build.
        pulumi_command=auto.PulumiCommand(),
    )
    helper = auto.create_or_select_stack if create else auto.select_stack
    return helper(stack_name=stack, project_name=PROJECT, program=program, opts=ws_opts)


def _outputs(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("[secret]" if v.secret else v.value) for k, v in values.items()}


def run_operation(
    operation: str,
    stack_name: str,
    *,
    project_dir: Path = REPO_ROOT,
    diff: bool = False,
    policy_packs: tuple[str, ...] = (),
    refresh: bool = False,
    remove_stack: bool = False,
    out: Callable[[str], Any] = print,
    program: Callable[[], None] = _program,
) -> Report:
    """Run one engine operation on a stack; an engine failure is reported in Report.error, not raised.
    `program` is the bundle's (infra.sinks.pulumi.program.run) unless a test hands in another one."""
    from pulumi import automation as auto

    env = engine_env(stack_name, os.environ)
    # The inline program runs in this process and the CLI and provider in its children: all of them
    # get the same environment (KUBECONFIG, the passphrase or its absence).
    os.environ.clear()
    os.environ.update(env)
    report = Report(operation=operation, stack=stack_name)
    recorder = Recorder(report)
    stream = {"on_output": lambda line: out(line.rstrip("\n")), "on_error": lambda line: out(line.rstrip("\n"))}
    common: dict[str, Any] = {**stream, "on_event": recorder, "color": "never"}
    try:
        stack = select_stack(stack_name, project_dir, env, create=operation in ("preview", "up"), program=program)
        if operation == "outputs":
            report.outputs = _outputs(stack.outputs())
        elif operation == "preview":
            result = stack.preview(diff=diff, policy_packs=list(policy_packs), refresh=refresh, **common)
            report.changes = dict(result.change_summary)
        elif operation == "up":
            result = stack.up(diff=diff, policy_packs=list(policy_packs), refresh=refresh, **common)
            report.changes = dict(result.summary.resource_changes or {})
            report.outputs = _outputs(result.outputs)
        elif operation == "destroy":
            result = stack.destroy(**common)
            report.changes = dict(result.summary.resource_changes or {})
            if remove_stack:
                # --preserve-config: `pulumi stack rm` would otherwise delete Pulumi.<stack>.yaml as well.
                stack.workspace.remove_stack(stack_name, preserve_config=True)
        elif operation == "refresh":
            result = stack.refresh(**common)
            report.changes = dict(result.summary.resource_changes or {})
        else:
            raise ValueError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
        report.result = "succeeded"
    except auto.errors.StackNotFoundError:
        report.error = (
            f"stack {stack_name} does not exist in {env.get('PULUMI_BACKEND_URL', 'the current backend')}: "
            f"nothing to {operation} (python -m infra engine up --stack {stack_name} --yes creates it)"
        )
    except auto.errors.CommandError as exc:
        report.error = str(exc).strip()
    return report
