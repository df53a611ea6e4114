"""docs/runbooks/: one page per alert and stack, generated (and committed) from the plan; every
object a command names exists in that stack's GitOps export (manifests/<env>/)."""

from __future__ import annotations

import re

import pytest

from infra.sinks.bundles import export_bundle
from infra.sinks.runbooks import RUNBOOKS_DIR, render_all, stale_files
from tests.conftest import STACKS, repo_path

SECTIONS = ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation", "## Verify recovery", "## Escalation")
KIND_OF = {
    "deploy": "Deployment",
    "deployment": "Deployment",
    "svc": "Service",
    "service": "Service",
    "hpa": "HorizontalPodAutoscaler",
    "pdb": "PodDisruptionBudget",
    "scaledobject": "ScaledObject",
    "servicemonitor": "ServiceMonitor",
    "prometheusrule": "PrometheusRule",
    "networkpolicy": "NetworkPolicy",
    "configmap": "ConfigMap",
    "secret": "Secret",
}
REF = re.compile(r"\b(" + "|".join(KIND_OF) + r")/([a-z0-9][a-z0-9.-]*)")


@pytest.fixture(scope="module")
def pages(rendered_releases) -> dict[str, str]:
    return render_all(rendered=rendered_releases)


def test_runbook_pages_are_up_to_date(pages):
    stale = stale_files(pages)
    assert not stale, f"stale runbook pages (run `python -m infra runbooks`): {stale}"


def test_every_page_has_the_sections_in_order(pages):
    for path, text in pages.items():
        if path.endswith("README.md"):
            continue
        positions = [text.find(s) for s in SECTIONS]
        assert -1 not in positions and positions == sorted(positions), f"{path}: sections missing or out of order"
        assert "<" not in text.split("## Escalation")[1].replace("<pod>", ""), f"{path}: placeholder left in Escalation"


def code_lines(text: str) -> list[str]:
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_commands_name_objects_that_exist_in_the_export(pages, stack_plans):
    checked = 0
    for path, text in pages.items():
        env = path.split("/")[0]
        if env not in STACKS:
            continue
        plan = stack_plans[env]
        objects = export_bundle(env)
        names = {(o["kind"], o["metadata"]["name"]) for o in objects}
        namespaces = {o["metadata"].get("namespace") for o in objects} - {None}
        deployments = [o for o in objects if o["kind"] == "Deployment"]
        pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments]
        node_selectors = [d["spec"]["template"]["spec"].get("nodeSelector", {}) for d in deployments]
        secrets = {
            ref["secretKeyRef"]["name"]
            for d in deployments
            for c in d["spec"]["template"]["spec"]["containers"]
            for e in c.get("env", [])
            for ref in [e.get("valueFrom", {})]
            if "secretKeyRef" in ref
        }
        served = {
            a.split("=", 1)[1]
            for d in deployments
            for c in d["spec"]["template"]["spec"]["containers"]
            for a in c.get("args", [])
            if a.startswith("--served-model-name=")
        }
        for line in code_lines(text):
            where = f"{path}: {line}"
            if "kubectl" in line:
                ns = re.search(r"-n (\S+)", line)
                if ns and ns.group(1) == plan.config.network.prometheus_namespace:
                    continue  # Prometheus' own namespace: not the stack's objects
                if ns:
                    assert ns.group(1) in namespaces, f"{where}: namespace {ns.group(1)} is not in manifests/{env}/"
                for short, name in REF.findall(line):
                    kind = KIND_OF[short]
                    if kind == "Secret":
                        assert name in secrets, f"{where}: no Deployment reads Secret {name}"
                    elif kind == "HorizontalPodAutoscaler" and name.startswith("keda-hpa-"):
                        assert ("ScaledObject", name[len("keda-hpa-") :]) in names, (
                            f"{where}: KEDA's HPA {name} has no ScaledObject"
                        )
                    else:
                        assert (kind, name) in names, f"{where}: {kind} {name} is not in manifests/{env}/"
                    checked += 1
                selector = re.search(r"-l (\S+)", line)
                if selector:
                    pairs = dict(p.split("=", 1) for p in selector.group(1).split(","))
                    pool = node_selectors if "get nodes" in line else pod_labels
                    assert any(pairs.items() <= labels.items() for labels in pool), (
                        f"{where}: no object in manifests/{env}/ has labels {pairs}"
                    )
                    checked += 1
            for label, value in re.findall(r'(namespace|model_name|job|deployment)="([^"]+)"', line):
                if label == "namespace":
                    assert value in namespaces, f"{where}: namespace {value}"
                elif label == "model_name":
                    assert value in served, f"{where}: no Deployment serves {value}"
                elif label == "job":
                    assert ("Service", value) in names, (
                        f"{where}: job {value} is no Service (the ServiceMonitor's job label)"
                    )
                else:
                    assert ("Deployment", value) in names, f"{where}: Deployment {value}"
                checked += 1
            if "python -m infra smoke" in line or "python -m infra status" in line:
                assert f"--env {env}" in line, f"{where}: another stack's command"
                variant = re.search(r"--variant (\S+)", line)
                assert not variant or variant.group(1) in {r.variant for r in plan.releases}, where
    assert checked > 500, f"only {checked} references checked: did the command parsing break?"


def test_the_index_links_every_page(pages):
    index = pages["README.md"]
    for path in pages:
        if path != "README.md" and not path.endswith("/README.md"):
            assert f"]({path})" in index, f"docs/runbooks/README.md does not link {path}"
    assert RUNBOOKS_DIR == repo_path("docs", "runbooks")


def test_the_runbooks_check_command_passes_on_the_committed_pages(capsys):
    from infra.cli import main

    assert main(["runbooks", "--check"]) == 0
    assert "runbook pages up to date" in capsys.readouterr().out


def test_the_runbooks_check_command_fails_on_a_stale_page(tmp_path, capsys):
    import shutil

    from infra.cli import main

    copy = tmp_path / "runbooks"
    shutil.copytree(RUNBOOKS_DIR, copy)
    page = copy / "prod" / "JinaEmbeddingsEngineStalled.md"
    page.write_text(
        page.read_text().replace("kubectl -n jina-embeddings delete pod", "kubectl -n jina-embeddings delete deploy")
    )
    assert main(["runbooks", "--check", "--runbooks-dir", str(copy)]) == 1
    assert "delete deploy" in capsys.readouterr().out
