"""Fixtures of the policy tier: every bundle the gates cover (infra.sinks.bundles), rendered once."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.sinks import bundles as targets


@pytest.fixture(scope="session")
def bundles() -> dict[str, list[dict[str, Any]]]:
    """stack:<env> (plan through the chart), chart:<scenario>, export:<env> (committed manifests/)."""
    return targets.bundles()


@pytest.fixture()
def bundle_copy(bundles):
    """A deep copy of one bundle, to mutate: bundle_copy("stack:prod")."""
    return lambda name: copy.deepcopy(bundles[name])


def find(objects: list[dict[str, Any]], kind: str, predicate=lambda o: True) -> dict[str, Any]:
    """The first object of `kind` that satisfies `predicate` (fails the test when there is none)."""
    for obj in objects:
        if obj.get("kind") == kind and predicate(obj):
            return obj
    raise AssertionError(f"no {kind} in the bundle matches")
