"""`StackSecrets`: Kubernetes Secrets from values set with `pulumi config set --secret`.

This is the only code that reads a secret's plaintext, and it reads it as a secret Output
(`Config.require_secret`): Pulumi encrypts it in the state and masks it in logs, and the Kubernetes
provider keeps a Secret's `data`/`stringData` secret too. Nothing else (plan, Helm values, stack
outputs, the GitOps export) sees more than the Secret's name.

A secret that was not given creates nothing: the chart then references an existing Secret by name
(`secrets.hfTokenSecretName` / `secrets.apiKeySecretName`), managed outside the stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.core.names import PROJECT


@dataclass(frozen=True)
class SecretSpec:
    config_key: str  # the stack config key set with --secret, e.g. "hfToken"
    secret_name: str  # the Kubernetes Secret the chart references
    data_key: str  # the key inside the Secret the chart reads, e.g. "token"


@dataclass(frozen=True)
class StackSecretsArgs:
    namespace: pulumi.Input[str]
    labels: Mapping[str, str]
    secrets: Sequence[SecretSpec]


class StackSecrets(pulumi.ComponentResource):
    secrets: dict[str, k8s.core.v1.Secret]  # by config key
    names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: StackSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jina-embeddings:secrets:StackSecrets", name, None, opts)
        config = pulumi.Config(PROJECT)
        self.secrets = {}
        for spec in args.secrets:
            plaintext = config.require_secret(spec.config_key)  # a secret Output, never a str
            self.secrets[spec.config_key] = k8s.core.v1.Secret(
                f"{name}-{spec.secret_name}",
                metadata={"name": spec.secret_name, "namespace": args.namespace, "labels": dict(args.labels)},
                type="Opaque",
                string_data={spec.data_key: plaintext},
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.names = pulumi.Output.all(*(s.metadata.name for s in self.secrets.values()))
        self.register_outputs({"names": self.names})
