"""`python -m infra policy`: every gate over everything the bundle renders, as controls x objects.

Runs the Pod Security controls (the real kube-apiserver's admission) over every pod template, kube-score
(policy/kube-score.yaml) and the bundle's own rules over every bundle (stacks, chart scenarios, the committed
export) and the secret scan over the repository, the Helm values and the rendered objects. Prints one row per
control: objects checked, failures; then every violation with the object it names. Exit 1 when anything
fails. A run over everything (no --env, scenarios and exports on) also compares the table docs/security.md
quotes with the one it measured and fails when the document is stale, so one run serves the gate and the
drift check. `--markdown` prints that table; `--write-docs` rewrites it there.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.checks.policy import admission, kube_score, rules, secrets
from infra.core.errors import EXIT_FAILED, EXIT_OK
from infra.core.paths import REPO_ROOT
from infra.core.plan import build_for_env
from infra.core.stackfile import stack_names
from infra.sinks import bundles as targets
from infra.sinks.helm import helm_values

SECURITY_DOC = REPO_ROOT / "docs" / "security.md"
REPORT_BEGIN, REPORT_END = "<!-- policy-report:begin -->", "<!-- policy-report:end -->"

# Checkov checks that cover the same ground (they run too: `make checkov`, tests/policy/test_checkov.py).
CHECKOV_EQUIVALENTS = {
    "pss.privileged": "CKV_K8S_16",
    "pss.hostNamespaces": "CKV_K8S_17/18/19",
    "pss.hostPorts": "CKV_K8S_26",
    "pss.capabilities_restricted": "CKV_K8S_28/37",
    "pss.allowPrivilegeEscalation": "CKV_K8S_20",
    "pss.runAsNonRoot": "CKV_K8S_23",
    "pss.seccompProfile_restricted": "CKV_K8S_31",
    "kube-score.pod-probes": "CKV_K8S_8/9",
    "rules.no-secret-literals": "CKV_K8S_35",
    "kube-score.pod-networkpolicy": "CKV2_K8S_6",
}


@dataclass
class Row:
    gate: str
    control: str
    summary: str
    checked: int = 0
    failures: list[str] = field(default_factory=list)


def pss_rows(bundles: Mapping[str, list[dict[str, Any]]]) -> list[Row]:
    """Every pod template as a Pod, dry-run into a restricted namespace of the pinned kube-apiserver; without
    one, a single failing row says that Pod Security was not judged."""
    pods = [(name, obj) for name, objects in bundles.items() for obj in objects if admission.pod_template(obj)]
    if not admission.available():
        return [
            Row(
                "Pod Security",
                "pss.admission",
                "judged by the pinned kube-apiserver",
                checked=len(pods),
                failures=["no kube-apiserver/etcd: run `tools/bootstrap.sh kubernetes etcd` (make policy does)"],
            )
        ]
    rows = {c.name: Row(f"Pod Security {c.level}", c.name, c.summary, checked=len(pods)) for c in admission.controls()}
    for name, obj in pods:
        for v in admission.check_object(obj, admission.RESTRICTED):
            rows[v.control].failures.append(f"{name}: {v}")
    return list(rows.values())


def rule_rows(bundles: Mapping[str, list[dict[str, Any]]]) -> list[Row]:
    rows = []
    for r in rules.RULES:
        row = Row("network" if r.name.startswith("net.") else "reliability", r.name, r.summary)
        for name, objects in bundles.items():
            checked, violations = rules.check_rule(r, objects)
            row.checked += checked
            row.failures += [f"{name}: {v}" for v in violations]
        rows.append(row)
    return rows


def kube_score_rows(bundles: Mapping[str, list[dict[str, Any]]]) -> list[Row]:
    """One row per kube-score check that judged something; the checks policy/kube-score.yaml switches off
    are named under the table (`markdown`)."""
    config = kube_score.load_config()
    described = kube_score.checks()
    rows: dict[str, Row] = {}
    for name, objects in bundles.items():
        report = kube_score.run(objects, config, chart_only=name.startswith("chart:"))
        for check_id, n in kube_score.checked(report).items():
            control = kube_score.CONTROL_PREFIX + check_id
            row = rows.setdefault(control, Row("kube-score", control, described.get(check_id, ("", "", ""))[1]))
            row.checked += n
        for v in kube_score.parse(report):
            rows.setdefault(v.control, Row("kube-score", v.control, "")).failures.append(f"{name}: {v}")
    return [rows[c] for c in sorted(rows)]


def secret_rows(bundles: Mapping[str, list[dict[str, Any]]], envs: list[str]) -> list[Row]:
    files = secrets.repo_files()
    repo = Row(
        "secrets",
        "secrets.repository",
        "detect-secrets finds nothing beyond .secrets.baseline; no plain value under a secret-like key",
        checked=len(files),
        failures=[str(f) for f in secrets.scan_repo(files=files)],
    )
    values = [(env, r) for env in envs for r in build_for_env(env).releases]
    values_row = Row(
        "secrets", "secrets.helm-values", "the Helm values every release is installed with", checked=len(values)
    )
    for env, release in values:
        values_row.failures += [
            str(f) for f in secrets.scan_objects([helm_values(release.spec)], f"values:{env}/{release.variant}")
        ]
    rendered = Row(
        "secrets",
        "secrets.rendered",
        "rendered and exported objects: detect-secrets finds nothing, no Secret with data",
        checked=sum(len(objects) for objects in bundles.values()),
    )
    for name, objects in bundles.items():
        rendered.failures += [str(f) for f in secrets.scan_objects(objects, name)]
    return [repo, values_row, rendered]


def build_rows(
    envs: list[str], with_scenarios: bool, with_exports: bool
) -> tuple[dict[str, list[dict[str, Any]]], list[Row]]:
    bundles = targets.bundles(envs, with_scenarios=with_scenarios, with_exports=with_exports)
    return bundles, pss_rows(bundles) + kube_score_rows(bundles) + rule_rows(bundles) + secret_rows(bundles, envs)


def enforced_by(control: str) -> str:
    """Where a control is enforced besides tests/policy (which runs every row): docs/security.md legend."""
    from infra.checks.policy.pack import MANDATORY_KUBE_SCORE, MANDATORY_RULES

    where = []
    if control.startswith("pss."):
        where += ["admission", "pack!"]
    elif control in MANDATORY_RULES or control in MANDATORY_KUBE_SCORE:
        where.append("pack!")
    elif control.startswith(("rules.", "net.", "kube-score.")):
        where.append("pack")
    if control in CHECKOV_EQUIVALENTS:
        where.append(CHECKOV_EQUIVALENTS[control])
    return ", ".join(where) or "tests only"


def markdown(rows: list[Row], bundles: Mapping[str, list[dict[str, Any]]]) -> str:
    kinds = {"stack": "stacks", "chart": "chart scenarios", "export": "exported stacks"}
    counts = ", ".join(f"{sum(1 for b in bundles if b.startswith(k + ':'))} {v}" for k, v in kinds.items())
    lines = [
        f"Generated by `python -m infra policy --write-docs` over {counts}: "
        f"{sum(len(v) for v in bundles.values())} objects. Every row is also a test in `tests/policy/`.",
        "",
        "| gate | control | requires | enforced by | objects checked | failures |",
        "| --- | --- | --- | --- | ---: | ---: |",
    ]
    lines += [
        f"| {r.gate} | `{r.control}` | {r.summary} | {enforced_by(r.control)} | {r.checked} | {len(r.failures)} |"
        for r in rows
    ]
    lines.append(
        f"| **total** | {len(rows)} controls | | | **{sum(r.checked for r in rows)}** | **{sum(len(r.failures) for r in rows)}** |"
    )
    config = kube_score.load_config()
    lines += [
        "",
        f"kube-score checks off (reasons in `policy/kube-score.yaml`): {', '.join(f'`{c}`' for c in sorted(config.ignore))}; "
        f"in chart scenarios only: {', '.join(f'`{c}`' for c in sorted(config.ignore_in_chart_scenarios))}.",
    ]
    return "\n".join(lines)


def report_block(text: str) -> str:
    """The generated table between docs/security.md's markers."""
    if REPORT_BEGIN not in text or REPORT_END not in text:
        raise ValueError(f"docs/security.md lacks the {REPORT_BEGIN} ... {REPORT_END} markers")
    return text.split(REPORT_BEGIN, 1)[1].split(REPORT_END, 1)[0].strip()


def table_rows(table: str) -> dict[str, list[str]]:
    """The table's rows by control. The repository's file count (and so the total) moves with every file added,
    so it is left out of the comparison: the row still states it."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[1].startswith("`"):
            if cells[1] == "`secrets.repository`":
                cells[4] = "<files>"
            rows[cells[1]] = cells
    return rows


def stale_controls(documented: str, measured: str) -> list[str]:
    """Controls whose row in the documented table differs from the measured one (missing or extra rows too)."""
    doc, live = table_rows(documented), table_rows(measured)
    return sorted(c.strip("`") for c in doc.keys() | live.keys() if doc.get(c) != live.get(c))


def write_docs(table: str, path: Path = SECURITY_DOC) -> bool:
    """Replace the block between the markers; True when the file changed."""
    text = path.read_text()
    current = report_block(text)
    if current == table:
        return False
    path.write_text(text.replace(current, table, 1))
    return True


def cmd_policy(args: argparse.Namespace) -> int:
    envs = args.env or stack_names()
    bundles, rows = build_rows(envs, not args.no_scenarios, not args.no_exports)
    failures = sum(len(r.failures) for r in rows)
    if args.json:
        print(
            json.dumps(
                {
                    "bundles": {k: len(v) for k, v in bundles.items()},
                    "controls": [
                        {"gate": r.gate, "control": r.control, "checked": r.checked, "failures": r.failures}
                        for r in rows
                    ],
                },
                indent=2,
                sort_keys=True,
            )
        )
    elif args.markdown:
        print(markdown(rows, bundles))
    elif args.write_docs:
        changed = write_docs(markdown(rows, bundles))
        print(f"docs/security.md: the policy table {'was updated' if changed else 'is up to date'}")
    else:
        print(f"{len(bundles)} bundles, {sum(len(v) for v in bundles.values())} objects: {', '.join(bundles)}")
        width = max(len(r.control) for r in rows)
        for r in rows:
            print(f"  {r.control:<{width}}  {r.checked:>5} checked  {len(r.failures):>3} failed")
        for r in rows:
            for failure in r.failures:
                print(f"FAIL {failure}")
        print(f"{len(rows)} controls, {sum(r.checked for r in rows)} control x object checks, {failures} failures")
        if args.env or args.no_scenarios or args.no_exports:
            print("docs/security.md: not compared (its table covers every stack, chart scenario and export)")
        else:
            stale = stale_controls(report_block(SECURITY_DOC.read_text()), markdown(rows, bundles))
            if stale:
                print(
                    f"docs/security.md is stale in {len(stale)} rows ({', '.join(stale)}): "
                    "run `python -m infra policy --write-docs` and commit it"
                )
                return EXIT_FAILED
            print("docs/security.md: the policy table is the measured one")
    return EXIT_FAILED if failures else EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "policy",
        help="Pod Security, reliability, network and secret gates over every stack, chart scenario and export",
        description="Exit codes: 0 every control holds, 1 a control fails (each failure names the object), 2 bad input.",
    )
    p.add_argument("--env", action="append", help=f"only this stack (repeatable): {', '.join(stack_names())}")
    p.add_argument("--no-scenarios", action="store_true", help="skip the chart's ci/*-values.yaml scenarios")
    p.add_argument("--no-exports", action="store_true", help="skip the committed manifests/<env>/ trees")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--markdown", action="store_true", help="the table docs/security.md quotes")
    out.add_argument("--write-docs", action="store_true", help="rewrite that table in docs/security.md")
    p.set_defaults(func=cmd_policy)
