"""`Platform`: the stack's shared objects (infra.core.platform_objects) as typed Kubernetes resources.

The Namespace is created first; every namespaced object then takes its namespace from the
Namespace resource's output (`metadata.name`), not from a string, so Pulumi orders them after it
and a renamed namespace can never leave an object behind in the old one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.core.names import object_stem

# The kinds infra.core.platform_objects emits, by (apiVersion, kind). A kind missing here is a wiring bug, reported
# with the object's name rather than silently skipped. Each class takes the manifest's top-level fields as keyword
# arguments (metadata, spec, ...), which the base class pulumi.CustomResource does not declare.
RESOURCE_TYPES: dict[tuple[str, str], Callable[..., pulumi.CustomResource]] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("scheduling.k8s.io/v1", "PriorityClass"): k8s.scheduling.v1.PriorityClass,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,  # the Grafana dashboard (monitoring.grafanaDashboard)
    # Karpenter's NodeOverlay of an eks-karpenter pool (infra.core.platforms): a custom resource, its CRD installed
    # with Karpenter.
    ("karpenter.sh/v1alpha1", "NodeOverlay"): functools.partial(
        k8s.apiextensions.CustomResource, api_version="karpenter.sh/v1alpha1", kind="NodeOverlay"
    ),
}


@dataclass(frozen=True)
class PlatformArgs:
    objects: Sequence[Mapping[str, Any]]  # plan.platform: plain manifests, exactly one Namespace


def _snake(field: str) -> str:
    """Top-level manifest field -> constructor argument (`automountServiceAccountToken` ->
    `automount_service_account_token`). Nested fields keep their Kubernetes (camelCase) names."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()


def _resource_options(obj: Mapping[str, Any]) -> pulumi.ResourceOptions:
    if obj["kind"] == "Job":
        # Pulumi waits for a Job to complete (10 minutes by default). The weights download may take
        # up to the Job's own deadline; waiting that long keeps the servers from starting on an
        # empty volume.
        deadline = f"{obj['spec']['activeDeadlineSeconds']}s"
        return pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=deadline, update=deadline))
    return pulumi.ResourceOptions()


class Platform(pulumi.ComponentResource):
    namespace: k8s.core.v1.Namespace
    namespace_name: pulumi.Output[str]
    resources: dict[str, pulumi.CustomResource]  # by role, e.g. "networkpolicy-jina-embeddings-default-deny"

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jina-embeddings:platform:Platform", name, None, opts)
        namespaces = [o for o in args.objects if o["kind"] == "Namespace"]
        if len(namespaces) != 1:
            raise ValueError(f"the plan must hold exactly one Namespace, got {len(namespaces)}")
        namespace = self._create(name, namespaces[0], None)
        if not isinstance(namespace, k8s.core.v1.Namespace):  # RESOURCE_TYPES maps ("v1", "Namespace") to it
            raise TypeError(f"the Namespace was created as {type(namespace).__name__}, not k8s.core.v1.Namespace")
        self.namespace = namespace
        self.namespace_name = self.namespace.metadata.name
        self.resources = {object_stem(namespaces[0]): self.namespace}
        # Jobs last, after every other object: a Job's pod needs the ServiceAccount, PriorityClass,
        # volume claim and egress NetworkPolicy in place (admission rejects a pod whose priority class
        # or service account is missing; without the egress rule the download fails).
        objects = [o for o in args.objects if o["kind"] not in ("Namespace", "Job")]
        jobs = [o for o in args.objects if o["kind"] == "Job"]
        for obj in objects + jobs:
            needs = (
                [r for k, r in self.resources.items() if k != object_stem(namespaces[0])]
                if obj["kind"] == "Job"
                else []
            )
            namespaced = "namespace" in obj["metadata"]
            self.resources[object_stem(obj)] = self._create(
                name, obj, self.namespace_name if namespaced else None, needs
            )
        self.register_outputs({"namespace": self.namespace_name})

    def _create(
        self,
        name: str,
        obj: Mapping[str, Any],
        namespace: pulumi.Output[str] | None,
        needs: Sequence[pulumi.Resource] = (),
    ) -> pulumi.CustomResource:
        resource_type = RESOURCE_TYPES.get((obj["apiVersion"], obj["kind"]))
        if resource_type is None:
            raise ValueError(
                f"{obj['apiVersion']} {obj['kind']} {obj['metadata']['name']}: no Pulumi resource type is "
                f"wired for this kind; add it to infra/sinks/pulumi/components/platform.py RESOURCE_TYPES"
            )
        metadata: dict[str, Any] = dict(obj["metadata"])
        if namespace is not None:
            metadata["namespace"] = namespace
        fields = {_snake(k): v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        opts = pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(parent=self, depends_on=list(needs)), _resource_options(obj)
        )
        return resource_type(f"{name}-{object_stem(obj)}", opts=opts, metadata=metadata, **fields)
