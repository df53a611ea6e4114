"""GitOps export (`python -m infra export`): deterministic, fresh, the plan's values, drift caught,
no plaintext secret, and what Argo CD or Flux need to find it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.core.names import CLUSTER_SCOPED_KINDS
from infra.core.paths import REPO_ROOT
from infra.sinks import export
from infra.sinks.helm import effective_values, helm_values, template
from tests.conftest import STACKS

MANIFESTS = REPO_ROOT / "manifests"
# An HF access token (hf_ + 30 or more base62 characters); none may appear anywhere in the export.
HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")


def run_export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra", "export", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def object_files(env_dir: Path) -> list[Path]:
    """The files kustomization.yaml must list: everything but itself, values/, gitops/ and README.md."""
    return sorted(
        p
        for p in env_dir.rglob("*.yaml")
        if p.name != "kustomization.yaml" and p.relative_to(env_dir).parts[0] not in ("values", "gitops")
    )


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    """Every stack rendered in memory: path under manifests/ -> text."""
    return export.render(STACKS)


@pytest.fixture
def exported(tmp_path, fresh) -> Path:
    """A fresh export written to a temporary manifests/ (the real tree is never mutated by tests)."""
    root = tmp_path / "manifests"
    export.write(fresh, root, STACKS, whole_tree=True)
    return root


# --- determinism and drift -------------------------------------------------------------------


def test_two_exports_are_byte_identical_through_make_and_the_cli(tmp_path, fresh):
    """`make export` and `python -m infra export --all` write the same bytes as an in-memory render; `make
    export-check` (the README's commands, pointed at temporary trees) then finds the tree fresh."""
    first, second = tmp_path / "first", tmp_path / "second"
    # -o: pytest already runs inside the project venv; don't let make rebuild it.
    make = ["make", "-s", "-o", ".venv/.installed", f"EXPORT_DIR={first}"]
    proc = subprocess.run([*make, "export"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"make export:\n{proc.stdout}\n{proc.stderr}"
    proc = run_export("--all", "--manifests-dir", str(second))
    assert proc.returncode == 0, proc.stderr
    assert tree_bytes(first) == tree_bytes(second) == {path: text.encode() for path, text in fresh.items()}
    text = "".join(fresh.values())
    assert "creationTimestamp" not in text and not re.search(r"\b20\d\d-[01]\d-[0-3]\dT", text), (
        "a timestamp in the export"
    )
    proc = subprocess.run([*make, "export-check"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "up to date" in proc.stdout, f"make export-check:\n{proc.stdout}\n{proc.stderr}"


def test_committed_manifests_are_fresh():
    """The drift check CI runs (`make test`): manifests/ must equal a fresh export of every stack."""
    proc = run_export("--all", "--check")
    assert proc.returncode == 0, f"manifests/ is stale; run `make export` and commit:\n{proc.stdout}\n{proc.stderr}"
    assert "up to date" in proc.stdout
    # One stack at a time, as the README shows.
    assert run_export("--env", "prod", "--check").returncode == 0


def test_every_stack_is_committed():
    assert sorted(p.name for p in MANIFESTS.iterdir()) == sorted(STACKS)
    for env in STACKS:
        assert (MANIFESTS / env / "kustomization.yaml").is_file(), f"manifests/{env}/kustomization.yaml is missing"


DEV_DEPLOYMENT = "dev/retrieval/deployment-jina-embeddings-retrieval.yaml"


def _delete(root: Path) -> tuple[str, list[str]]:
    (root / DEV_DEPLOYMENT).unlink()
    return "--env=dev", ["--- /dev/null", f"+++ b/manifests/{DEV_DEPLOYMENT}", "+kind: Deployment"]


def _edit_values(root: Path) -> tuple[str, list[str]]:
    path = root / "dev/values/retrieval.yaml"
    path.write_text(path.read_text().replace("maxModelLen: 8192", "maxModelLen: 4096"))
    return "--env=dev", ["--- a/manifests/dev/values/retrieval.yaml", "-  maxModelLen: 4096", "+  maxModelLen: 8192"]


def _edit_object(root: Path) -> tuple[str, list[str]]:
    path = root / DEV_DEPLOYMENT
    path.write_text(path.read_text().replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"))
    return "--env=dev", [
        f"+++ b/manifests/{DEV_DEPLOYMENT}",
        "-          allowPrivilegeEscalation: true",
        "+          allowPrivilegeEscalation: false",
    ]


def _add_file(root: Path) -> tuple[str, list[str]]:
    (root / "dev/retrieval/configmap-extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    return "--env=dev", ["--- a/manifests/dev/retrieval/configmap-extra.yaml", "+++ /dev/null", "-kind: ConfigMap"]


def _add_stack_dir(root: Path) -> tuple[str, list[str]]:
    shutil.copytree(root / "dev", root / "retired-stack")
    return "--all", ["--- a/manifests/retired-stack/kustomization.yaml", "+++ /dev/null"]


@pytest.mark.parametrize(
    "mutate",
    [_delete, _edit_values, _edit_object, _add_file, _add_stack_dir],
    ids=["deleted-object", "edited-values", "edited-object", "extra-file", "removed-stack-left-behind"],
)
def test_check_fails_with_a_diff_on_a_changed_tree_and_export_repairs_it(exported, mutate, fresh):
    scope, expected_lines = mutate(exported)
    proc = run_export(scope, "--check", "--manifests-dir", str(exported))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for line in expected_lines:
        assert line in proc.stdout.splitlines(), f"{line!r} not in the diff:\n{proc.stdout}"
    assert "is stale" in proc.stderr and "make export" in proc.stderr
    # Regenerating repairs the tree: missing files written, changed ones rewritten, extra ones removed.
    assert run_export(scope, "--manifests-dir", str(exported)).returncode == 0
    assert tree_bytes(exported) == {path: text.encode() for path, text in fresh.items()}


def test_export_refuses_to_delete_files_it_did_not_write(exported):
    stranger = exported / "notes.txt"
    stranger.write_text("not an export\n")
    proc = run_export("--all", "--manifests-dir", str(exported))
    assert proc.returncode == 2 and "notes.txt" in proc.stderr, proc.stderr
    assert stranger.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "no-such-stack"], "no stack file Pulumi.no-such-stack.yaml"),
        (["--env", "no-such-stack", "--check"], "no stack file Pulumi.no-such-stack.yaml"),
        ([], "one of the arguments --env --all is required"),
        (["--env", "dev", "--all"], "not allowed with argument"),
    ],
)
def test_bad_input_exits_2_with_a_message(args, message):
    proc = run_export(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr


# --- same plan, same values ------------------------------------------------------------------


@pytest.mark.parametrize("env", STACKS)
def test_values_files_are_the_plans_release_values(env, stack_plans):
    plan = stack_plans[env]
    values_dir = MANIFESTS / env / "values"
    assert sorted(p.name for p in values_dir.iterdir()) == sorted(f"{r.variant}.yaml" for r in plan.releases)
    for release in plan.releases:
        text = (values_dir / f"{release.variant}.yaml").read_text()
        assert yaml.safe_load(text) == helm_values(release.spec), (
            f"manifests/{env}/values/{release.variant}.yaml differs from the plan"
        )
        assert text == yaml.safe_dump(helm_values(release.spec), sort_keys=True)


@pytest.mark.parametrize("env", STACKS)
def test_helm_template_of_a_values_file_gives_the_exported_objects(env, stack_plans):
    """Teams that point Argo CD's Helm source at the chart with values/<variant>.yaml get the same objects."""
    plan = stack_plans[env]
    for release in plan.releases:
        values = yaml.safe_load((MANIFESTS / env / "values" / f"{release.variant}.yaml").read_text())
        rendered = {
            export.object_filename(o): export.with_namespace(o, plan.namespace)
            for o in template(release.chart_path, release.name, plan.namespace, values)
        }
        committed = {p.name: yaml.safe_load(p.read_text()) for p in (MANIFESTS / env / release.variant).iterdir()}
        assert rendered == committed, f"manifests/{env}/{release.variant}/ is not `helm template` of its values file"


# --- what is in each directory ---------------------------------------------------------------


@pytest.mark.parametrize("env", STACKS)
def test_kustomization_lists_every_object_file_and_nothing_else(env):
    env_dir = MANIFESTS / env
    kustomization = yaml.safe_load((env_dir / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(p.relative_to(env_dir).as_posix() for p in object_files(env_dir))
    assert not any(p.startswith(("gitops/", "values/")) for p in listed), "GitOps objects or values would be applied"


@pytest.mark.parametrize("env", STACKS)
def test_object_files_are_named_by_kind_and_name_and_carry_the_namespace(env, stack_plans):
    env_dir = MANIFESTS / env
    namespace = stack_plans[env].namespace
    for path in object_files(env_dir):
        obj = yaml.safe_load(path.read_text())
        where = path.relative_to(MANIFESTS)
        assert path.name == f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml", where
        if obj["kind"] in CLUSTER_SCOPED_KINDS:  # Namespace, PriorityClass, NodeOverlay (eks-karpenter), ...
            assert "namespace" not in obj["metadata"], f"{where}: cluster-scoped object with a namespace"
        else:
            assert obj["metadata"].get("namespace") == namespace, (
                f"{where}: namespaced object without namespace {namespace}"
            )


def _all_documents(texts: dict[str, str]):
    for path, text in texts.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc:
                    yield path, doc


def test_no_plaintext_secret_anywhere_in_the_export(fresh):
    committed = {p.relative_to(MANIFESTS).as_posix(): p.read_text() for p in MANIFESTS.rglob("*") if p.is_file()}
    for texts in (fresh, committed):
        for path, doc in _all_documents(texts):
            assert not (doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData"))), (
                f"{path}: Secret with data"
            )
        for path, text in texts.items():
            assert not HF_TOKEN.search(text), f"{path}: looks like a Hugging Face token"
    # Secrets are referenced by name: prod's API key Secret is used, and its README says who creates it.
    deployment = yaml.safe_load(fresh["prod/retrieval/deployment-jina-embeddings-retrieval.yaml"])
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "jina-embeddings-api-key", "key": "api-key"}
    assert "Secret `jina-embeddings-api-key`" in fresh["prod/README.md"]


def test_export_refuses_a_secret_with_data(stack_plans):
    plan = stack_plans["dev"]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leak"}, "stringData": {"token": "x"}}
    chart_objects: dict[str, list[dict]] = {r.variant: [] for r in plan.releases} | {plan.releases[0].variant: [secret]}
    with pytest.raises(export.ExportError, match="Secret/leak carries data"):
        export.render_stack(plan, chart_objects)


@pytest.mark.parametrize("env", STACKS)
def test_gitops_objects_point_at_the_stack_directory_at_a_pinned_placeholder_revision(env, stack_plans):
    plan, gitops = stack_plans[env], MANIFESTS / env / "gitops"
    app = yaml.safe_load((gitops / "argocd-application.yaml").read_text())
    repo = yaml.safe_load((gitops / "flux-gitrepository.yaml").read_text())
    fluxes = {
        p.stem.removeprefix("flux-kustomization-"): yaml.safe_load(p.read_text())
        for p in sorted(gitops.glob("flux-kustomization-*.yaml"))
    }
    assert app["spec"]["source"] == {
        "repoURL": export.REPO_URL_PLACEHOLDER,
        "targetRevision": export.REVISION_PLACEHOLDER,
        "path": f"manifests/{env}",
    }
    assert app["spec"]["destination"]["namespace"] == plan.namespace
    assert repo["spec"]["url"] == export.REPO_URL_PLACEHOLDER and repo["spec"]["ref"] == {
        "commit": export.REVISION_PLACEHOLDER
    }
    assert app["spec"]["syncPolicy"]["automated"]["prune"] is True
    # One Flux Kustomization per object directory: together they apply every object kustomization.yaml lists.
    listed = yaml.safe_load((MANIFESTS / env / "kustomization.yaml").read_text())["resources"]
    assert set(fluxes) == {p.split("/")[0] for p in listed}, sorted(fluxes)
    has_weights = "weights" in fluxes
    assert has_weights == (plan.config.weights.source == "pvc")
    for part, flux in fluxes.items():
        assert flux["metadata"]["name"] == f"{repo['metadata']['name']}-{part}"
        assert flux["spec"]["path"] == f"./manifests/{env}/{part}"
        assert flux["spec"]["sourceRef"] == {"kind": "GitRepository", "name": repo["metadata"]["name"]}
        assert flux["spec"]["prune"] is True and flux["spec"]["wait"] is True
        # the order of Argo CD's sync waves: platform, then the weights Job, then the servers
        after = {"platform": [], "weights": ["platform"]}.get(part, ["weights" if has_weights else "platform"])
        assert [d["name"] for d in flux["spec"].get("dependsOn", [])] == [
            f"{repo['metadata']['name']}-{a}" for a in after
        ], part
    # Flux waits for readiness: never shorter than the rollout (or the Job) may legitimately take.
    for release in plan.releases:
        deadline = effective_values(release.spec)["rollout"]["progressDeadlineSeconds"]
        assert int(fluxes[release.variant]["spec"]["timeout"].removesuffix("m")) * 60 >= deadline
    for job in (o for o in plan.platform if o["kind"] == "Job"):
        assert int(fluxes["weights"]["spec"]["timeout"].removesuffix("m")) * 60 >= job["spec"]["activeDeadlineSeconds"]
    # The path each points at is the kustomization the tests build.
    assert (REPO_ROOT / app["spec"]["source"]["path"] / "kustomization.yaml").is_file()


@pytest.mark.parametrize("env", STACKS)
def test_the_export_readme_lists_the_prerequisites_the_plan_implies(env, stack_plans):
    """Generated from the plan, never by hand: each pool's GPU operator, the autoscaler's metrics source, the
    monitoring selectors, the Gateway, the storage class."""
    from infra.core.prerequisites import prerequisites

    readme = (MANIFESTS / env / "README.md").read_text()
    cfg = stack_plans[env].config
    needs = prerequisites(cfg)
    for need in needs:
        assert f"- {need.component}: {need.why}." in readme, need
    components = " ".join(n.component for n in needs)
    assert ("NVIDIA GPU Operator" in components) == any(p.vendor == "nvidia" for p in cfg.pools.values())
    assert ("AMD GPU Operator" in components) == any(p.vendor == "amd" for p in cfg.pools.values())
    assert ("KEDA" in components) == (cfg.autoscaling.metric == "keda")
    assert ("Gateway API" in components) == cfg.gateway.enabled
    if any(p.slice_kind == "amd-cpx" for p in cfg.pools.values()):
        assert "compute-memory-partition" in readme
