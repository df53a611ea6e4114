"""`python -m infra capacity`: replicas, GPU slices and GPUs a workload needs (infra.core.capacity)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.core import calibration
from infra.core.capacity import (
    TARGET_UTILIZATION,
    CapacityPlan,
    parse_slice,
    plan_capacity,
)
from infra.core.config import ConfigError
from infra.core.errors import EXIT_OK, EXIT_USAGE
from infra.core.paths import REPO_ROOT
from infra.core.plan import build_for_env
from infra.core.sizing import SizingConstants
from infra.core.stackfile import stack_names


def print_plan(env: str, plan: CapacityPlan, engine: calibration.EngineCalibration) -> None:
    print(
        f"stack {env}: each variant at {plan.peak_tokens_per_second:,.0f} input tokens/s at peak, "
        f"mean input {plan.mean_input_tokens} tokens, replicas planned at {TARGET_UTILIZATION:.0%} of measured throughput"
    )
    for name, c in plan.slices.items():
        print(
            f"  pool {name}: {c.slice.description}: {c.tokens_per_second:,.0f} tokens/s per replica "
            f"(vLLM {engine.vllm_version} on {engine.gpu_name}, {c.shape} inputs: GPU limit {c.gpu_limit:,.0f}, "
            f"one server's {c.server_limit:,.0f}; {c.limited_by}-bound, x {TARGET_UTILIZATION})"
        )
    print(f"\n  {'variant':<15} {'pool':<16} {'HPA min':>7} {'HPA max':>7}")
    for v in plan.variants:
        print(f"  {v.variant:<15} {v.pool:<16} {v.min_replicas:>7} {v.peak_replicas:>7}")
    print(f"\n  {'pool':<16} {'resource':<26} {'slices':>6} {'GPUs':>5} {'nodes':>5}  configured")
    for p in plan.pools:
        configured = (
            "-"
            if p.configured_slices is None
            else (f"{p.configured_slices} slices" + (" (too few)" if p.configured_slices < p.slices else ""))
        )
        print(f"  {p.pool:<16} {p.slice_resource:<26} {p.slices:>6} {p.gpus:>5} {p.nodes:>5}  {configured}")


def cmd_capacity(args: argparse.Namespace) -> int:
    try:
        override = parse_slice(args.slice) if args.slice else None
        cal = calibration.load()
        engine = calibration.load_engine()
        constants = SizingConstants.measured(cal)
        # The stack's plan: its own slices are checked against the model (ConfigError with the fix).
        cfg = build_for_env(args.env, args.stack_dir, constants).config
        plan = plan_capacity(
            cfg, engine, constants, args.tokens_per_second, args.mean_input_tokens, args.off_peak_fraction, override
        )
    except (ValueError, ConfigError, FileNotFoundError) as exc:  # SliceTooSmall is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print_plan(args.env, plan, engine)
    return EXIT_OK


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capacity", help="replicas, GPU slices and GPUs a workload needs, from measured throughput")
    p.add_argument(
        "--env",
        default="prod",
        help=f"stack whose pools and variants to plan (default prod): {', '.join(stack_names())}",
    )
    p.add_argument(
        "--stack-dir", type=Path, default=REPO_ROOT, metavar="DIR", help="directory holding Pulumi.<env>.yaml"
    )
    p.add_argument(
        "--tokens-per-second", type=_positive(float), required=True, help="peak input tokens per second, per variant"
    )
    p.add_argument("--mean-input-tokens", type=_positive(int), default=256, help="mean tokens per input (default 256)")
    p.add_argument(
        "--slice",
        help="plan on this slice instead of the stack's pools: GPU:KIND[:PARAM], e.g. nvidia-h100-80gb:mig:1g.10gb",
    )
    p.add_argument(
        "--off-peak-fraction",
        type=_positive(float),
        default=0.25,
        help="off-peak load as a fraction of peak, for HPA min (default 0.25)",
    )
    p.set_defaults(func=cmd_capacity)
