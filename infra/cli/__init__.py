"""`python -m infra <command>`: the bundle's command line, the top layer.

Each subcommand lives in its own module here (`register(subparsers)` sets `func` on its parser) and is
a thin function over the layers below it: core (the plan), sinks (helm, export, Pulumi), checks
(policy, promtool) and ops (status, smoke). Exit codes: infra.core.errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from infra.core.config import ConfigError
from infra.core.errors import EXIT_USAGE
from infra.core.plan import UnknownVariant
from infra.core.stackfile import StackFileError
from infra.sinks.helm import HelmError

# The subcommands, in `--help` order: each module has `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "infra.cli.plan",
    "infra.cli.capacity",
    "infra.cli.cluster_nodes",
    "infra.cli.export",
    "infra.cli.policy",
    "infra.cli.checkov",
    "infra.cli.alerts",
    "infra.cli.runbooks",
    "infra.cli.docs",
    "infra.cli.preflight",
    "infra.cli.status",
    "infra.cli.smoke",
    "infra.cli.engine",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra", description="jina-embeddings-v5 on vLLM: plan, export and operate."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except (ConfigError, StackFileError, FileNotFoundError, UnknownVariant, HelmError) as exc:
        # Bad input or a missing tool: one clear line, exit 2. Anything else is a bug and keeps its traceback.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
