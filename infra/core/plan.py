"""The Plan: everything a stack deploys, decided in pure Python.

Both sinks read it: the Pulumi program (infra/__main__.py) wires it into resources, and the GitOps
export (python -m infra export) renders it into manifests/<env>/. A test proves they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.core import calibration
from infra.core.config import ConfigError, PoolConfig, StackConfig
from infra.core.names import release_name
from infra.core.paths import CHART_PATH, REPO_ROOT
from infra.core.platform_objects import platform_objects
from infra.core.release import ReleaseSpec, release_spec
from infra.core.sizing import Sizing, SizingConstants, fit_problems, node_fit_problems
from infra.core.stackfile import load_stack


@dataclass(frozen=True)
class PlannedRelease:
    """One Helm release: one task variant of the model on one GPU pool."""

    variant: str
    name: str
    namespace: str
    pool: PoolConfig
    spec: ReleaseSpec  # what the plan decides; Helm values only at the sink edge (infra.sinks.helm)
    sizing: Sizing

    @property
    def chart_path(self) -> Path:
        return CHART_PATH

    @property
    def service_name(self) -> str:
        return self.spec.name

    @property
    def served_model_name(self) -> str:
        return self.spec.model.served_model_name

    @property
    def url(self) -> str:
        return f"http://{self.service_name}.{self.namespace}.svc:{self.spec.port}"


class UnknownVariant(KeyError):
    """A variant the stack does not enable: bad user input (exit 2), unlike a KeyError from a bug."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


@dataclass(frozen=True)
class Plan:
    env: str
    config: StackConfig
    platform: tuple[dict[str, Any], ...]
    releases: tuple[PlannedRelease, ...]

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def release(self, variant: str) -> PlannedRelease:
        for r in self.releases:
            if r.variant == variant:
                return r
        raise UnknownVariant(
            f"variant {variant!r} is not enabled in stack {self.env}; enabled: {', '.join(r.variant for r in self.releases)}"
        )


def build(cfg: StackConfig, constants: SizingConstants) -> Plan:
    """The plan of a valid stack config. Raises ConfigError when a variant's slice cannot hold the model, or a pool's
    machine type cannot hold its pods (infra.core.sizing.fit_problems, node_fit_problems): nothing is planned from it."""
    problems = fit_problems(cfg, constants) + node_fit_problems(cfg, constants)
    if problems:
        raise ConfigError(cfg.env, problems)
    releases = []
    for variant in cfg.variants.values():
        spec, sizing = release_spec(cfg, variant, constants)
        releases.append(
            PlannedRelease(variant.name, release_name(variant.name), cfg.namespace, cfg.pool_of(variant), spec, sizing)
        )
    return Plan(cfg.env, cfg, tuple(platform_objects(cfg)), tuple(releases))


def measured_constants() -> SizingConstants:
    """The sizing constants of the committed benchmark result (read at call time, cached)."""
    return SizingConstants.measured(calibration.load())


def build_for_env(env: str, root: Path = REPO_ROOT, constants: SizingConstants | None = None) -> Plan:
    """The plan of Pulumi.<env>.yaml in `root` (the repository by default), sized with `constants`
    (default: the committed benchmark's)."""
    return build(load_stack(env, root), constants or measured_constants())
