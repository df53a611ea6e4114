"""`python -m infra checkov`: Checkov's Kubernetes checks over every stack, chart scenario and manifests/.

Checkov runs from its own virtualenv (infra.checks.policy.checkov); this command renders what it checks.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from infra.checks.policy.checkov import run, write_objects
from infra.sinks.export import MANIFESTS_DIR


def cmd_checkov(args: argparse.Namespace) -> int:
    from infra.sinks.bundles import bundles, exported_envs

    failed = False
    with tempfile.TemporaryDirectory(prefix="checkov-") as tmp:
        objects = write_objects(bundles(with_exports=False), Path(tmp))
        rendered = run(Path(tmp))
        print(f"stacks + chart scenarios ({objects} objects): {rendered.describe()}")
        results = [rendered]
    if exported_envs():
        exported = run(MANIFESTS_DIR)
        print(f"manifests/ ({', '.join(exported_envs())}): {exported.describe()}")
        results.append(exported)
    for result in results:
        for check in result.failed:
            print(f"  FAILED {check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}")
        for check in result.unreasoned_skips:
            print(f"  SKIPPED WITHOUT REASON {check['check_id']} {check['resource']} ({check['file_path']})")
        failed |= bool(result.failed or result.unreasoned_skips or result.parsing_errors)
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "checkov",
        help="Checkov's Kubernetes checks over every stack, chart scenario and manifests/ (needs tools/bootstrap.sh checkov)",
        description="Exit codes: 0 no failed check and every skip has a reason, 1 otherwise, 2 Checkov not installed.",
    )
    p.set_defaults(func=cmd_checkov)
