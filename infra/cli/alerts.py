"""`python -m infra alerts --env ENV --out DIR`: a stack's rendered alert rules and generated promtool tests, for
`promtool check rules` / `promtool test rules` by hand (docs/operations.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from infra.checks.promtool import write_promtool_files
from infra.core.errors import EXIT_OK
from infra.core.plan import build_for_env
from infra.sinks.helm import render_release


def cmd_alerts(args: argparse.Namespace) -> int:
    plan = build_for_env(args.env)
    rendered = {r.variant: render_release(r) for r in plan.releases}
    tests = write_promtool_files(plan, rendered, args.out)
    print(
        f"{args.out / 'rules.yaml'}: check with `promtool check rules rules.yaml`; test with "
        f"`promtool test rules {' '.join(p.name for p in tests)}` in {args.out}"
    )
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "alerts", help="write a stack's rendered alert rules and generated promtool tests into a directory"
    )
    p.add_argument("--env", required=True, help="stack name (Pulumi.<env>.yaml)")
    p.add_argument("--out", required=True, type=Path, help="directory for rules.yaml and the test files")
    p.set_defaults(func=cmd_alerts)
