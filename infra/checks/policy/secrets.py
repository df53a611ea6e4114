"""Secret scan: detect-secrets (github.com/Yelp/detect-secrets, pinned in requirements.in) against the committed
.secrets.baseline, plus the two checks a text scanner cannot do.

- `scan_repo`: detect-secrets' plugins (AWS, GitHub, Slack, OpenAI, JWT, private keys, Hugging Face-style
  keywords, high-entropy strings, ...) and filters, as the baseline's `plugins_used`/`filters_used` set them,
  over every tracked or unignored file. A finding is new when the baseline does not hold it (same file,
  type and hashed secret); every baseline entry is audited `is_secret: false` (a test checks it).
  Update the baseline after auditing a new false positive:
  `detect-secrets scan --baseline .secrets.baseline && detect-secrets audit .secrets.baseline`.
- `scan_objects`: the same plugins over rendered objects and Helm values (dumped as YAML). A string the
  baseline has audited in a tracked file (the export under manifests/ is tracked) is known there too.
- `scan_document` (what detect-secrets cannot do): any `Secret` carrying data (the bundle references
  Secrets by name only), and plain-text values under secret-holding keys whatever their shape: short or
  word-like values (`password: hunter2`), lists and nested mappings, which detect-secrets' keyword
  plugin misses or does not parse. The key pattern is infra.core.sensitive's (config validation and
  redaction use the same).

A finding names the file (or bundle), the line and the kind of secret, and detect-secrets' hash of it
(12 hex), never the secret itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from detect_secrets import SecretsCollection
from detect_secrets.__version__ import VERSION as DETECT_SECRETS_VERSION
from detect_secrets.settings import transient_settings

from infra.core.paths import REPO_ROOT, TOOLS_DIR
from infra.core.sensitive import REFERENCE_KEY, is_secret_key

BASELINE = REPO_ROOT / ".secrets.baseline"
# libyaml's dumper when PyYAML has it, the pure-Python one otherwise.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True, order=True)
class Finding:
    where: str  # file path (repo-relative) or bundle name
    line: int  # 0 when not line-based (a YAML key path is given instead)
    kind: str
    fingerprint: str = ""  # sha1 of the secret, as detect-secrets hashes it (12 hex): names it without showing it

    def __str__(self) -> str:
        place = f"{self.where}:{self.line}" if self.line else self.where
        return f"{place}: {self.kind} (fingerprint {self.fingerprint})"


def fingerprint(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# detect-secrets
# ---------------------------------------------------------------------------------------------


def load_baseline(path: Path = BASELINE) -> dict[str, Any]:
    return json.loads(path.read_text())


def _known(baseline: Mapping[str, Any]) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
    """(file, type, hash) of every audited entry, and (type, hash) regardless of the file."""
    entries = [(f, s["type"], s["hashed_secret"]) for f, found in baseline["results"].items() for s in found]
    return set(entries), {(t, h) for _, t, h in entries}


class Detected(NamedTuple):
    """One detect-secrets finding: what callers read of its PotentialSecret."""

    type: str
    secret_hash: str
    line_number: int


# detect-secrets reads ~50 KB/s a core, and one test run scans the repository and every rendered bundle several times
# (the policy tier, `make policy`). Its verdict on a file depends only on the file's path and bytes, the plugins and
# filters in force and its own version, so it is kept per file under a digest of exactly those: a scan of content
# scanned before reads the verdict back, anything else (a new or edited file, a planted secret) is scanned.
SCAN_CACHE_DIR = TOOLS_DIR / "cache" / "detect-secrets"


def _detect(root: Path, relative_paths: Iterable[str], baseline: Mapping[str, Any]) -> list[tuple[str, Detected]]:
    """(file, finding) of detect-secrets in these files, with the baseline's plugins and filters."""
    settings = {"plugins_used": baseline["plugins_used"], "filters_used": baseline["filters_used"]}
    salt = json.dumps([DETECT_SECRETS_VERSION, settings], sort_keys=True)
    keys = {rel: _scan_key(salt, rel, (root / rel).read_bytes()) for rel in relative_paths}
    found = {rel: _cached_scan(key) for rel, key in keys.items()}
    missing = [rel for rel, cached in found.items() if cached is None]
    if missing:
        with transient_settings(settings):
            collection = SecretsCollection(root=str(root))
            if len(missing) > 50:
                collection.scan_files(*missing)  # one process per core
            else:
                for rel in missing:
                    collection.scan_file(rel)
        for rel in missing:
            detected = sorted(Detected(s.type, s.secret_hash, s.line_number or 0) for s in collection[rel])
            _store_scan(keys[rel], detected)
            found[rel] = detected
    return [(rel, d) for rel, detected in found.items() for d in detected or []]


def _scan_key(salt: str, rel: str, content: bytes) -> str:
    return hashlib.sha256(b"\0".join([salt.encode(), rel.encode(), content])).hexdigest()


def _cached_scan(key: str) -> list[Detected] | None:
    try:
        return [Detected(*row) for row in json.loads((SCAN_CACHE_DIR / key[:2] / key).read_text())]
    except (OSError, ValueError, TypeError):  # not scanned yet, or an unreadable entry: scan again
        return None


def _store_scan(key: str, detected: list[Detected]) -> None:
    path = SCAN_CACHE_DIR / key[:2] / key
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{key}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(detected))
        os.replace(tmp, path)  # atomic: a concurrent scan reads the whole entry or none
    except OSError:  # a read-only cache only costs the next scan its time
        pass


def repo_files(root: Path = REPO_ROOT) -> list[Path]:
    """Tracked files plus untracked ones git does not ignore (the baseline itself excepted)."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(root / p for p in set(out.split("\0")) if p and p != BASELINE.name and (root / p).is_file())


def scan_repo(root: Path = REPO_ROOT, files: Iterable[Path] | None = None) -> list[Finding]:
    """detect-secrets over the files, less the baseline; the structural checks over the YAML ones."""
    paths = list(repo_files(root) if files is None else files)
    baseline_path = root / BASELINE.name if (root / BASELINE.name).exists() else BASELINE
    # one scan per content in this process too (a test session asks several times)
    state = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in [baseline_path, *paths])
    return list(_scan_repo(root, tuple(paths), baseline_path, state))


@functools.lru_cache(maxsize=8)
def _scan_repo(root: Path, paths: tuple[Path, ...], baseline_path: Path, state: tuple) -> tuple[Finding, ...]:
    baseline = load_baseline(baseline_path)
    known, _ = _known(baseline)
    rels = [p.relative_to(root).as_posix() for p in paths]
    findings = [
        Finding(rel, s.line_number or 0, s.type, s.secret_hash[:12])
        for rel, s in _detect(root, rels, baseline)
        if (rel, s.type, s.secret_hash) not in known
    ]
    for path, rel in zip(paths, rels, strict=True):
        if path.suffix in (".yaml", ".yml"):
            findings += scan_yaml(path.read_text(encoding="utf-8", errors="ignore"), rel)
    return tuple(sorted(set(findings)))


def scan_objects(objects: Iterable[Mapping[str, Any]], where: str) -> list[Finding]:
    """Rendered manifests (and Helm values): detect-secrets over their YAML, and the structural checks.

    A string the baseline audited in any tracked file is known here too (the rendered values carry the same
    model revision, the same Secret names as the committed export)."""
    objects = list(objects)
    baseline = load_baseline()
    _, known_anywhere = _known(baseline)
    findings = [f for obj in objects for f in scan_document(obj, where)]
    with tempfile.TemporaryDirectory(prefix="secret-scan-") as tmp:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", where) + ".yaml"
        (Path(tmp) / name).write_text(yaml.dump_all(objects, Dumper=_YAML_DUMPER, sort_keys=True))
        findings += [
            Finding(where, s.line_number or 0, s.type, s.secret_hash[:12])
            for _, s in _detect(Path(tmp), [name], baseline)
            if (s.type, s.secret_hash) not in known_anywhere
        ]
    return sorted(set(findings))


# ---------------------------------------------------------------------------------------------
# What detect-secrets cannot do: Secrets with data, any plain value under a secret-holding key
# ---------------------------------------------------------------------------------------------


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
        if not is_secret_key(key):
            continue
        # The value itself, or any string nested in it (`apiKey: {value: ...}`, `registryTokens: [...]`),
        # except under reference keys (`hfToken: {existingSecret: name, key: token}`) and Pulumi ciphertext.
        full_key = f"{path}.{key}" if path else key
        findings += [
            Finding(where, 0, f"plain-text value under secret-like key {full_key}{sub}", fingerprint(text))
            for sub, text in _plain_strings(value)
        ]
    return sorted(set(findings))  # a secret key nested in another is found from both


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
        return []  # not YAML (a Helm template): detect-secrets still covers it
    return [f for d in documents for f in scan_document(d, where)]
