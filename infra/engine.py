"""`python -m infra engine preview|up|destroy|refresh|outputs --stack ENV`: the real Pulumi engine.

Runs the Pulumi program (infra.program.run) through the Pulumi CLI and the Kubernetes provider, with
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

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from infra.config import PROJECT, REPO_ROOT, stack_file, stack_names

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
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
            changed = set(m.detailed_diff or {}) or set(m.diffs or [])  # the provider's detailed diff, when it gives one
            self.report.steps.append(Step(op=str(getattr(m.op, "value", m.op)), type=m.type, urn=m.urn, diffs=sorted(changed)))
        summary = getattr(event, "summary_event", None)
        if summary is not None:
            self.report.policy_packs.update(summary.policy_packs or {})
        policy = event.policy_event
        if policy is not None:
            self.report.policy.append(PolicyViolation(policy=f"{policy.policy_pack_name}/{policy.policy_name}",
                                                      level=policy.enforcement_level, urn=policy.resource_urn or "",
                                                      message=policy.message.strip()))


def _program() -> None:
    # Imported here so `python -m infra engine --help` needs no pulumi_kubernetes import.
    from infra.program import run

    run()


def select_stack(stack: str, project_dir: Path, env: Mapping[str, str], create: bool,
                 program: Callable[[], None] = _program) -> Any:
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


def run_operation(operation: str, stack_name: str, *, project_dir: Path = REPO_ROOT, diff: bool = False,
                  policy_packs: tuple[str, ...] = (), refresh: bool = False, remove_stack: bool = False,
                  out: Callable[[str], Any] = print, program: Callable[[], None] = _program) -> Report:
    """Run one engine operation on a stack; an engine failure is reported in Report.error, not raised.
    `program` is the bundle's (infra.program.run) unless a test hands in another one."""
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
        report.error = (f"stack {stack_name} does not exist in {env.get('PULUMI_BACKEND_URL', 'the current backend')}: "
                        f"nothing to {operation} (python -m infra engine up --stack {stack_name} --yes creates it)")
    except auto.errors.CommandError as exc:
        report.error = str(exc).strip()
    return report


def _print_summary(report: Report, out: TextIO) -> None:
    if report.operation == "outputs":  # (preview and up print the outputs themselves)
        print(json.dumps(report.outputs, indent=2, sort_keys=True), file=out)
    if report.changes:
        print(f"{report.operation} {report.stack}: " + ", ".join(f"{op} {n}" for op, n in sorted(report.changes.items())), file=out)
    mandatory = [p for p in report.policy if p.level == "mandatory"]
    if report.policy:
        print(f"policy: {len(mandatory)} mandatory, {len(report.policy) - len(mandatory)} advisory violation(s)", file=out)


def cmd_engine(args: argparse.Namespace) -> int:
    if args.stack not in stack_names(args.project_dir):
        print(f"error: no stack file {stack_file(args.stack, args.project_dir).name} in {args.project_dir}; "
              f"stacks: {', '.join(stack_names(args.project_dir))}", file=sys.stderr)
        return EXIT_USAGE
    if args.operation in CHANGING and not args.yes:
        print(f"error: `engine {args.operation}` changes the cluster and the stack state; add --yes "
              f"(see what it would do first: python -m infra engine preview --stack {args.stack} --diff)", file=sys.stderr)
        return EXIT_USAGE
    if shutil.which("pulumi") is None:
        print("error: no `pulumi` on PATH: `source tools/env.sh` (tools/bootstrap.sh pulumi pulumi-kubernetes builds it)",
              file=sys.stderr)
        return EXIT_USAGE
    # With --json the engine's own output goes to stderr and stdout carries the report alone.
    progress = sys.stderr if args.json else sys.stdout
    report = run_operation(args.operation, args.stack, project_dir=args.project_dir.resolve(), diff=args.diff,
                           policy_packs=tuple(str(Path(p).resolve()) for p in args.policy_pack),
                           refresh=args.refresh, remove_stack=args.remove_stack, out=lambda line: print(line, file=progress, flush=True))
    if args.json:
        print(report.to_json())
    else:
        _print_summary(report, sys.stdout)
    if report.result != "succeeded":
        if report.error.startswith(f"stack {args.stack} does not exist"):
            print(f"error: {report.error}", file=sys.stderr)
            return EXIT_USAGE
        print(f"error: pulumi {args.operation} of stack {args.stack} failed (the engine's messages are above)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="run the Pulumi engine on a stack (preview, up, destroy, refresh, outputs)",
                       description="The real Pulumi CLI and Kubernetes provider, with the program served inline "
                                   "(no Python language host needed). Reads Pulumi.yaml and Pulumi.<stack>.yaml.")
    p.add_argument("operation", choices=OPERATIONS)
    p.add_argument("--stack", required=True, help=f"stack name (Pulumi.<stack>.yaml): {', '.join(stack_names())}")
    p.add_argument("--yes", action="store_true", help="required for up, destroy and refresh: apply without asking")
    p.add_argument("--diff", action="store_true", help="show the property-level diff of every change (preview, up)")
    p.add_argument("--policy-pack", action="append", default=[], metavar="PATH",
                   help="run a policy pack during preview/up, e.g. policy/pulumi-analyzer-jina-embeddings (repeatable)")
    p.add_argument("--json", action="store_true", help="print a JSON report (steps, changes, policy, outputs) on stdout; "
                                                       "the engine's output goes to stderr")
    p.add_argument("--refresh", action="store_true",
                   help="preview, up: first read the live objects into the state (e.g. after the cluster was recreated)")
    p.add_argument("--remove-stack", action="store_true",
                   help="destroy only: then forget the stack and its history in the backend (keeps Pulumi.<stack>.yaml)")
    p.add_argument("--project-dir", type=Path, default=REPO_ROOT, metavar="DIR",
                   help="directory holding Pulumi.yaml and the stack files (default: the repository)")
    p.set_defaults(func=cmd_engine)
