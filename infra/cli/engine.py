"""`python -m infra engine preview|up|destroy|refresh|outputs --stack ENV`: the real Pulumi engine
(infra.sinks.pulumi.engine).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import TextIO

from infra.core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from infra.core.paths import REPO_ROOT
from infra.core.stackfile import stack_file, stack_names
from infra.sinks.pulumi.engine import CHANGING, OPERATIONS, Report, run_operation


def cmd_engine(args: argparse.Namespace) -> int:
    if args.stack not in stack_names(args.project_dir):
        print(
            f"error: no stack file {stack_file(args.stack, args.project_dir).name} in {args.project_dir}; "
            f"stacks: {', '.join(stack_names(args.project_dir))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.operation in CHANGING and not args.yes:
        print(
            f"error: `engine {args.operation}` changes the cluster and the stack state; add --yes "
            f"(see what it would do first: python -m infra engine preview --stack {args.stack} --diff)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if shutil.which("pulumi") is None:
        print(
            "error: no `pulumi` on PATH: `source tools/env.sh` (tools/bootstrap.sh pulumi pulumi-kubernetes builds it)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # With --json the engine's own output goes to stderr and stdout carries the report alone.
    progress = sys.stderr if args.json else sys.stdout
    report = run_operation(
        args.operation,
        args.stack,
        project_dir=args.project_dir.resolve(),
        diff=args.diff,
        policy_packs=tuple(str(Path(p).resolve()) for p in args.policy_pack),
        refresh=args.refresh,
        remove_stack=args.remove_stack,
        out=lambda line: print(line, file=progress, flush=True),
    )
    if args.json:
        print(report.to_json())
    else:
        _print_summary(report, sys.stdout)
    if report.result != "succeeded":
        if report.error.startswith(f"stack {args.stack} does not exist"):
            print(f"error: {report.error}", file=sys.stderr)
            return EXIT_USAGE
        print(
            f"error: pulumi {args.operation} of stack {args.stack} failed (the engine's messages are above)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "engine",
        help="run the Pulumi engine on a stack (preview, up, destroy, refresh, outputs)",
        description="The real Pulumi CLI and Kubernetes provider, with the program served inline "
        "(no Python language host needed). Reads Pulumi.yaml and Pulumi.<stack>.yaml.",
    )
    p.add_argument("operation", choices=OPERATIONS)
    p.add_argument("--stack", required=True, help=f"stack name (Pulumi.<stack>.yaml): {', '.join(stack_names())}")
    p.add_argument("--yes", action="store_true", help="required for up, destroy and refresh: apply without asking")
    p.add_argument("--diff", action="store_true", help="show the property-level diff of every change (preview, up)")
    p.add_argument(
        "--policy-pack",
        action="append",
        default=[],
        metavar="PATH",
        help="run a policy pack during preview/up, e.g. policy/pulumi-analyzer-jina-embeddings (repeatable)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON report (steps, changes, policy, outputs) on stdout; the engine's output goes to stderr",
    )
    p.add_argument(
        "--refresh",
        action="store_true",
        help="preview, up: first read the live objects into the state (e.g. after the cluster was recreated)",
    )
    p.add_argument(
        "--remove-stack",
        action="store_true",
        help="destroy only: then forget the stack and its history in the backend (keeps Pulumi.<stack>.yaml)",
    )
    p.add_argument(
        "--project-dir",
        type=Path,
        default=REPO_ROOT,
        metavar="DIR",
        help="directory holding Pulumi.yaml and the stack files (default: the repository)",
    )
    p.set_defaults(func=cmd_engine)


def _print_summary(report: Report, out: TextIO) -> None:
    if report.operation == "outputs":  # (preview and up print the outputs themselves)
        print(json.dumps(report.outputs, indent=2, sort_keys=True), file=out)
    if report.changes:
        print(
            f"{report.operation} {report.stack}: " + ", ".join(f"{op} {n}" for op, n in sorted(report.changes.items())),
            file=out,
        )
    mandatory = [p for p in report.policy if p.level == "mandatory"]
    if report.policy:
        print(
            f"policy: {len(mandatory)} mandatory, {len(report.policy) - len(mandatory)} advisory violation(s)", file=out
        )
