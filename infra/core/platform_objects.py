"""Platform objects of a stack, shared by every variant: namespace with Pod Security labels, the
ServiceAccount the pods run as, NetworkPolicies, the PriorityClass, and (weights.source=pvc) the
weights volume with the Job that fills it. Plain manifests (dicts), rendered the same by both sinks.

Secrets are never among them: the Pulumi program creates Secrets from `--secret` config, and the
GitOps export only references them by name.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from infra.core.accelerators import VENDORS
from infra.core.catalog import VARIANTS, served_model
from infra.core.config import StackConfig
from infra.core.dashboard import dashboard_configmap
from infra.core.names import (
    PROJECT,
    SERVER_SELECTOR,
    SERVICE_ACCOUNT,
    SERVICE_PORT,
    WEIGHTS_CLAIM,
    WEIGHTS_JOB_SELECTOR,
    common_labels,
    weights_ready_marker,
)

# Address ranges the model-hub egress rule excludes: pods may reach the internet's HTTPS, not the
# cluster's or the VPC's private services.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")


def _meta(cfg: StackConfig, name: str, component: str, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**common_labels(cfg.env), "app.kubernetes.io/component": component},
    }
    if namespaced:
        meta["namespace"] = cfg.namespace
    return meta


def namespace(cfg: StackConfig) -> dict[str, Any]:
    meta = _meta(cfg, cfg.namespace, "namespace", namespaced=False)
    # Pod Security admission enforces "restricted" on everything in the namespace. The GPU pods meet
    # it: non-root, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, and
    # only emptyDir/PVC/secret volumes (AMD device access comes from supplemental groups, allowed).
    for mode in ("enforce", "audit", "warn"):
        meta["labels"][f"pod-security.kubernetes.io/{mode}"] = "restricted"
        meta["labels"][f"pod-security.kubernetes.io/{mode}-version"] = "latest"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def service_account(cfg: StackConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(cfg, SERVICE_ACCOUNT, "embedding-server"),
        "automountServiceAccountToken": False,
    }


def priority_class(cfg: StackConfig) -> dict[str, Any] | None:
    pc = cfg.priority_class
    if not pc.create:
        return None
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": _meta(cfg, pc.name, "scheduling", namespaced=False),
        "value": pc.value,
        "globalDefault": False,
        "preemptionPolicy": "PreemptLowerPriority",
        "description": "Online embedding servers: outrank batch and training work on shared GPU pools.",
    }


def _peer(namespace: str, pod_labels: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """Pods of one namespace (all of them, or those with `pod_labels`); both selectors must match."""
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    if pod_labels:
        peer["podSelector"] = {"matchLabels": dict(pod_labels)}
    return peer


def _network_policy(cfg: StackConfig, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(cfg, f"{PROJECT}-{name}", "network-policy"),
        "spec": spec,
    }


def serving_peers(cfg: StackConfig) -> list[dict[str, Any]]:
    """Who may open the serving port: the client namespaces (optionally only labelled client pods),
    the Gateway's proxies, and Prometheus (it scrapes /metrics on the same port)."""
    net = cfg.network
    if net.client_namespaces:
        clients = [_peer(ns, net.client_pod_labels) for ns in sorted(set(net.client_namespaces))]
    elif net.client_pod_labels:  # labelled client pods in the stack's own namespace
        clients = [{"podSelector": {"matchLabels": dict(net.client_pod_labels)}}]
    else:
        clients = []
    gateway = [_peer(net.gateway_namespace)] if net.gateway_namespace else []
    return clients + gateway + [_peer(net.prometheus_namespace, net.prometheus_pod_labels)]


def network_policies(cfg: StackConfig) -> list[dict[str, Any]]:
    """Default deny, then exactly what the pods need (README "Security controls").

    vLLM's --api-key guards only /v1 routes (/pooling, /score, /invocations stay open), so the network
    is the real boundary: ingress only to the serving port from the peers above; egress only to DNS,
    and to the model hub (HTTPS on public addresses) only for pods that may fetch from it: the servers
    unless weights.offline, and the weights Job. Offline servers (HF_HUB_OFFLINE=1) never reach the
    internet.
    """
    deny_all = _network_policy(cfg, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    serving = _network_policy(
        cfg,
        "allow-serving",
        {
            "podSelector": {"matchLabels": dict(SERVER_SELECTOR)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": serving_peers(cfg), "ports": [{"protocol": "TCP", "port": SERVICE_PORT}]}],
        },
    )
    dns = _network_policy(
        cfg,
        "allow-egress",
        {
            "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PROJECT}},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        },
    )
    policies = [deny_all, serving, dns]
    # Components that fetch from the model hub: the servers unless offline (HF_HUB_OFFLINE=1), and
    # the Job that fills the weights volume (it exists only with weights.source=pvc).
    downloaders = ([] if cfg.weights.offline else [SERVER_SELECTOR["app.kubernetes.io/component"]]) + (
        [WEIGHTS_JOB_SELECTOR["app.kubernetes.io/component"]] if cfg.weights.source == "pvc" else []
    )
    if downloaders:
        # The model hub (huggingface.co and its CDN) over HTTPS; never the cluster's or the VPC's ranges.
        policies.append(
            _network_policy(
                cfg,
                "allow-model-hub",
                {
                    "podSelector": {
                        "matchLabels": {"app.kubernetes.io/part-of": PROJECT},
                        "matchExpressions": [
                            {"key": "app.kubernetes.io/component", "operator": "In", "values": downloaders}
                        ],
                    },
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}],
                            "ports": [{"protocol": "TCP", "port": 443}],
                        }
                    ],
                },
            )
        )
    return policies


# What the weights Job downloads of each served repository (huggingface_hub `allow_patterns`): config,
# tokenizer and safetensors files (the base repo also holds ONNX and GGUF exports, left out), and the
# repository's own Python code. `config.json`'s `auto_map` names `configuration_jina_embeddings_v5.py`
# (and `modeling_jina_embeddings_v5.py`); with `--trust-remote-code` and HF_HUB_OFFLINE=1 transformers
# loads the config class from that file in the cache, and start-up fails when it is missing ("does not
# appear to have a file named configuration_jina_embeddings_v5.py"). Base mode needs adapters/<task>/*,
# which the json and safetensors patterns include.
WEIGHTS_FILE_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "*.py")

# Argo CD applies lower sync waves first and waits for them to be healthy (a Job: complete) before the next
# (argo-cd docs, "Sync Phases and Waves"): the platform objects, then the weights Job, then the releases (0).
ARGO_SYNC_WAVE = "argocd.argoproj.io/sync-wave"
PLATFORM_WAVE, WEIGHTS_WAVE = "-2", "-1"


# Checkov suppressions of the weights Job, each with its reason (README "Security controls"); reasons
# never contain "=", which Checkov splits on. The chart's Deployments carry the same (templates/_helpers.tpl).
WEIGHTS_JOB_CHECKOV_SKIPS = {
    "checkov.io/skip1": "CKV_K8S_15=the tag is a pinned vLLM release; IfNotPresent spares a registry round trip on every start of a 10+ GB image",
    "checkov.io/skip2": "CKV_K8S_43=the tag is a pinned vLLM release (config refuses latest and nightly); no digest is known offline",
    "checkov.io/skip3": "CKV_K8S_40=UID 2000 is the vllm user the vLLM images ship (vllm#40275); restricted Pod Security only forbids UID 0",
}


def weights_volume(cfg: StackConfig) -> list[dict[str, Any]]:
    """The shared weights volume and the Job that downloads every served repository into it."""
    if cfg.weights.source != "pvc":
        return []
    spec: dict[str, Any] = {
        "accessModes": [cfg.weights.pvc_access_mode],
        "resources": {"requests": {"storage": cfg.weights.pvc_size}},
    }
    if cfg.weights.pvc_storage_class:
        spec["storageClassName"] = cfg.weights.pvc_storage_class
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(cfg, WEIGHTS_CLAIM, "model-weights"),
        "spec": spec,
    }

    repos = sorted(
        {
            (m.repository, m.revision)
            for m in (served_model(VARIANTS[v.name], v.serving_mode, v.revision) for v in cfg.variants.values())
        }
    )
    # The files WEIGHTS_FILE_PATTERNS names, of every served repository at its pinned revision; then the
    # repository's ready marker, which its servers wait for (so they never start on a half-filled volume).
    script = (
        "import json, pathlib, sys\n"
        "from huggingface_hub import snapshot_download\n"
        "for repo, revision, marker in json.loads(sys.argv[1]):\n"
        f"    path = snapshot_download(repo_id=repo, revision=revision, allow_patterns={list(WEIGHTS_FILE_PATTERNS)!r})\n"
        "    pathlib.Path(marker).parent.mkdir(parents=True, exist_ok=True)\n"
        "    pathlib.Path(marker).touch()\n"
        "    print(f'{repo}@{revision} -> {path}; ready: {marker}', flush=True)\n"
    )
    downloads = [[repo, revision, weights_ready_marker(repo, revision)] for repo, revision in repos]
    # Any vLLM image has huggingface_hub; take the first variant's pool's, with its pinned tag, so the node that
    # runs the Job likely has it cached already and no other image is pulled. Not "the first pool": the order of
    # `pools` is the stack file's for the export but sorted for the Pulumi program (the engine passes a mapping
    # as JSON, and Go's encoding/json writes map keys sorted: https://pkg.go.dev/encoding/json#Marshal), and the
    # image is part of the Job's name.
    # The variants are in catalog order either way (infra.core.config.load).
    first_pool = cfg.pool_of(next(iter(cfg.variants.values())))
    image = f"{VENDORS[first_pool.vendor].image_repository}:{first_pool.image_tag}"
    env = [
        {"name": "HF_HOME", "value": "/models/huggingface"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    mounts: list[dict[str, Any]] = [{"name": "models", "mountPath": "/models"}, {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [
        {"name": "models", "persistentVolumeClaim": {"claimName": WEIGHTS_CLAIM}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if cfg.secrets.hf_token_secret_name:
        env.append({"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/huggingface/token"})
        mounts.append({"name": "hf-token", "mountPath": "/var/run/secrets/huggingface", "readOnly": True})
        volumes.append(
            {"name": "hf-token", "secret": {"secretName": cfg.secrets.hf_token_secret_name, "defaultMode": 0o440}}
        )
    # A Job's pod template is immutable: a new revision (or image, or file list) is a new Job, named after what
    # it downloads, which Argo CD and Flux create while they prune the old one and Pulumi replaces.
    digest = hashlib.sha256(json.dumps([downloads, image, WEIGHTS_FILE_PATTERNS]).encode()).hexdigest()[:10]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            **_meta(cfg, f"{WEIGHTS_CLAIM}-populate-{digest}", "model-weights"),
            "annotations": {**WEIGHTS_JOB_CHECKOV_SKIPS, ARGO_SYNC_WAVE: WEIGHTS_WAVE},
        },
        "spec": {
            "backoffLimit": 4,
            "activeDeadlineSeconds": 3600,
            "template": {
                "metadata": {"labels": {**common_labels(cfg.env), "app.kubernetes.io/component": "model-weights"}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "automountServiceAccountToken": False,
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "enableServiceLinks": False,
                    "priorityClassName": cfg.priority_class.name,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 2000,
                        "runAsGroup": 2000,
                        "fsGroup": 2000,
                        "fsGroupChangePolicy": "OnRootMismatch",
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "download",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", script, json.dumps(downloads)],
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"},
                                "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "1Gi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "privileged": False,
                                "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }
    return [claim, job]


def grafana_dashboard(cfg: StackConfig) -> list[dict[str, Any]]:
    """The stack's dashboard (infra.core.dashboard): one for all variants, so it lives here, not in the chart."""
    if not cfg.monitoring.grafana_dashboard:
        return []
    return [dashboard_configmap(cfg, {**common_labels(cfg.env), "app.kubernetes.io/component": "dashboard"})]


def gpu_platform_objects(cfg: StackConfig) -> list[dict[str, Any]]:
    """What the pools' GPU platforms need from this stack to schedule it (infra.core.platforms), e.g. the Karpenter
    NodeOverlay that tells Karpenter's AWS provider a node's count of a MIG resource."""
    objects = []
    for pool in cfg.pools.values():
        for obj in pool.platform.cluster_objects(pool):
            meta = obj["metadata"]
            meta["labels"] = {
                **common_labels(cfg.env),
                "app.kubernetes.io/component": "gpu-platform",
                **meta.get("labels", {}),
            }
            objects.append(obj)
    return objects


def platform_objects(cfg: StackConfig) -> list[dict[str, Any]]:
    objects = [namespace(cfg), service_account(cfg)]
    pc = priority_class(cfg)
    if pc is not None:
        objects.append(pc)
    objects += gpu_platform_objects(cfg) + network_policies(cfg) + weights_volume(cfg) + grafana_dashboard(cfg)
    for obj in objects:  # every platform object before the weights Job, in Argo CD's sync order
        annotations = obj["metadata"].setdefault("annotations", {})
        annotations.setdefault(ARGO_SYNC_WAVE, PLATFORM_WAVE)
    return objects
