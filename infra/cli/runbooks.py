"""`python -m infra runbooks [--check]`: one page per alert and environment under docs/runbooks/ (infra.sinks.runbooks)."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from infra.core.errors import EXIT_OK, EXIT_STALE
from infra.sinks.runbooks import RUNBOOKS_DIR, render_all, stale_files


def cmd_runbooks(args: argparse.Namespace) -> int:
    pages = render_all()
    root: Path = args.runbooks_dir
    if args.check:
        stale = stale_files(pages, root)
        for path in stale:
            old = (root / path).read_text().splitlines(keepends=True) if (root / path).exists() else []
            sys.stdout.writelines(
                difflib.unified_diff(old, pages.get(path, "").splitlines(keepends=True), f"a/{path}", f"b/{path}")
            )
        if stale:
            print(f"\n{len(stale)} runbook page(s) stale: run `python -m infra runbooks`", file=sys.stderr)
            return EXIT_STALE
        print(f"{len(pages)} runbook pages up to date")
        return EXIT_OK
    for path in {str(p.relative_to(root)) for p in root.rglob("*.md")} - set(pages) if root.exists() else ():
        (root / path).unlink()  # an alert or stack that no longer has a page
    for path, text in sorted(pages.items()):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    print(f"wrote {len(pages)} runbook pages under {root}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runbooks", help="render docs/runbooks/<env>/<Alert>.md for every stack with alerts (or --check them)"
    )
    p.add_argument("--check", action="store_true", help="fail with a diff when the committed pages are stale")
    p.add_argument("--runbooks-dir", type=Path, default=RUNBOOKS_DIR, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_runbooks)
