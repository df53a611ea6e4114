"""`python -m infra cluster-nodes`: simulated Node objects mirroring a stack's GPU pools (infra.core.simulation)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from infra.core.paths import REPO_ROOT
from infra.core.simulation import simulated_nodes
from infra.core.stackfile import load_stack


def cmd_cluster_nodes(args: argparse.Namespace) -> int:
    nodes = simulated_nodes(load_stack(args.env, args.stack_dir))
    sys.stdout.write(yaml.safe_dump_all(nodes, sort_keys=True))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster-nodes", help="print simulated Node objects mirroring a stack's GPU pools (for kwok)")
    p.add_argument("--env", default="local", help="stack whose pools to mirror (default local)")
    p.add_argument(
        "--stack-dir", type=Path, default=REPO_ROOT, metavar="DIR", help="directory holding Pulumi.<env>.yaml"
    )
    p.set_defaults(func=cmd_cluster_nodes)
