"""Shared fixtures: every stack's plan and its releases rendered by the pinned helm."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import REPO_ROOT, stack_names
from infra.helm import render_release
from infra.plan import Plan, build_for_env

STACKS = stack_names()
CHART_DIR = REPO_ROOT / "charts" / "jina-embeddings"


@pytest.fixture(scope="session")
def stack_plans() -> dict[str, Plan]:
    return {env: build_for_env(env) for env in STACKS}


@pytest.fixture(scope="session")
def rendered_releases(stack_plans) -> dict[tuple[str, str], list[dict]]:
    """(env, variant) -> the objects `helm template` renders for that release."""
    return {(env, r.variant): render_release(r) for env, plan in stack_plans.items() for r in plan.releases}


def objects_of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def repo_path(*parts: str) -> Path:
    return REPO_ROOT.joinpath(*parts)
