"""Pulumi components: thin wiring of the plan (infra.core.plan.Plan) into Kubernetes resources.

Nothing here decides what is deployed; every name, label, value and manifest comes from the pure
core. Conventions: `Name(name, args: NameArgs, opts=None)`, children named `f"{name}-<role>"`
with `parent=self`, `register_outputs` last, type tokens `jina-embeddings:<module>:<Name>`.
"""

from infra.sinks.pulumi.components.platform import Platform, PlatformArgs
from infra.sinks.pulumi.components.secrets import (
    SecretSpec,
    StackSecrets,
    StackSecretsArgs,
)
from infra.sinks.pulumi.components.variant import VariantRelease, VariantReleaseArgs

__all__ = [
    "Platform",
    "PlatformArgs",
    "SecretSpec",
    "StackSecrets",
    "StackSecretsArgs",
    "VariantRelease",
    "VariantReleaseArgs",
]
