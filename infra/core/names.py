"""Names and labels every layer agrees on: the project, the release and object names, the label sets.

One owner per name: the chart, the platform objects, the export's file names, the Pulumi children and the
runbooks all take them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROJECT = "jina-embeddings"
CHART_NAME = "jina-embeddings"
SERVICE_PORT = 8000


# Shared objects of the stack that every release points at (created by infra.core.platform_objects).
SERVICE_ACCOUNT = f"{PROJECT}-server"
WEIGHTS_CLAIM = f"{PROJECT}-weights"


# KEDA names the HPA it creates for a ScaledObject `keda-hpa-<ScaledObject name>`; the chart names the
# ScaledObject after the release.
KEDA_HPA_PREFIX = "keda-hpa-"


def release_name(variant: str) -> str:
    """Release (and Service) name: never `vllm`, which would inject VLLM_PORT into pods."""
    return f"{PROJECT}-{variant}"


SERVER_SELECTOR = {"app.kubernetes.io/part-of": PROJECT, "app.kubernetes.io/component": "embedding-server"}
WEIGHTS_JOB_SELECTOR = {"app.kubernetes.io/part-of": PROJECT, "app.kubernetes.io/component": "model-weights"}


def common_labels(env: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": PROJECT,
        "app.kubernetes.io/part-of": PROJECT,
        "app.kubernetes.io/managed-by": "jina-embeddings-bundle",
        f"{PROJECT}/stack": env,
    }


# Kinds that live outside any namespace. Every other object of the export gets `metadata.namespace`
# (the chart's templates leave it to `helm install --namespace`, which a GitOps tree has no equivalent of;
# Pulumi's helm.v4.Chart sets it the same way).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "PriorityClass",
        "NodeOverlay",  # karpenter.sh/v1alpha1 (infra.core.platforms)
        "StorageClass",
        "PersistentVolume",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "IngressClass",
        "RuntimeClass",
        "GatewayClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "APIService",
        "ClusterTriggerAuthentication",
    }
)


def object_stem(obj: Mapping[str, Any]) -> str:
    """`<kind>-<name>`: unique within a stack and stable across updates. The export's file names, the
    Pulumi child names of the platform objects (infra.sinks.pulumi.components.platform) and Checkov's input files."""
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}"


def object_filename(obj: Mapping[str, Any]) -> str:
    return f"{object_stem(obj)}.yaml"


def with_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The object with `metadata.namespace` set, if it is namespaced and has none."""
    if obj["kind"] in CLUSTER_SCOPED_KINDS or obj.get("metadata", {}).get("namespace"):
        return obj
    return {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}


# Where the weights volume is mounted (HF_HOME is under it) in the weights Job and the servers.
WEIGHTS_MOUNT = "/models"


def weights_ready_marker(repository: str, revision: str) -> str:
    """The file the weights Job writes once `repository@revision` is completely on the volume; a server of that
    model waits for it before it starts (the chart's wait-for-weights init container)."""
    return f"{WEIGHTS_MOUNT}/ready/{repository.replace('/', '--')}@{revision}"
