"""`python -m infra export --env ENV | --all [--check]`: the GitOps export, manifests/<env>/ (infra.sinks.export)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.core.errors import EXIT_OK, EXIT_STALE, EXIT_USAGE
from infra.core.stackfile import stack_names
from infra.sinks.export import (
    MANIFESTS_DIR,
    ExportError,
    check_owned,
    compare,
    files_on_disk,
    render,
    unified_diff,
    write,
)
from infra.sinks.helm import HelmError


def cmd_export(args: argparse.Namespace) -> int:
    envs = stack_names() if args.all else [args.env]
    root = Path(args.manifests_dir)
    label = root.name
    # `--all` owns the whole tree (a removed stack's directory is extra); `--env` only its directory.
    scopes = None if args.all else envs
    try:
        if args.all and not args.check:
            check_owned(root, envs)  # before rendering: refuse early
        expected = render(envs)
        if not args.check:
            drift = write(expected, root, envs, whole_tree=args.all)
    except (HelmError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.check:
        for env in envs:
            print(f"{label}/{env}/: {sum(1 for p in expected if p.startswith(f'{env}/'))} files")
        print(f"{len(drift.changed)} changed, {len(drift.missing)} added, {len(drift.extra)} removed")
        return EXIT_OK
    actual = files_on_disk(root, scopes)
    drift = compare(expected, actual)
    if not drift.stale:
        print(f"{label}/ is up to date: {', '.join(envs)} ({len(expected)} files)")
        return EXIT_OK
    sys.stdout.write(unified_diff(expected, actual, drift, label))
    print(
        f"\n{label}/ is stale: {len(drift.changed)} changed, {len(drift.missing)} missing, {len(drift.extra)} extra file(s). "
        f"Regenerate with `make export` (python -m infra export --all) and commit the result.",
        file=sys.stderr,
    )
    return EXIT_STALE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write manifests/<env>/ for Argo CD or Flux (--check: fail on drift)",
        description="Render a stack's plan into plain manifests: platform objects plus `helm template` of "
        "each release, one file per object, a kustomization.yaml, Helm values per release, and "
        "Argo CD / Flux objects. Exit codes: 0 written or fresh, 1 stale (--check), 2 bad input.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--env", help=f"one stack (Pulumi.<env>.yaml): {', '.join(stack_names())}")
    which.add_argument(
        "--all", action="store_true", help="every stack; also removes directories of stacks that no longer exist"
    )
    p.add_argument(
        "--check", action="store_true", help="write nothing; print a unified diff and exit 1 when the tree is stale"
    )
    p.add_argument("--manifests-dir", default=str(MANIFESTS_DIR), help="root of the tree (default: %(default)s)")
    p.set_defaults(func=cmd_export)
