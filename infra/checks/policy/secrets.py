"""Secret scan: token patterns in any text, plain-text secret-like keys in YAML, Secrets with data.

Runs over the repository's files (tracked and not ignored), every stack's Helm values, the rendered
bundles and the committed export (tests/policy/test_secret_scan.py). A finding names the file (or
bundle), the line and the kind of secret, never the secret itself.
"""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.core.paths import REPO_ROOT

# Token shapes (the patterns' own text never matches them: brackets are not token characters).
TOKEN_PATTERNS: dict[str, re.Pattern] = {
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "OpenAI-style API key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b"),
    "Pulumi access token": re.compile(r"\bpul-[0-9a-f]{40}\b"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),
}
# Keys that hold a secret value (the name ends in the secret word: `hfToken`, `apiKey`, `password`;
# `maxNumBatchedTokens` matches too, but its value is a number). Keys naming a reference (a Secret's
# name, a file path) are not secrets.
# Plurals count (`registryTokens: [...]`), and so do `secretKey`/`accessKey` (cloud credentials).
SECRET_KEY = re.compile(
    r"(?i)(tokens?|passwords?|passwd|secrets?|api[-_]?keys?|credentials?|(private|secret|access)[-_]?keys?)$"
)
# (`key` alone is the key inside a Secret, e.g. `key: api-key`; `apiKey` itself is a secret.)
REFERENCE_KEY = re.compile(r"(?i)(secretname|existingsecret|secretref|secretkeyref|name|path|file|dir)$|^key$")
# An assignment `SECRET_KEY = "literal"` in code or config: the literal must look random to count.
_ASSIGNMENT = re.compile(
    r"""(?i)\b([A-Za-z0-9_.-]*(?:token|password|passwd|secret|api[-_]?key|apikey)[A-Za-z0-9_.-]*)\s*[:=]\s*["']?([A-Za-z0-9+/_=-]{20,})["']?"""
)
# libyaml's loader when PyYAML has it (10x faster over the export tree), the pure-Python one otherwise.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Known non-secrets that look like one, by fingerprint (sha256 of the matched text, 12 hex), each with
# its reason. A finding prints its fingerprint; a new fake in a test must be listed here to pass, and a
# real token is never the same text as a listed fake.
ALLOWLIST: dict[str, str] = {
    "2aa6cd16b821": "tests/unit/pulumi_program_harness.py: fake hfToken the Pulumi program tests look for in state",
    "5a0cf3b55bf3": "tests/unit/pulumi_program_harness.py: fake apiKey the Pulumi program tests look for in state",
    "42a8af5aab59": "tests/unit/pulumi_program_harness.py: pulumi.runtime.rpc._special_sig_key, a public SDK constant",
    "5e56393271db": "tests/unit/pulumi_program_harness.py: pulumi.runtime.rpc._special_secret_sig, a public SDK constant",
    "ec206b4dba39": "tests/unit/test_config.py: fake plain-text hfToken that config validation must refuse",
    "3a419741f532": "tests/unit/test_program.py: fake plain-text hfToken that the Pulumi program must refuse",
    "7ea9cec9a193": "tests/unit/test_stack_secrets.py: fake plain-text hfToken in a bad stack file",
    "8c8480d6671c": "tests/unit/test_stack_secrets.py: fake token pasted into a note of a bad stack file",
    "8521a9eec870": "tests/unit/test_stack_secrets.py: AWS's documented example-style fake key in a bad stack file",
}


@dataclass(frozen=True, order=True)
class Finding:
    where: str  # file path (repo-relative) or bundle name
    line: int  # 0 when not line-based (a YAML key path is given instead)
    kind: str
    fingerprint: str = ""  # sha256 of the matched text (12 hex): names it without showing it

    def __str__(self) -> str:
        place = f"{self.where}:{self.line}" if self.line else self.where
        return f"{place}: {self.kind} (fingerprint {self.fingerprint})"


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _keep(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.fingerprint not in ALLOWLIST]


def entropy(text: str) -> float:
    """Shannon entropy in bits per character: random tokens score > 3.5, words and names < 3.5."""
    counts = {c: text.count(c) for c in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values()) if text else 0.0


def looks_random(value: str) -> bool:
    return (
        len(value) >= 20
        and entropy(value) > 3.5
        and bool(re.search(r"[0-9]", value))
        and bool(re.search(r"[A-Za-z]", value))
        and not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", value)
    )


def scan_text(text: str, where: str) -> list[Finding]:
    """Token patterns anywhere; `secret_key = <random literal>` assignments."""
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        findings += [
            Finding(where, number, kind, fingerprint(m.group(0)))
            for kind, pattern in TOKEN_PATTERNS.items()
            for m in pattern.finditer(line)
        ]
        for key, value in _ASSIGNMENT.findall(line):
            if not REFERENCE_KEY.search(key) and looks_random(value):
                findings.append(Finding(where, number, f"random-looking literal assigned to {key}", fingerprint(value)))
    return _keep(findings)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield path, str(key), value
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, f"{path}[{i}]")


def scan_document(document: Any, where: str) -> list[Finding]:
    """Plain-text values under secret-like keys (a `{secure: ...}` Pulumi secret is fine), Secrets with data."""
    findings = []
    if (
        isinstance(document, Mapping)
        and document.get("kind") == "Secret"
        and (document.get("data") or document.get("stringData"))
    ):
        name = (document.get("metadata") or {}).get("name")
        findings.append(
            Finding(where, 0, f"Secret/{name} carries data (reference Secrets by name only)", fingerprint(str(name)))
        )
    for path, key, value in _walk(document):
        bare_key = key.rpartition(":")[2]  # Pulumi stack keys: `project:key`
        if not SECRET_KEY.search(bare_key) or REFERENCE_KEY.search(bare_key):
            continue
        # The value itself, or any string nested in it (`apiKey: {value: ...}`, `registryTokens: [...]`),
        # except under reference keys (`hfToken: {existingSecret: name, key: token}`) and Pulumi ciphertext.
        full_key = f"{path}.{key}" if path else key
        findings += [
            Finding(where, 0, f"plain-text value under secret-like key {full_key}{sub}", fingerprint(text))
            for sub, text in _plain_strings(value)
        ]
    return sorted(set(_keep(findings)))  # a secret key nested in another is found from both


def _plain_strings(value: Any, sub: str = "") -> Iterator[tuple[str, str]]:
    """(sub-path, text) of each plain-text string in a secret-like key's value. Booleans and numbers
    (`automountServiceAccountToken: false`, `maxNumBatchedTokens: "8192"` as `pulumi config set` stores it)
    are not secrets; a `{secure: ...}` mapping is encrypted by `pulumi config set --secret`."""
    if isinstance(value, str):
        if value and not re.fullmatch(r"\d+", value):
            yield sub, value
    elif isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return
        for key, item in value.items():
            if not REFERENCE_KEY.search(str(key)):
                yield from _plain_strings(item, f"{sub}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _plain_strings(item, f"{sub}[{i}]")


def scan_yaml(text: str, where: str) -> list[Finding]:
    try:
        documents = [d for d in yaml.load_all(text, Loader=_YAML_LOADER) if d is not None]
    except yaml.YAMLError:
        return []  # not YAML (a Helm template): the text scan still covers it
    return [f for d in documents for f in scan_document(d, where)]


def repo_files(root: Path = REPO_ROOT) -> list[Path]:
    """Tracked files plus untracked ones git does not ignore."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(root / p for p in set(out.split("\0")) if p and (root / p).is_file())


def scan_file(path: Path, root: Path = REPO_ROOT) -> list[Finding]:
    """Every file, whatever its type: a token inside a binary is still a leak (undecodable bytes are dropped)."""
    rel = path.relative_to(root).as_posix()
    text = path.read_bytes().decode("utf-8", errors="ignore")
    findings = scan_text(text, rel)
    if path.suffix in (".yaml", ".yml"):
        findings += scan_yaml(text, rel)
    return findings


def scan_repo(root: Path = REPO_ROOT, files: Iterable[Path] | None = None) -> list[Finding]:
    return sorted(f for p in (repo_files(root) if files is None else files) for f in scan_file(p, root))


def scan_objects(objects: Iterable[Mapping[str, Any]], where: str) -> list[Finding]:
    """Rendered manifests (and Helm values): both the structural and the text scan."""
    findings = []
    for obj in objects:
        findings += scan_document(obj, where)
        findings += scan_text(yaml.dump(obj, Dumper=_YAML_DUMPER, sort_keys=True), where)
    return sorted(set(findings))
