"""What counts as a secret-holding key: the one pattern config validation, config redaction and the policy
checks share.

A key holds a secret when its name *ends* in a secret word (`hfToken`, `apiKey`, `password`, `HF_TOKEN`,
`VLLM_API_KEY`, `AWS_SECRET_ACCESS_KEY`; plurals too: `registryTokens`), unless it names a reference to one
(`hfTokenSecretName`, `existingSecret`, `secretKeyRef`, `HF_TOKEN_PATH`, a Secret's `key: api-key`). A key
that only *contains* a secret word (`tokenizer`) is not one. Pulumi stack keys (`project:key`) are judged by
their bare key. A name that counts or limits something (`maxNumBatchedTokens`) is not one either.

Secret-shaped *values* (`looks_like_secret`: known token shapes, long high-entropy words) are what config
validation refuses in plain text and what every printed message is scrubbed of (`redact_text`); scanning the
repository and the rendered objects for them is detect-secrets' job (infra.checks.policy.secrets).
"""

from __future__ import annotations

import math
import re
from collections import Counter

SECRET_KEY = re.compile(
    r"(?i)(tokens?|passwords?|passwd|passphrases?|secrets?|api[-_]?keys?|credentials?|auth"
    r"|(private|secret|access)[-_]?keys?)$"
)
# Names of counts and limits: `maxNumBatchedTokens` is a number of tokens, not a token.
COUNT_KEY = re.compile(r"(?i)^(max|min|num|count|total)")
# (`key` alone is the key inside a Secret, e.g. `key: api-key`; `apiKey` itself is a secret.)
REFERENCE_KEY = re.compile(
    r"(?i)(secret[-_]?name|existing[-_]?secret|secret[-_]?ref|secret[-_]?key[-_]?ref|name|path|file|dir)$|^key$"
)


def is_secret_key(key: str) -> bool:
    """Whether a value under this key (config key, YAML key, env var name) would be a secret."""
    bare = str(key).rpartition(":")[2]
    return bool(SECRET_KEY.search(bare)) and not REFERENCE_KEY.search(bare) and not COUNT_KEY.search(bare)


# Secret-shaped VALUES: known token shapes, and long high-entropy words (docs/security.md).
_KNOWN_TOKEN = re.compile(
    r"hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|sk-[A-Za-z0-9_-]{20,}|glpat-[\w-]{20,}"
    r"|xox[abpr]-[\w-]{10,}|A[KS]IA[0-9A-Z]{16}|eyJ[\w-]{10,}\.[\w-]{10,}|-----BEGIN[A-Z ]*PRIVATE KEY"
)
_WORD = re.compile(r"[A-Za-z0-9_+/=-]{20,}")
SECRET_ENTROPY_BITS = 4.2  # per character; the bundle's longest real values (URLs, model names) stay below 4.0


def _entropy(word: str) -> float:
    n = len(word)
    return -sum(c / n * math.log2(c / n) for c in Counter(word).values())


def _high_entropy(word: str) -> bool:
    classes = sum(bool(re.search(p, word)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return classes >= 2 and not re.fullmatch(r"[0-9a-f]+", word) and _entropy(word) >= SECRET_ENTROPY_BITS


def looks_like_secret(text: str) -> bool:
    """A string holding a known token shape (hf_..., ghp_..., sk-..., AKIA..., a JWT) or a high-entropy word."""
    return bool(_KNOWN_TOKEN.search(text)) or any(_high_entropy(w) for w in _WORD.findall(text))


def redact_text(text: str) -> str:
    """`text` with every secret-shaped word replaced by <redacted>: the last guard before a message is printed."""
    text = _KNOWN_TOKEN.sub("<redacted>", text)
    return _WORD.sub(lambda m: "<redacted>" if _high_entropy(m.group()) else m.group(), text)
