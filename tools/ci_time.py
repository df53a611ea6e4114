#!/usr/bin/env python3
"""Time what CI runs (`.ci/run` = `make test`), cold and warm, per component: `make ci-time` (docs/development.md).

    tools/ci_time.py [--warm-only] [--machine-caches] [--serial] [--keep] [--json FILE] [--tiers unit,e2e,...]

Cold (the default): a clean clone of HEAD in a temporary directory, with EMPTY caches there (BUNDLE_TOOLS_DIR,
GOCACHE, GOMODCACHE, PIP_CACHE_DIR) and fresh virtualenvs; it times `make venv`, `tools/bootstrap.sh` (its lanes side
by side, as `make test` runs it; --serial: one component after the other) with the per-component wall and CPU
seconds bootstrap prints, then the tests as CI runs them: `make test` (TEST_JOBS workers, tiers side by side), with
CI=true. --machine-caches: the clean clone, but with the machine's own caches (on a fresh machine that is a cold
run that leaves the toolchain cached for the next one). --tiers unit,e2e,...: each tier alone instead (`pytest tests/<tier>`, one
process), to see what each costs. --warm-only: the checkout itself with the machine's caches (`bootstrap.sh` finds
everything cached), then the tests. Uncommitted changes are in the warm run only (the cold one clones HEAD).

For each step it prints wall seconds and CPU seconds: user+sys of every child process that was waited for
(getrusage(RUSAGE_CHILDREN), https://man7.org/linux/man-pages/man2/getrusage.2.html). CPU does not grow when other
jobs load the machine; wall does. Each step's output goes to a log file (its path is printed); a step that fails is
reported with its exit status and the run goes on with the tests (a failed toolchain step stops it).
Run it niced on a shared machine: `nice -n 10 make ci-time`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIERS = ["unit", "chart", "alerts", "policy", "e2e", "vllm"]


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Timer:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.rows: list[dict] = []

    def step(self, group: str, name: str, cmd: list[str], cwd: Path, env: dict[str, str]) -> int:
        log = self.logdir / f"{group}-{name.replace('/', '_')}.log"
        print(f"[ci-time] {group} {name}: {' '.join(cmd)}  (log: {log})", flush=True)
        t0, c0 = time.monotonic(), cpu_children()
        with log.open("w") as out:
            rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        wall, cpu = time.monotonic() - t0, cpu_children() - c0
        self.rows.append({"group": group, "name": name, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "rc": rc})
        status = "ok" if rc == 0 else f"FAILED (exit {rc}; tail of {log}:)"
        print(f"[ci-time] {group} {name}: {wall:.0f}s wall, {cpu:.0f}s CPU {status}", flush=True)
        if rc:
            print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:]), flush=True)
        return rc

    def report(self, title: str) -> str:
        lines = [f"[ci-time] {title}", f"  {'group':<9} {'step':<20} {'wall_s':>8} {'cpu_s':>8}  rc"]
        totals: dict[str, list[float]] = {}
        for r in self.rows:
            lines.append(f"  {r['group']:<9} {r['name']:<20} {r['wall_s']:>8.0f} {r['cpu_s']:>8.0f}  {r['rc']}")
            t = totals.setdefault(r["group"], [0.0, 0.0])
            t[0] += r["wall_s"]
            t[1] += r["cpu_s"]
        for g, (w, c) in totals.items():
            lines.append(f"  {'total':<9} {g:<20} {w:>8.0f} {c:>8.0f}")
        w = sum(r["wall_s"] for r in self.rows)
        c = sum(r["cpu_s"] for r in self.rows)
        lines.append(f"  {'total':<9} {'all':<20} {w:>8.0f} {c:>8.0f}  ({w / 60:.1f} min wall)")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warm-only", action="store_true", help="the checkout with the machine's caches, no clone")
    ap.add_argument("--keep", action="store_true", help="keep the cold run's temporary directory")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--toolchain-only", action="store_true", help="stop after the toolchain: no tests")
    ap.add_argument(
        "--serial", action="store_true", help="bootstrap one component after the other (bootstrap.sh --serial)"
    )
    ap.add_argument(
        "--machine-caches", action="store_true", help="the clean clone with the machine's caches, not empty ones"
    )
    ap.add_argument(
        "--tiers", default="", help=f"time these tiers one by one instead of `make test` ({','.join(TIERS)})"
    )
    args = ap.parse_args(argv)
    tiers = [t for t in args.tiers.split(",") if t]
    bad = [t for t in tiers if not (REPO / "tests" / t).is_dir()]
    if bad:
        ap.error(f"--tiers: no tests/{bad[0]} directory; choose from {', '.join(TIERS)}")

    env = dict(os.environ)
    for k in ("VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(k, None)
    tmp = Path(tempfile.mkdtemp(prefix="ci-time-"))
    logdir = tmp / "logs"
    logdir.mkdir()
    timer = Timer(logdir)
    if args.warm_only:
        src = REPO
        title = f"warm run of {REPO} (machine caches)"
    else:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        src = tmp / "src"
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(src)], check=True)
        subprocess.run(["git", "checkout", "--quiet", sha.stdout.strip()], cwd=src, check=True)
        if args.machine_caches:
            title = f"run of {sha.stdout.strip()[:12]} in {src} (the machine's caches)"
        else:
            title = f"cold run of {sha.stdout.strip()[:12]} in {src} (empty caches)"
            for var, sub in [("BUNDLE_TOOLS_DIR", "tools"), ("GOCACHE", "gocache"), ("GOMODCACHE", "gomodcache"),
                             ("PIP_CACHE_DIR", "pip-cache")]:  # fmt: skip
                env[var] = str(tmp / sub)
        for var in ("KWOK_WORKDIR", "KUBECONFIG", "BUNDLE_KUBECONFIG", "PULUMI_HOME", "PULUMI_BACKEND_URL"):
            env.pop(var, None)  # derived from BUNDLE_TOOLS_DIR by tools/env.sh
    print(f"[ci-time] {title}; logs in {logdir}", flush=True)

    def toolchain(name: str, cmd: list[str]) -> bool:
        return timer.step("toolchain", name, cmd, src, env) == 0

    # warm: an existing .venv is used as it is (a worktree's .venv may be a link to a shared one make cannot rebuild)
    ok = (args.warm_only and (src / ".venv" / "bin" / "python").exists()) or toolchain("venv", ["make", "venv"])
    bootstrap = ["tools/bootstrap.sh"] + (["--serial"] if args.serial else [])
    ok = ok and toolchain("bootstrap", bootstrap)
    # bootstrap's own summary: wall and CPU seconds per component (its lanes overlap, so the walls do not add up)
    bootstrap_log = logdir / "toolchain-bootstrap.log"
    _, _, summary = (bootstrap_log.read_text(errors="replace") if bootstrap_log.exists() else "").partition(
        "[bootstrap] summary"
    )
    components = [line.removeprefix("[bootstrap]").rstrip() for line in summary.splitlines()[1:]]
    if ok and not tiers and not args.toolchain_only:
        timer.step("tests", "make test", ["make", "test"], src, env | {"CI": "true"})
    if ok and not args.toolchain_only:
        for t in tiers:
            shell = f'source tools/env.sh && exec .venv/bin/python -m pytest -q -p no:cacheprovider "tests/{t}"'
            timer.step("tests", t, ["bash", "-c", shell], src, env)

    print(timer.report(title), flush=True)
    if components:
        print("[ci-time] bootstrap, per component:\n" + "\n".join(components), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"title": title, "rows": timer.rows, "bootstrap": components}, indent=1) + "\n")
    if not args.warm_only and not args.machine_caches and not args.keep:
        for sub in ("src", "tools", "gocache", "gomodcache", "pip-cache"):
            p = tmp / sub
            if p.exists():
                subprocess.run(["chmod", "-R", "u+w", str(p)], check=False)  # the module cache is read-only
                shutil.rmtree(p, ignore_errors=True)
        print(f"[ci-time] removed the caches and the clone; logs kept in {logdir}", flush=True)
    return 0 if ok and all(r["rc"] == 0 for r in timer.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
