"""No secret in plaintext in the stack files: every value under a key that looks like a token, key,
password or secret must be Pulumi ciphertext (`{secure: ...}`, written by `pulumi config set --secret`).

The scan is deliberately broad (any key on the value's path counts, at any depth, anywhere in the
file), with a short list of exemptions for keys that match the pattern but hold no secret material,
each with its reason. A second test proves the scan fails on a stack file that leaks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.paths import REPO_ROOT

SECRET_LIKE = re.compile(r"(?i)token|key|password|secret")
HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")  # a Hugging Face access token, under any key
# Top-level stack settings Pulumi itself writes: encryption metadata, not secrets.
PULUMI_SETTINGS = {"encryptionsalt", "secretsprovider", "encryptedkey"}
STACK_FILES = sorted(REPO_ROOT.glob("Pulumi.*.yaml"))


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _secret_like(trail: tuple[str, ...]) -> bool:
    leaf = trail[-1]
    if leaf.endswith("SecretName"):
        return False  # names a Kubernetes Secret (secrets.hfTokenSecretName); the value is a name
    segments = list(trail)
    if leaf == "key" and len(trail) >= 3 and trail[-3] == "tolerations":
        segments.pop()  # a toleration's taint key, e.g. nvidia.com/gpu
    return any(SECRET_LIKE.search(s) for s in segments)


def plaintext_secrets(path: Path) -> list[str]:
    """Every plaintext value in `path` that should have been set with `pulumi config set --secret`."""
    findings: list[str] = []

    def walk(value: Any, trail: tuple[str, ...]) -> None:
        if _is_secure(value):
            return
        if isinstance(value, dict):
            for key, child in value.items():
                if not trail and key in PULUMI_SETTINGS:
                    continue
                if trail and trail[-1] == "nodeSelector":
                    continue  # node label keys and values: public scheduling data
                walk(child, trail + (str(key),))
        elif isinstance(value, list):
            for i, child in enumerate(value):
                walk(child, trail + (f"[{i}]",))
        elif value is not None:
            where = ".".join(trail)
            if isinstance(value, str) and HF_TOKEN.search(value):
                findings.append(f"{path.name}: {where}: value looks like a Hugging Face token")
            elif trail and _secret_like(trail):
                findings.append(
                    f"{path.name}: {where}: plaintext under a secret-like key; "
                    f"use `pulumi config set --secret` (the file must hold `secure:` ciphertext)"
                )

    walk(yaml.safe_load(path.read_text()) or {}, ())
    return findings


def test_stack_files_exist():
    assert {p.name for p in STACK_FILES} >= {
        f"Pulumi.{e}.yaml" for e in ("dev", "staging", "prod", "prod-amd", "local")
    }


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_no_plaintext_secret_in_stack_file(path):
    assert plaintext_secrets(path) == []


LEAKY_STACK = """\
encryptionsalt: v1:abcdefghijklmnop==
config:
  jina-embeddings:namespace: jina-embeddings
  jina-embeddings:hfToken: hf_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
  jina-embeddings:apiKey:
    value: sk-plaintext
  jina-embeddings:secrets:
    apiKeySecretName: jina-embeddings-api-key
    password: hunter2
  jina-embeddings:registryTokens: [one, two]
  jina-embeddings:notes: "pasted by mistake: hf_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
  jina-embeddings:pools:
    gpu:
      nodeSelector:
        example.com/api-key-tier: gold
      tolerations:
        - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
  jina-embeddings:safeToken:
    secure: v1:Zm9vYmFy
  aws:secretKey: AKIAEXAMPLEPLAINTEXT
"""


def test_the_scan_fails_on_a_leaky_stack_file(tmp_path):
    leaky = tmp_path / "Pulumi.leaky.yaml"
    leaky.write_text(LEAKY_STACK)
    findings = plaintext_secrets(leaky)
    flagged = sorted(f.split(": ", 2)[1] for f in findings)
    assert flagged == sorted(
        [
            "config.jina-embeddings:hfToken",
            "config.jina-embeddings:apiKey.value",
            "config.jina-embeddings:secrets.password",
            "config.jina-embeddings:registryTokens.[0]",
            "config.jina-embeddings:registryTokens.[1]",
            "config.jina-embeddings:notes",
            "config.aws:secretKey",
        ]
    ), findings
    # not flagged: Pulumi's encryptionsalt, a Secret *name*, a node label, a taint key, secure: ciphertext
    assert not any(
        s in " ".join(findings)
        for s in ("encryptionsalt", "apiKeySecretName", "nodeSelector", "tolerations", "safeToken")
    )
    assert all("secure" in f or "Hugging Face" in f for f in findings)


def test_the_scan_passes_the_same_file_once_encrypted(tmp_path):
    document = yaml.safe_load(LEAKY_STACK)
    config = document["config"]
    for key in ("jina-embeddings:hfToken", "jina-embeddings:apiKey", "jina-embeddings:registryTokens", "aws:secretKey"):
        config[key] = {"secure": "v1:Y2lwaGVydGV4dA=="}
    config["jina-embeddings:secrets"]["password"] = {"secure": "v1:Y2lwaGVydGV4dA=="}
    config["jina-embeddings:notes"] = "nothing secret"
    fixed = tmp_path / "Pulumi.fixed.yaml"
    fixed.write_text(yaml.safe_dump(document))
    assert plaintext_secrets(fixed) == []
