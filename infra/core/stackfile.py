"""Stack files: `Pulumi.<env>.yaml` read from disk (at call time) into the raw config `infra.core.config.load` parses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.core.config import SecretValue, StackConfig, load
from infra.core.paths import REPO_ROOT


class _StackLoader(yaml.SafeLoader):
    pass


def stack_file(env: str, root: Path = REPO_ROOT) -> Path:
    return root / f"Pulumi.{env}.yaml"


def stack_names(root: Path = REPO_ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def _mark_secrets(value: Any) -> Any:
    """Replace Pulumi's `{secure: <ciphertext>}` entries with SecretValue markers."""
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return SecretValue()
        return {k: _mark_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_secrets(v) for v in value]
    return value


def read_stack_file(env: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    path = stack_file(env, root)
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name}; stacks: {', '.join(stack_names(root)) or '(none)'}")
    document = yaml.load(path.read_text(), Loader=_StackLoader) or {}
    return _mark_secrets(document.get("config") or {})


def load_stack(env: str, root: Path = REPO_ROOT) -> StackConfig:
    return load(read_stack_file(env, root), env)
