"""Secret scan over the repository (tracked and not-ignored files), the stack files, every release's Helm
values, the rendered objects and the committed export; and proof it catches secrets planted in a copy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.checks.policy import secrets
from infra.core.paths import REPO_ROOT
from infra.core.stackfile import stack_file, stack_names
from infra.sinks.helm import helm_values


def test_repository_holds_no_secret():
    files = secrets.repo_files()
    findings = secrets.scan_repo(files=files)
    assert not findings, "\n".join(map(str, findings))
    assert len(files) > 50 and any(p.name == "values.yaml" for p in files)
    print(f"\n{len(files)} files scanned: 0 findings")


def test_the_baseline_is_audited_and_current():
    """Every entry of .secrets.baseline is audited as no secret, and still found (a stale entry must go)."""
    baseline = secrets.load_baseline()
    entries = [(f, s) for f, found in baseline["results"].items() for s in found]
    assert entries and all(s.get("is_secret") is False for _, s in entries), [
        f"{f}:{s.get('line_number')} {s['type']}" for f, s in entries if s.get("is_secret") is not False
    ]
    assert baseline["version"] == detect_secrets_version()
    found = {
        (rel, s.type, s.secret_hash) for rel, s in secrets._detect(REPO_ROOT, sorted({f for f, _ in entries}), baseline)
    }
    stale = [(f, s["type"]) for f, s in entries if (f, s["type"], s["hashed_secret"]) not in found]
    assert not stale, (
        f"entries no file holds any more (run `detect-secrets scan --baseline .secrets.baseline`): {stale}"
    )


def detect_secrets_version() -> str:
    from detect_secrets.__version__ import VERSION

    return VERSION


def test_every_secret_like_stack_key_is_encrypted():
    for env in stack_names():
        document = yaml.safe_load(stack_file(env).read_text())
        assert secrets.scan_document(document, stack_file(env).name) == []


def test_helm_values_rendered_objects_and_export_hold_no_secret(stack_plans, bundles):
    findings = []
    for env, plan in stack_plans.items():
        for release in plan.releases:
            findings += secrets.scan_objects([helm_values(release.spec)], f"values:{env}/{release.variant}")
    for name, objects in bundles.items():
        findings += secrets.scan_objects(objects, name)
        assert not [o for o in objects if o["kind"] == "Secret"], f"{name} renders a Secret"
    assert not findings, "\n".join(map(str, findings))


# ---------------------------------------------------------------------------------------------
# Planted secrets: a copy of the repository with secrets added must fail the scan
# ---------------------------------------------------------------------------------------------

# Built at run time so that this file itself never holds a token.
FAKE_HF = "hf_" + "Q7vLm2Zp9Xr4Tb8Nc1Wd6Ke3Yh5Ju0Gs"
FAKE_KEY_HEADER = "-----BEGIN " + "OPENSSH PRIVATE KEY-----"
FAKE_API_KEY = "x9" + "Fq2Lw7Rt4Zm8Vb1Nc6Yd3Hk5Gs0Pj"
FAKE_AWS = "AKIA" + "Q3ZX7LMN4PRT2WUV"
FAKE_GITHUB = "ghp_" + "k3Jd8Lq2Vx7Nm4Rt9Wz1Bc6Hy5Fg0Ps2Ea8Q"


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    """The repository's scanned files, copied into a fresh git work tree (nothing committed)."""
    root = tmp_path_factory.mktemp("repo")
    for path in secrets.repo_files():
        target = root / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_the_copy_is_the_clean_repository_before_planting(repo_copy):
    """Byte for byte the files test_repository_holds_no_secret scans clean (so a plant is the only finding)."""
    for path in secrets.repo_files():
        assert (repo_copy / path.relative_to(REPO_ROOT)).read_bytes() == path.read_bytes(), path


PLANTS = [
    (
        "hf token in chart values",
        "charts/jina-embeddings/values.yaml",
        lambda t: t + f"\ndebugHfToken: {FAKE_HF}\n",
        "Base64 High Entropy String",
    ),
    (
        "private key in a new file",
        "tools/deploy-key",
        lambda t: f"{FAKE_KEY_HEADER}\nb3BlbnNzaC1rZXktdjEAAAAA\n",
        "Private Key",
    ),
    (
        "AWS access key in a script",
        "tools/cluster.sh",
        lambda t: t + f"\nexport AWS_ACCESS_KEY_ID={FAKE_AWS}\n",
        "AWS Access Key",
    ),
    (
        "GitHub token in a doc",
        "README.md",
        lambda t: t + f"\n`curl -H 'Authorization: token {FAKE_GITHUB}'`\n",
        "GitHub Token",
    ),
    (
        "plain-text apiKey in a stack file",
        "Pulumi.prod.yaml",
        lambda t: t + f"  jina-embeddings:apiKey: {FAKE_API_KEY}\n",
        "plain-text value under secret-like key config.jina-embeddings:apiKey",
    ),
    (
        "plain-text password in values",
        "charts/jina-embeddings/ci/nvidia-whole-gpu-values.yaml",
        lambda t: t + "registryPassword: hunter2\n",
        "plain-text value under secret-like key registryPassword",
    ),
    (
        "random literal in code",
        "infra/core/catalog.py",
        lambda t: t + f'\nHF_API_TOKEN = "{FAKE_API_KEY}"\n',
        "Base64 High Entropy String",
    ),
    (
        "Secret with data in the export",
        "manifests/prod/platform/secret-leak.yaml",
        lambda t: yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leak"}, "data": {"token": "aGZfeHh4"}}
        ),
        "Secret/leak carries data",
    ),
]


@pytest.mark.parametrize("plant", PLANTS, ids=[p[0] for p in PLANTS])
def test_a_planted_secret_is_caught_and_located(repo_copy, plant):
    _, rel, edit, kind = plant
    path = repo_copy / rel
    original = path.read_text() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(edit(original or ""))
    try:
        findings = secrets.scan_repo(repo_copy, files=[path])  # the whole copy is scanned clean above
    finally:
        if original is None:
            path.unlink()
        else:
            path.write_text(original)
    assert [f for f in findings if f.where == rel and kind in f.kind], findings
    # The finding names the place and a fingerprint, never the secret itself.
    secrets_planted = (FAKE_HF, FAKE_API_KEY, FAKE_AWS, FAKE_GITHUB, "hunter2")
    assert not any(secret in str(f) for f in findings for secret in secrets_planted)


@pytest.mark.parametrize(
    "where, plant, kind",
    [
        ("Deployment env", lambda d: _env(d).append({"name": "NOTE", "value": f"token {FAKE_GITHUB}"}), "GitHub Token"),
        ("annotation", lambda d: d["metadata"].setdefault("annotations", {}).update(key=FAKE_AWS), "AWS Access Key"),
        ("ConfigMap password", lambda d: d["metadata"].update(labels={"password": "hunter2"}), "password"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_secret_planted_in_a_rendered_object_is_caught(bundle_copy, where, plant, kind):
    objects = bundle_copy("stack:prod")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert secrets.scan_objects(objects, "stack:prod") == []
    plant(deployment)
    findings = secrets.scan_objects(objects, "stack:prod")
    assert [f for f in findings if kind in f.kind], findings


def _env(deployment: dict) -> list:
    return deployment["spec"]["template"]["spec"]["containers"][0].setdefault("env", [])


def test_reference_keys_and_non_secret_values_are_not_flagged():
    document = {
        "secrets": {"apiKeySecretName": "jina-embeddings-api-key", "hfTokenSecretName": "hf"},
        "weights": {"hfToken": {"existingSecret": "hf-token", "key": "token"}},
        "spec": {"automountServiceAccountToken": False, "maxNumBatchedTokens": 8192},
        "jina-embeddings:apiKey": {"secure": "v1:AAAA"},
    }
    assert secrets.scan_document(document, "x") == []
    assert secrets.scan_document({"jina-embeddings:hfToken": "hf_plain"}, "x")


@pytest.mark.parametrize(
    "document, where",
    [
        (
            {"jina-embeddings:apiKey": {"value": "plain-text-api-key-value"}},
            "jina-embeddings:apiKey.value",
        ),  # nested under the key
        ({"registryTokens": ["first-plain-registry-token"]}, "registryTokens[0]"),  # a list, plural key
        ({"aws:secretKey": "plain-secret-access-key-value"}, "aws:secretKey"),  # cloud credential pair
        (
            {"auth": {"secrets": {"apiKey": "plain-text-api-key-value"}}},
            "auth.secrets.apiKey",
        ),  # nested secret keys: one finding
    ],
)
def test_secret_values_are_found_however_they_are_nested(document, where):
    findings = secrets.scan_document(document, "x")
    assert [f.kind for f in findings] == [f"plain-text value under secret-like key {where}"]


# ---------------------------------------------------------------------------------------------
# detect-secrets' verdicts kept per file content (secrets.SCAN_CACHE_DIR)
# ---------------------------------------------------------------------------------------------


def test_a_verdict_is_reused_only_for_the_same_path_and_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(secrets, "SCAN_CACHE_DIR", tmp_path / "cache")
    root = tmp_path / "repo"
    root.mkdir()
    notes = root / "notes.md"
    notes.write_text("# Notes\nnothing to hide here\n")
    assert secrets.scan_repo(root, files=[notes]) == []
    assert len([p for p in (tmp_path / "cache").rglob("*") if p.is_file()]) == 1, "one verdict kept for one file"

    # the kept verdict is what a second scan of the same bytes returns: detect-secrets is not asked again
    def no_scan(*_args, **_kwargs):
        raise AssertionError("detect-secrets ran for content it had scanned")

    with monkeypatch.context() as m:
        m.setattr(secrets, "SecretsCollection", no_scan)
        assert secrets._detect(root, ["notes.md"], secrets.load_baseline()) == []

    # new bytes are scanned: a token added after a clean scan is found
    notes.write_text(notes.read_text() + f"token {FAKE_GITHUB}\n")
    assert [f.kind for f in secrets.scan_repo(root, files=[notes])] == ["GitHub Token"]
    # the same bytes under another name are scanned too (detect-secrets' filters read the file name)
    shutil.copy(notes, root / "other.md")
    with monkeypatch.context() as m:
        m.setattr(secrets, "SecretsCollection", no_scan)
        with pytest.raises(AssertionError, match="detect-secrets ran"):
            secrets._detect(root, ["other.md"], secrets.load_baseline())
