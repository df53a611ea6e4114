"""`python -m infra docs [--check]`: the reference tables of docs/*.md, generated from the code (infra.sinks.docs)."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from infra.core.errors import EXIT_OK, EXIT_STALE, EXIT_USAGE
from infra.sinks.docs import BLOCKS, DOCS_DIR, render_pages


def cmd_docs(args: argparse.Namespace) -> int:
    root: Path = args.docs_dir
    try:
        pages = render_pages(root)
    except ValueError as exc:  # a page without its markers, or a key the generator does not document
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stale = sorted(page for page, (current, new) in pages.items() if current != new)
    if args.check:
        for page in stale:
            current, new = pages[page]
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True), new.splitlines(keepends=True), f"a/docs/{page}", f"b/docs/{page}"
                )
            )
        if stale:
            print(f"\n{len(stale)} docs page(s) stale: run `python -m infra docs`", file=sys.stderr)
            return EXIT_STALE
        print(f"{len(BLOCKS)} generated tables in {len(pages)} docs pages up to date")
        return EXIT_OK
    for page in stale:
        (root / page).write_text(pages[page][1])
    print(f"rewrote {len(stale)} of {len(pages)} docs pages ({len(BLOCKS)} generated tables)")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "docs",
        help="rewrite the generated reference tables of docs/*.md (or --check them)",
        description="Exit codes: 0 written or up to date, 1 stale (--check, with a diff), 2 bad input.",
    )
    p.add_argument("--check", action="store_true", help="fail with a diff when a generated table is stale")
    p.add_argument("--docs-dir", type=Path, default=DOCS_DIR, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_docs)
