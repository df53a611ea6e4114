"""`python -m infra plan --env ENV [--json]`: what a stack deploys, from the plan (infra.core.plan)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from infra.core.accelerators import GIB
from infra.core.errors import EXIT_OK
from infra.core.paths import REPO_ROOT
from infra.core.plan import Plan, PlannedRelease, build_for_env
from infra.core.release import probe_window_seconds
from infra.core.stackfile import stack_names
from infra.sinks.helm import effective_values, vllm_args


def release_summary(release: PlannedRelease) -> dict[str, Any]:
    v, s = effective_values(release.spec), release.sizing
    probes = v["probes"]
    return {
        "release": release.name,
        "service": release.service_name,
        "url": release.url,
        "served_model_name": release.served_model_name,
        "model": f"{v['model']['repository']}@{v['model']['revision']}",
        "serving_mode": v["model"]["servingMode"],
        "pool": release.pool.name,
        "vendor": release.pool.vendor,
        "gpu": {
            "resource": v["gpu"]["resourceName"],
            "count": v["gpu"]["count"],
            "slice": release.pool.slice.description,
        },
        "node_selector": v["nodeSelector"],
        "tolerations": v["tolerations"],
        "replicas": (
            {
                "min": v["autoscaling"]["minReplicas"],
                "max": v["autoscaling"]["maxReplicas"],
                "metric": v["autoscaling"]["metric"],
            }
            if v["autoscaling"]["enabled"]
            else {"fixed": v["replicaCount"]}
        ),
        "resources": {
            "requests": v["resources"]["requests"],
            "limits": v["resources"]["limits"],
            "shm": v["sharedMemory"]["sizeLimit"],
            "model_cache": v["weights"]["cacheSizeLimit"] if v["weights"]["source"] == "download" else "pvc",
        },
        "vllm_args": vllm_args(v),
        "probes": {
            name: {
                "path": p["path"],
                "period_s": p["periodSeconds"],
                "failure_threshold": p["failureThreshold"],
                "window_s": probe_window_seconds(p),
            }
            for name, p in probes.items()
        },
        "sizing": s.explain(),
        "kv_cache_tokens": s.kv_cache_tokens,
        "gpu_memory_usable_gib": round(s.usable_bytes / GIB, 2),
    }


def plan_summary(plan: Plan) -> dict[str, Any]:
    return {
        "env": plan.env,
        "namespace": plan.namespace,
        "platform": [f"{o['kind']}/{o['metadata']['name']}" for o in plan.platform],
        "variants": {r.variant: release_summary(r) for r in plan.releases},
    }


def _print_plan(plan: Plan) -> None:
    print(f"stack {plan.env}: namespace {plan.namespace}, {len(plan.releases)} variant(s)")
    print("platform: " + ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in plan.platform))
    for release in plan.releases:
        s = release_summary(release)
        print(f"\n== {release.variant} -> {s['release']} ({s['serving_mode']}: {s['model']})")
        print(f"  url:          {s['url']}  (model name: {s['served_model_name']})")
        print(
            f"  pool:         {s['pool']} ({s['vendor']}), {s['gpu']['count']} x {s['gpu']['resource']} = {s['gpu']['slice']}"
        )
        print(f"  nodeSelector: {json.dumps(s['node_selector'], sort_keys=True)}")
        print(f"  tolerations:  {json.dumps(s['tolerations'], sort_keys=True)}")
        print(f"  replicas:     {json.dumps(s['replicas'], sort_keys=True)}")
        print(f"  requests:     {json.dumps(s['resources']['requests'], sort_keys=True)}")
        print(f"  limits:       {json.dumps(s['resources']['limits'], sort_keys=True)}")
        print(f"  /dev/shm:     {s['resources']['shm']}   model cache: {s['resources']['model_cache']}")
        print(
            "  probes:       "
            + "; ".join(
                f"{n} {p['path']} {p['failure_threshold']}x{p['period_s']}s={p['window_s']}s"
                for n, p in s["probes"].items()
            )
        )
        print("  vllm serve " + " ".join(s["vllm_args"]))
        print("  sizing:")
        for line in s["sizing"]:
            print(f"    {line}")


def cmd_plan(args: argparse.Namespace) -> int:
    plan = build_for_env(args.env, args.stack_dir)
    if args.json:
        print(json.dumps(plan_summary(plan), indent=2, sort_keys=True))
    else:
        _print_plan(plan)
    return EXIT_OK


def add_env_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help=f"stack name (Pulumi.<env>.yaml): {', '.join(stack_names())}")
    parser.add_argument(
        "--stack-dir",
        type=Path,
        default=REPO_ROOT,
        metavar="DIR",
        help="directory holding Pulumi.<env>.yaml (default: the repository), e.g. to check a stack file before committing it",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="print what a stack deploys: pools, resources, vLLM args, probe budgets")
    add_env_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)
