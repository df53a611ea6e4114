"""`python -m infra smoke`: embedding checks against a running server (infra.ops.smoke)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from infra.core.errors import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from infra.ops import smoke as smoke_module
from infra.ops.smoke import (
    DEFAULT_DIMENSIONS_CHECK,
    GOLDEN_DIR,
    Expectations,
    Unreachable,
    render_text,
    run_checks,
)


def expectations(args: argparse.Namespace) -> Expectations:
    """From the plan (--env/--variant), then flags; raises ValueError on bad input."""
    model: str | None = None
    dim: int | None = None
    dimensions: int | None = None
    qp, dp, multilingual = "", "", True
    url: str | None = None
    golden: Path | None = None
    golden_task: str | None = None
    golden_note = ""
    if args.env or args.variant:
        if not (args.env and args.variant):
            raise ValueError("--env and --variant go together")
        from infra.core.catalog import MATRYOSHKA_DIMENSIONS, SHAPE, VARIANTS
        from infra.core.plan import build_for_env

        release = build_for_env(args.env).release(args.variant)
        model, dim, url = release.served_model_name, SHAPE.embedding_dimensions, release.url
        dimensions = (
            DEFAULT_DIMENSIONS_CHECK if DEFAULT_DIMENSIONS_CHECK in MATRYOSHKA_DIMENSIONS else MATRYOSHKA_DIMENSIONS[0]
        )
        variant = VARIANTS[args.variant]
        qp, dp = variant.query_prefix, variant.document_prefix
        golden_task = variant.task
        from infra.core.catalog import BASE_REPOSITORY

        recorded = GOLDEN_DIR / f"{BASE_REPOSITORY.split('/')[-1]}.json"
        if recorded.exists():
            golden = recorded
        else:
            golden_note = (
                f"no golden vectors recorded for {BASE_REPOSITORY} ({recorded.name}; docs/golden-vectors.md says how "
                "to make them)"
            )
    elif not args.url:
        raise ValueError("give --env ENV --variant V, or --url URL")
    if args.url:
        url = args.url
    if url is None or not url.startswith(("http://", "https://")):
        raise ValueError(f"--url {url!r}: must start with http:// or https://")
    # A flag that is given wins over what the plan says.
    model = args.model if args.model is not None else model
    dim = args.expect_dim if args.expect_dim is not None else dim
    qp = args.query_prefix if args.query_prefix is not None else qp
    dp = args.document_prefix if args.document_prefix is not None else dp
    dimensions = None if args.no_dimensions else args.dimensions if args.dimensions is not None else dimensions
    if dim is not None and dimensions is not None and not 0 < dimensions <= dim:
        raise ValueError(f"--dimensions {dimensions} must be from 1 to the vector size {dim}")
    if args.no_multilingual:
        multilingual = False
    if args.golden is not None:
        if golden_task is None:
            raise ValueError("--golden needs --env and --variant (the variant's task picks the vectors)")
        golden = Path(args.golden)
    if args.no_golden:
        golden, golden_note = None, "--no-golden"
    return Expectations(
        url,
        model,
        dim,
        dimensions,
        qp,
        dp,
        multilingual,
        os.environ.get(args.api_key_env) or None,
        args.timeout,
        retrieval=not args.no_retrieval,
        golden=golden,
        golden_task=golden_task,
        golden_note=golden_note,
    )


def cmd_smoke(args: argparse.Namespace) -> int:
    from infra.core.plan import (
        UnknownVariant,  # lazily, like expectations(): `--url` alone needs no plan
    )

    try:
        exp = expectations(args)
    except (ValueError, UnknownVariant, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = run_checks(exp)
    except Unreachable as exc:
        print(f"error: server unreachable: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(
        json.dumps(asdict(report) | {"passed": report.passed}, indent=2, sort_keys=True)
        if args.json
        else render_text(report)
    )
    return EXIT_OK if report.passed else EXIT_FAILED


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "smoke",
        help="check a running embedding server: health, model, vector size/norm, Matryoshka, prefixes, multilingual",
        description=smoke_module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", help="stack name: expectations (and the default URL) come from its plan")
    p.add_argument("--variant", help="task variant of --env")
    p.add_argument("--url", help="server base URL (default: the release's in-cluster Service URL)")
    p.add_argument(
        "--model", help="model name /v1/models must list and requests send (default: the plan's, else the first listed)"
    )
    p.add_argument(
        "--expect-dim", type=int, help="vector size (default: 1024 with --env; otherwise only checked for consistency)"
    )
    p.add_argument(
        "--dimensions", type=int, help=f"Matryoshka size to request (default with --env: {DEFAULT_DIMENSIONS_CHECK})"
    )
    p.add_argument(
        "--no-dimensions", action="store_true", help="skip the `dimensions` check (model without Matryoshka sizes)"
    )
    p.add_argument(
        "--query-prefix", help="prefix clients put before queries (default with --env: the variant's, e.g. 'Query: ')"
    )
    p.add_argument("--document-prefix", help="prefix clients put before documents (default with --env: 'Document: ')")
    p.add_argument("--no-multilingual", action="store_true", help="skip the five-language check (English-only model)")
    p.add_argument(
        "--no-retrieval",
        action="store_true",
        help="skip the query/document ranking check (a model without semantics, e.g. random test weights)",
    )
    p.add_argument("--golden", help="golden-vector file (default with --env: infra/golden/<model>.json when it exists)")
    p.add_argument("--no-golden", action="store_true", help="skip the golden-vector check")
    p.add_argument(
        "--api-key-env", default="VLLM_API_KEY", help="environment variable holding the API key (default: VLLM_API_KEY)"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_smoke)
