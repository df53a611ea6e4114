"""What counts as a secret-holding key: the one pattern config validation, config redaction and the policy
checks share.

A key holds a secret when its name *ends* in a secret word (`hfToken`, `apiKey`, `password`, `HF_TOKEN`,
`VLLM_API_KEY`, `AWS_SECRET_ACCESS_KEY`; plurals too: `registryTokens`), unless it names a reference to one
(`hfTokenSecretName`, `existingSecret`, `secretKeyRef`, `HF_TOKEN_PATH`, a Secret's `key: api-key`). A key
that only *contains* a secret word (`tokenizer`) is not one. Pulumi stack keys (`project:key`) are judged by
their bare key. The token *shapes* (hf_..., AKIA...) are detect-secrets' job (infra.checks.policy.secrets).
"""

from __future__ import annotations

import re

SECRET_KEY = re.compile(
    r"(?i)(tokens?|passwords?|passwd|secrets?|api[-_]?keys?|credentials?|(private|secret|access)[-_]?keys?)$"
)
# (`key` alone is the key inside a Secret, e.g. `key: api-key`; `apiKey` itself is a secret.)
REFERENCE_KEY = re.compile(
    r"(?i)(secret[-_]?name|existing[-_]?secret|secret[-_]?ref|secret[-_]?key[-_]?ref|name|path|file|dir)$|^key$"
)


def is_secret_key(key: str) -> bool:
    """Whether a value under this key (config key, YAML key, env var name) would be a secret."""
    bare = str(key).rpartition(":")[2]
    return bool(SECRET_KEY.search(bare)) and not REFERENCE_KEY.search(bare)
