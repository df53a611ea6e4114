"""docs/runbooks/: one page per alert and stack, generated (and committed) from the plan; every
object a command names exists in that stack's GitOps export (manifests/<env>/)."""

from __future__ import annotations

import re

import pytest

from infra.sinks.bundles import export_bundle
from infra.sinks.export import gitops_objects
from infra.sinks.runbooks import RUNBOOKS_DIR, command_blocks, render_all, stale_files
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
    "job": "Job",
    "application": "Application",
    "kustomization": "Kustomization",
    "gitrepository": "GitRepository",
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
        # the Argo CD and Flux objects of manifests/<env>/gitops/, which the pause and rollback commands patch
        gitops = list(gitops_objects(plan).values())
        names = {(o["kind"], o["metadata"]["name"]) for o in objects + gitops}
        namespaces = {o["metadata"].get("namespace") for o in objects + gitops} - {None}
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


def test_command_blocks_are_read_back_with_their_skip_reasons(pages):
    """Every ```bash fence is a command block; the few not run in e2e say why (tests/e2e/test_runbooks_run.py)."""
    for path, text in pages.items():
        blocks = command_blocks(text)
        assert len(blocks) == text.count("```bash"), path
        assert "```sh\n" not in text, f"{path}: a ```sh fence (commands are ```bash, so the e2e tier runs them)"
        for block in blocks:
            assert block.code.strip(), f"{path}: an empty command block"
            assert block.skip == "" or len(block.skip) > 20, f"{path}: a skip without a reason: {block.skip!r}"
    with pytest.raises(ValueError, match="read as command blocks"):
        command_blocks("```bash\nunclosed\n")


def test_rollbacks_and_pauses_follow_who_deploys_the_stack(pages, stack_plans):
    """Argo CD: automated sync off before a kubectl change, back on after, the pin moved; Flux: the
    Kustomization suspended and resumed, the GitRepository's commit moved; Pulumi: `pulumi up`. A kubectl
    change is never shown without the pause its controller needs."""
    expected = {
        "argocd": ('automated":{"enabled":false', 'automated":{"enabled":true', "targetRevision"),
        "flux": ('{"suspend":true}', '{"suspend":false}', "gitrepository/"),
        "pulumi": ("Nothing to pause", "pulumi up --stack", "git revert"),
    }
    for env, plan in stack_plans.items():
        page = pages.get(f"{env}/JinaEmbeddingsVariantUnavailable.md")
        if page is None:
            continue
        manager = plan.config.managed_by
        for needle in expected[manager]:
            assert needle in page, f"{env} ({manager}): {needle!r} missing"
        for other, needles in expected.items():
            if other != manager:
                assert needles[0] not in page, f"{env} ({manager}) shows {other}'s pause"
        undo = page.index("rollout undo")
        if manager != "pulumi":
            assert page.index(expected[manager][0]) < undo < page.index(expected[manager][1]), env
    managers = {p.config.managed_by for e, p in stack_plans.items() if f"{e}/README.md" in pages}
    assert managers == {"pulumi", "argocd", "flux"}, f"the stacks with pages cover only {managers}"


def test_the_weights_job_is_replaced_not_rerun(pages, stack_plans):
    for env, plan in stack_plans.items():
        page = pages.get(f"{env}/JinaEmbeddingsVariantUnavailable.md")
        if page is None:
            continue
        job = next((o for o in plan.platform if o["kind"] == "Job"), None)
        if job is None:
            assert "there is no weights Job" in page, env
            continue
        name = job["metadata"]["name"]
        block = next(b.code for b in command_blocks(page) if f"delete job/{name}" in b.code)
        assert f"kubectl apply --server-side -f manifests/{env}/weights/job-{name}.yaml" in block, block
        assert repo_path("manifests", env, "weights", f"job-{name}.yaml").is_file()
        assert f"wait --for=condition=Complete job/{name}" in block, block


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
