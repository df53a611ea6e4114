"""`python -m infra preflight --env ENV`: what the cluster lacks for the stack, before the first deploy
(infra.ops.preflight reads the cluster, infra.core.preflight decides)."""

from __future__ import annotations

import argparse
from pathlib import Path

from infra.cli.cluster_access import read_cluster
from infra.core import preflight
from infra.core.paths import REPO_ROOT
from infra.core.plan import build_for_env
from infra.ops import preflight as preflight_ops
from infra.ops.preflight import snapshot
from infra.sinks.bundles import plan_objects


def cmd_preflight(args: argparse.Namespace) -> int:
    # Bad stack input or a missing helm: infra.cli.main prints it and exits 2.
    plan = build_for_env(args.env, args.stack_dir)
    req = preflight.requirements(plan, plan_objects(plan), sink=args.sink)
    facts, failed = read_cluster(args, lambda client: snapshot(req, client))
    if facts is None:
        return failed
    findings = preflight.evaluate(req, facts)
    server = facts["server"]
    print(preflight.report_json(req, server, findings) if args.json else preflight.render_text(req, server, findings))
    return preflight.exit_code(findings)


def register(sub: argparse._SubParsersAction) -> None:
    from infra.core.stackfile import stack_names

    p = sub.add_parser(
        "preflight",
        help="check a cluster has what a stack needs (CRDs, metrics APIs, nodes, capacity, secrets) before deploying",
        description=(preflight_ops.__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", required=True, help=f"stack name: {', '.join(stack_names())}")
    p.add_argument(
        "--stack-dir", type=Path, default=REPO_ROOT, metavar="DIR", help="directory holding Pulumi.<env>.yaml"
    )
    p.add_argument(
        "--sink",
        choices=preflight.SINKS,
        default="pulumi",
        help="how the stack will be deployed: `pulumi up` creates the Secrets set with --secret, a GitOps sync "
        "of manifests/<env> creates none (default pulumi)",
    )
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kube context (default: the current context)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_preflight)
