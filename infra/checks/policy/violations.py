"""What every gate returns: one Violation per broken control and object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Violation:
    control: str  # e.g. "pss.runAsNonRoot", "rules.pdb-allows-drain"
    object: str  # e.g. "Deployment/jina-embeddings/jina-embeddings-retrieval"
    message: str

    def __str__(self) -> str:
        return f"{self.object}: [{self.control}] {self.message}"


def object_id(obj: Mapping[str, Any]) -> str:
    """Kind/namespace/name (Kind/name for cluster-scoped objects): how every message names an object."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = meta.get("name", "<unnamed>")
    return (
        f"{obj.get('kind', '<no kind>')}/{namespace}/{name}" if namespace else f"{obj.get('kind', '<no kind>')}/{name}"
    )
