"""`python -m infra status --env ENV`: the stack's health on a live cluster (infra.ops.status)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.cli.cluster_access import read_cluster
from infra.core.config import ConfigError
from infra.core.errors import EXIT_DEGRADED, EXIT_OK, EXIT_USAGE
from infra.core.plan import build_for_env
from infra.core.stackfile import StackFileError
from infra.ops import status as status_module
from infra.ops.status import (
    fetch,
    render_text,
    report_json,
)


def cmd_status(args: argparse.Namespace) -> int:
    try:
        plan = build_for_env(args.env)
    except (ConfigError, StackFileError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    read, failed = read_cluster(args, lambda client: (fetch(plan, client), client.configuration.host))
    if read is None:
        return failed
    report, host = read
    if report is None:
        print(
            f"error: namespace {plan.namespace} does not exist on {host}: stack {plan.env} is not "
            f"deployed in this cluster (wrong kube context? `kubectl config current-context`), or not yet "
            f"(pulumi up, or apply manifests/{plan.env}/)",
            file=sys.stderr,
        )
        return EXIT_DEGRADED
    print(report_json(report) if args.json else render_text(report))
    return EXIT_OK if report.healthy else EXIT_DEGRADED


def register(sub: argparse._SubParsersAction) -> None:
    from infra.core.stackfile import stack_names

    p = sub.add_parser(
        "status",
        help="replicas, autoscalers, GPU pools and warning events of a deployed stack (read-only)",
        description=status_module.__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", required=True, help=f"stack name: {', '.join(stack_names())}")
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kube context (default: the current context)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
