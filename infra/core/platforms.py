"""GPU platforms: what runs on a pool's nodes to expose its GPUs, and so what the pods must ask for.

One profile per platform, and nothing platform-specific anywhere else. A profile decides:

- the extended resource name of each slice kind (whole GPU, MIG profile, time-sliced share, AMD partition);
- the node labels the pods select on and the taints they tolerate;
- what must be installed or configured on the cluster before the first sync (infra.core.prerequisites prints it);
- the cluster objects this stack must add for the platform to schedule it (a Karpenter NodeOverlay);
- how much of a named machine type a pod may request (the node's allocatable), where the platform documents it.

Profiles (`pools.<pool>.platform`; docs/platforms.md is the prose version with the same sources):

- `gpu-operator`: NVIDIA GPU Operator (device plugin + GPU Feature Discovery), on any cluster. Labels and resource
  names: NVIDIA/k8s-device-plugin README ("Shared Access to GPUs", renameByDefault -> `<resource>.shared`) and
  docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/gpu-sharing.html (GFD labels nvidia.com/gpu.replicas,
  nvidia.com/gpu.sharing-strategy; the `-SHARED` product suffix only when renameByDefault is false),
  gpu-operator-mig.html (mixed strategy: nvidia.com/mig-<profile>, label nvidia.com/mig.strategy).
- `gke`: GKE's own driver installer and device plugin. Every slice is `nvidia.com/gpu`; the node pool's settings show
  as node labels cloud.google.com/gke-accelerator, cloud.google.com/gke-gpu-sharing-strategy,
  cloud.google.com/gke-max-shared-clients-per-gpu (cloud.google.com/kubernetes-engine/docs/concepts/timesharing-gpus)
  and cloud.google.com/gke-gpu-partition-size (.../how-to/gpus-multi; kubernetes/autoscaler's GKE provider names the
  same labels); GPU nodes carry the taint nvidia.com/gpu=present:NoSchedule (.../how-to/gpus).
- `eks-karpenter`: GPU Operator (or the NVIDIA device plugin with GFD) on nodes Karpenter launches. Karpenter cannot
  launch a node for a pod whose selector names a label it does not know ("label ... does not have known values";
  kubernetes-sigs/karpenter#1219: GFD labels appear only after launch), so the pods select on Karpenter's own AWS
  labels (karpenter.k8s.aws/instance-gpu-name). Its AWS provider knows nvidia.com/gpu but no MIG or renamed
  time-sliced resource (aws/karpenter-provider-aws#8710), so this stack adds a NodeOverlay (karpenter.sh/v1alpha1,
  kubernetes-sigs/karpenter pkg/apis/v1alpha1/nodeoverlay.go) with that resource's capacity.
- `aks`: AKS GPU node pools with the NVIDIA device plugin (AKS-managed GPU node pools or the GPU Operator with
  --gpu-driver none; learn.microsoft.com/azure/aks/use-nvidia-gpu, /aks-managed-gpu-nodes, /nvidia-gpu-operator).
  AKS labels GPU nodes kubernetes.azure.com/accelerator=nvidia (learn.microsoft.com/azure/aks/use-labels); the
  conventional taint is sku=gpu:NoSchedule.
- `amd-gpu-operator`: AMD GPU Operator (device plugin + node labeller, instinct.docs.amd.com/projects/gpu-operator).
  The partition label amd.com/compute-memory-partition exists only when the node labeller runs with the
  `compute-memory-partition` argument (ROCm/k8s-device-plugin README, "Exposing GPU Partition"); with the device
  plugin's resource_naming_strategy `single` every partition is `amd.com/gpu`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from infra.core.names import PROJECT


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: str = "Exists"  # Exists | Equal
    effect: str = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute
    value: str | None = None

    def manifest(self) -> dict:
        out = {"key": self.key, "operator": self.operator, "effect": self.effect}
        if self.value is not None:
            out["value"] = self.value
        return out


class PlatformError(ValueError):
    """A pool the platform cannot serve. `field` is the pool key to change and `example` a value that works."""

    def __init__(self, message: str, field: str, example: str | int):
        super().__init__(message)
        self.field = field
        self.example = example


class SliceLike(Protocol):
    @property
    def resource_name(self) -> str: ...
    @property
    def per_gpu(self) -> int: ...


class PoolLike(Protocol):
    """What a profile reads of a pool (infra.core.config.PoolConfig)."""

    @property
    def name(self) -> str: ...
    @property
    def gpu(self) -> str: ...
    @property
    def slice_kind(self) -> str: ...
    @property
    def mig_profile(self) -> str: ...
    @property
    def shared_replicas(self) -> int: ...
    @property
    def gpus_per_node(self) -> int: ...
    @property
    def machine_type(self) -> str: ...
    @property
    def node_selector(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def slice(self) -> SliceLike: ...


# ---------------------------------------------------------------------------------------------
# Machine types a pool may name (`machineType`), and what a node of that type can give the pods
# ---------------------------------------------------------------------------------------------

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class MachineType:
    name: str
    cloud: str  # gce | aws
    vcpus: int
    memory_bytes: int
    gpu: str  # GPU model key (infra.core.accelerators.GPU_MODELS)
    gpus: int


# Compute Engine G2 (cloud.google.com/compute/docs/gpus, "G2 machine series": vCPUs, memory in GiB, attached L4s),
# and the EC2 instances the shipped EKS stacks name (aws.amazon.com/ec2/instance-types/p5, /p4).
MACHINE_TYPES: dict[str, MachineType] = {
    m.name: m
    for m in (
        MachineType("g2-standard-4", "gce", 4, 16 * GIB, "nvidia-l4", 1),
        MachineType("g2-standard-8", "gce", 8, 32 * GIB, "nvidia-l4", 1),
        MachineType("g2-standard-12", "gce", 12, 48 * GIB, "nvidia-l4", 1),
        MachineType("g2-standard-16", "gce", 16, 64 * GIB, "nvidia-l4", 1),
        MachineType("g2-standard-24", "gce", 24, 96 * GIB, "nvidia-l4", 2),
        MachineType("g2-standard-32", "gce", 32, 128 * GIB, "nvidia-l4", 1),
        MachineType("g2-standard-48", "gce", 48, 192 * GIB, "nvidia-l4", 4),
        MachineType("g2-standard-96", "gce", 96, 384 * GIB, "nvidia-l4", 8),
        MachineType("p5.48xlarge", "aws", 192, 2048 * GIB, "nvidia-h100-80gb", 8),
        MachineType("p4de.24xlarge", "aws", 96, 1152 * GIB, "nvidia-a100-80gb", 8),
    )
}

# Room left on every node for the platform's DaemonSets (device plugin, logging, metrics, CSI, kube-proxy), which
# request from the same allocatable. A budget, not a measurement: check `kubectl describe node` on a real node.
DAEMONSET_CPU_MILLICORES = 500
DAEMONSET_MEMORY_BYTES = 1 * GIB


def _tiered(total: float, tiers: tuple[tuple[float, float], ...]) -> float:
    """Sum of rate x the part of `total` in each (upper bound, rate) tier, the tiers in increasing order."""
    reserved, lower = 0.0, 0.0
    for upper, rate in tiers:
        if total > lower:
            reserved += (min(total, upper) - lower) * rate
        lower = upper
    return reserved


def gke_allocatable(machine: MachineType) -> tuple[int, int]:
    """(millicores, bytes) a GKE Standard node of this type can give pods: capacity - kube-reserved - the 100 MiB
    eviction threshold. cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes: CPU 6% of the first core,
    1% of the next, 0.5% of the next 2, 0.25% above 4; memory 25% of the first 4 GiB, 20% of the next 4, 10% of the
    next 8, 6% of the next 112, 2% above 128 GiB."""
    inf = float("inf")
    cpu = machine.vcpus * 1000 - _tiered(
        machine.vcpus * 1000, ((1000, 0.06), (2000, 0.01), (4000, 0.005), (inf, 0.0025))
    )
    gib = machine.memory_bytes / GIB
    reserved = _tiered(gib, ((4, 0.25), (8, 0.20), (16, 0.10), (128, 0.06), (inf, 0.02))) * GIB
    return int(cpu), int(machine.memory_bytes - reserved - 100 * MIB)


def eks_allocatable(machine: MachineType, max_pods: int = 110) -> tuple[int, int]:
    """(millicores, bytes) of an EKS AL2023 node: the same CPU tiers; memory 11 MiB x max pods + 255 MiB
    kube-reserved and the 100 MiB eviction threshold (awslabs/amazon-eks-ami nodeadm, kubelet config defaults)."""
    inf = float("inf")
    cpu = machine.vcpus * 1000 - _tiered(
        machine.vcpus * 1000, ((1000, 0.06), (2000, 0.01), (4000, 0.005), (inf, 0.0025))
    )
    return int(cpu), machine.memory_bytes - (11 * max_pods + 255 + 100) * MIB


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Prereq:
    component: str
    why: str


@dataclass(frozen=True)
class PlatformProfile:
    name: str
    vendor: str  # nvidia | amd
    title: str
    kinds: tuple[str, ...]  # slice kinds the platform offers
    cloud: str = ""  # machine types of this cloud are known (MACHINE_TYPES); "" = none
    # A node provisioner launches this platform's nodes for Pending pods, so an empty pool before the first
    # deploy is expected (preflight warns instead of failing).
    provisions_nodes: ClassVar[bool] = False

    def resource_name(self, kind: str, mig_profile: str) -> str:
        raise NotImplementedError

    def node_labels(self, gpu: str, product_label: str, kind: str, mig_profile: str, shared_replicas: int) -> Labels:
        raise NotImplementedError

    def tolerations(self) -> tuple[Toleration, ...]:
        raise NotImplementedError

    def prerequisites(self, pool: PoolLike) -> list[Prereq]:
        raise NotImplementedError

    def cluster_objects(self, pool: PoolLike) -> list[dict[str, Any]]:
        return []

    def allocatable(self, machine: MachineType) -> tuple[int, int]:
        raise NotImplementedError

    def check(self, gpu: str, kind: str) -> None:
        """Raises PlatformError when this platform cannot offer `kind` of `gpu`."""
        if kind not in self.kinds:
            raise PlatformError(
                f"platform {self.name} offers slices {', '.join(self.kinds)}, not {kind!r}", "slice", self.kinds[0]
            )


NVIDIA_TAINT = Toleration(key="nvidia.com/gpu")


@dataclass(frozen=True)
class GpuOperator(PlatformProfile):
    """NVIDIA GPU Operator: device plugin + GPU Feature Discovery labels, MIG `mixed`, time-slicing renamed."""

    def resource_name(self, kind: str, mig_profile: str) -> str:
        return {
            "whole": "nvidia.com/gpu",
            "mig": f"nvidia.com/mig-{mig_profile}",
            "time-sliced": "nvidia.com/gpu.shared",
        }[kind]

    def node_labels(self, gpu: str, product_label: str, kind: str, mig_profile: str, shared_replicas: int) -> Labels:
        labels: Labels = (("nvidia.com/gpu.present", "true"), ("nvidia.com/gpu.product", product_label))
        if kind == "mig":
            labels += (("nvidia.com/mig.strategy", "mixed"),)
        if kind == "time-sliced":
            labels += (
                ("nvidia.com/gpu.sharing-strategy", "time-slicing"),
                ("nvidia.com/gpu.replicas", str(shared_replicas)),
            )
        return labels

    def tolerations(self) -> tuple[Toleration, ...]:
        return (NVIDIA_TAINT,)

    def operator_config(self, pool: PoolLike) -> str:
        if pool.slice_kind == "mig":
            return (
                f"; ClusterPolicy `mig.strategy: mixed` and the pool's nodes labelled `nvidia.com/mig.config=all-{pool.mig_profile}` "
                f"(the MIG manager partitions every GPU into {pool.slice.per_gpu} x {pool.mig_profile})"
            )
        if pool.slice_kind == "time-sliced":
            return (
                "; a device-plugin config (ClusterPolicy `devicePlugin.config`) with `sharing.timeSlicing.renameByDefault: true` "
                f"and `resources: [{{name: nvidia.com/gpu, replicas: {pool.shared_replicas}}}]`, so each GPU is offered as "
                f"{pool.shared_replicas} x `nvidia.com/gpu.shared`"
            )
        return ""

    def prerequisites(self, pool: PoolLike) -> list[Prereq]:
        labels = ", ".join(f"`{k}`" for k, _ in self.node_labels(pool.gpu, "", pool.slice_kind, "", 0))
        return [
            Prereq(
                "NVIDIA GPU Operator (device plugin + GPU Feature Discovery)",
                f"pool `{pool.name}` asks for `{pool.slice.resource_name}` and selects nodes by the GPU Feature Discovery "
                f"labels {labels}" + self.operator_config(pool),
            )
        ]


# GKE accelerator names (cloud.google.com/gke-accelerator; `gcloud compute accelerator-types list`).
GKE_ACCELERATORS = {
    "nvidia-l4": "nvidia-l4",
    "nvidia-a100-80gb": "nvidia-a100-80gb",
    "nvidia-h100-80gb": "nvidia-h100-80gb",
    "nvidia-h200": "nvidia-h200-141gb",
}


@dataclass(frozen=True)
class Gke(PlatformProfile):
    """GKE Standard: GKE installs the driver and runs its own device plugin; sharing is a node-pool setting."""

    def check(self, gpu: str, kind: str) -> None:
        super().check(gpu, kind)
        if gpu not in GKE_ACCELERATORS:
            raise PlatformError(
                f"{gpu} is not a GKE accelerator this bundle knows; known: {', '.join(GKE_ACCELERATORS)}",
                "gpu",
                next(iter(GKE_ACCELERATORS)),
            )

    def resource_name(self, kind: str, mig_profile: str) -> str:
        return "nvidia.com/gpu"  # one time-shared client or one MIG partition is one nvidia.com/gpu on GKE

    def node_labels(self, gpu: str, product_label: str, kind: str, mig_profile: str, shared_replicas: int) -> Labels:
        labels: Labels = (("cloud.google.com/gke-accelerator", GKE_ACCELERATORS.get(gpu, gpu)),)
        if kind == "mig":
            labels += (("cloud.google.com/gke-gpu-partition-size", mig_profile),)
        if kind == "time-sliced":
            labels += (
                ("cloud.google.com/gke-gpu-sharing-strategy", "time-sharing"),
                ("cloud.google.com/gke-max-shared-clients-per-gpu", str(shared_replicas)),
            )
        return labels

    def tolerations(self) -> tuple[Toleration, ...]:
        return (NVIDIA_TAINT,)  # GKE taints GPU nodes nvidia.com/gpu=present:NoSchedule

    def allocatable(self, machine: MachineType) -> tuple[int, int]:
        return gke_allocatable(machine)

    def prerequisites(self, pool: PoolLike) -> list[Prereq]:
        accelerator = (
            f"type={GKE_ACCELERATORS.get(pool.gpu, pool.gpu)},count={pool.gpus_per_node},gpu-driver-version=latest"
        )
        if pool.slice_kind == "mig":
            accelerator += f",gpu-partition-size={pool.mig_profile}"
        if pool.slice_kind == "time-sliced":
            accelerator += f",gpu-sharing-strategy=time-sharing,max-shared-clients-per-gpu={pool.shared_replicas}"
        machine = f"--machine-type={pool.machine_type} " if pool.machine_type else ""
        return [
            Prereq(
                "GKE GPU node pool (GKE's driver installer and device plugin; not the NVIDIA GPU Operator)",
                f"pool `{pool.name}` asks for `{pool.slice.resource_name}` and selects the node labels GKE sets from "
                f"`gcloud container node-pools create {pool.name} {machine}--accelerator={accelerator}`; "
                "a GPU Operator device plugin would offer other names and labels",
            )
        ]


# Karpenter's AWS GPU names (karpenter.k8s.aws/instance-gpu-name: the EC2 DescribeInstanceTypes GPU name, lower case).
KARPENTER_GPU_NAMES = {
    "nvidia-l4": "l4",
    "nvidia-a100-80gb": "a100",
    "nvidia-h100-80gb": "h100",
    "nvidia-h200": "h200",
}
NODE_OVERLAY_API = "karpenter.sh/v1alpha1"


@dataclass(frozen=True)
class EksKarpenter(GpuOperator):
    """GPU Operator names on nodes Karpenter launches; selectors only on labels Karpenter knows before launch."""

    provisions_nodes: ClassVar[bool] = True

    def check(self, gpu: str, kind: str) -> None:
        super().check(gpu, kind)
        if gpu not in KARPENTER_GPU_NAMES:
            raise PlatformError(
                f"{gpu} has no Karpenter AWS GPU name this bundle knows; known: {', '.join(KARPENTER_GPU_NAMES)}",
                "gpu",
                next(iter(KARPENTER_GPU_NAMES)),
            )

    def node_labels(self, gpu: str, product_label: str, kind: str, mig_profile: str, shared_replicas: int) -> Labels:
        labels: Labels = (("karpenter.k8s.aws/instance-gpu-name", KARPENTER_GPU_NAMES.get(gpu, gpu)),)
        if kind == "mig":
            # The GPU Operator's MIG manager partitions a node by this label; the NodePool sets it in
            # spec.template.metadata.labels, so Karpenter knows it before launch and the pods may select on it.
            labels += (("nvidia.com/mig.config", f"all-{mig_profile}"),)
        return labels

    def allocatable(self, machine: MachineType) -> tuple[int, int]:
        return eks_allocatable(machine)

    def overlay_capacity(self, pool: PoolLike) -> dict[str, str]:
        """The resource Karpenter's AWS provider does not know, with a node's count of it (empty: none needed)."""
        if pool.slice_kind == "whole":
            return {}  # the provider knows nvidia.com/gpu per instance type
        return {pool.slice.resource_name: str(pool.gpus_per_node * pool.slice.per_gpu)}

    def overlay_name(self, pool: PoolLike) -> str:
        return f"{PROJECT}-{pool.name}"

    def cluster_objects(self, pool: PoolLike) -> list[dict[str, Any]]:
        capacity = self.overlay_capacity(pool)
        if not capacity:
            return []
        selector = dict(self.node_labels(pool.gpu, "", pool.slice_kind, pool.mig_profile, pool.shared_replicas))
        if pool.machine_type:
            selector["node.kubernetes.io/instance-type"] = pool.machine_type
        selector.update(dict(pool.node_selector))
        selector.pop("nvidia.com/mig.config", None)  # a NodePool label, not an instance-type property
        requirements = [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(selector.items())]
        # Only instance types with the pool's GPU count: the capacity is per node.
        requirements.append(
            {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": [str(pool.gpus_per_node)]}
        )
        return [
            {
                "apiVersion": NODE_OVERLAY_API,
                "kind": "NodeOverlay",
                "metadata": {"name": self.overlay_name(pool)},
                "spec": {"requirements": requirements, "capacity": capacity},
            }
        ]

    def prerequisites(self, pool: PoolLike) -> list[Prereq]:
        selector = ", ".join(
            f"`{k}`" for k, _ in self.node_labels(pool.gpu, "", pool.slice_kind, pool.mig_profile, pool.shared_replicas)
        )
        needs = [
            Prereq(
                "NVIDIA GPU Operator (device plugin; driver and toolkit from the EKS NVIDIA AMI)",
                f"pool `{pool.name}` asks for `{pool.slice.resource_name}` on nodes Karpenter launches, selected by "
                f"{selector}" + self.operator_config(pool),
            ),
            Prereq(
                "Karpenter NodePool",
                "the pool's `nodeSelector` names it; its nodes must carry the taint `nvidia.com/gpu:NoSchedule`"
                + (
                    f" and the template label `nvidia.com/mig.config: all-{pool.mig_profile}`"
                    if pool.slice_kind == "mig"
                    else ""
                ),
            ),
        ]
        if self.overlay_capacity(pool):
            needs.append(
                Prereq(
                    "Karpenter with the NodeOverlay feature gate (`settings.featureGates.nodeOverlay: true`, alpha)",
                    f"Karpenter's AWS provider does not know `{pool.slice.resource_name}`; the stack's NodeOverlay "
                    f"`{self.overlay_name(pool)}` tells it each node offers "
                    f"{pool.gpus_per_node * pool.slice.per_gpu} (aws/karpenter-provider-aws#8710)",
                )
            )
        return needs


@dataclass(frozen=True)
class Aks(GpuOperator):
    """AKS GPU node pools with the NVIDIA device plugin (AKS-managed or the GPU Operator's)."""

    def node_labels(self, gpu: str, product_label: str, kind: str, mig_profile: str, shared_replicas: int) -> Labels:
        labels: Labels = (("kubernetes.azure.com/accelerator", "nvidia"),)
        # AKS names no GPU model label; the pool's nodeSelector names the node pool (kubernetes.azure.com/agentpool).
        return labels

    def tolerations(self) -> tuple[Toleration, ...]:
        return (NVIDIA_TAINT, Toleration(key="sku", operator="Equal", value="gpu"))

    def prerequisites(self, pool: PoolLike) -> list[Prereq]:
        how = {
            "whole": "",
            "mig": f"; the node pool created with `--gpu-instance-profile MIG{pool.mig_profile.split('g.')[0]}g` and the "
            "device plugin's MIG strategy `mixed` (AKS-managed GPU node pools: `migStrategy: Mixed`)",
            "time-sliced": f"; a device-plugin config with time-slicing `renameByDefault: true`, {pool.shared_replicas} "
            "replicas per GPU",
        }[pool.slice_kind]
        return [
            Prereq(
                "AKS GPU node pool with the NVIDIA device plugin (AKS-managed GPU node pool, or the GPU Operator with "
                "`--gpu-driver none`)",
                f"pool `{pool.name}` asks for `{pool.slice.resource_name}` and selects `kubernetes.azure.com/accelerator=nvidia`; "
                "it tolerates `sku=gpu:NoSchedule`" + how,
            )
        ]


@dataclass(frozen=True)
class AmdGpuOperator(PlatformProfile):
    """AMD GPU Operator: device plugin (resource_naming_strategy single) + node labeller."""

    def resource_name(self, kind: str, mig_profile: str) -> str:
        return "amd.com/gpu"  # whole GPU or, in CPX mode, one compute partition

    def node_labels(self, gpu: str, product_label: str, kind: str, mig_profile: str, shared_replicas: int) -> Labels:
        labels: Labels = (("feature.node.kubernetes.io/amd-gpu", "true"), ("amd.com/gpu.product-name", product_label))
        if kind == "amd-cpx":
            labels += (("amd.com/compute-memory-partition", "cpx_nps4"),)
        return labels

    def tolerations(self) -> tuple[Toleration, ...]:
        return (Toleration(key="amd.com/gpu"),)

    def prerequisites(self, pool: PoolLike) -> list[Prereq]:
        why = (
            f"pool `{pool.name}` asks for `{pool.slice.resource_name}` and selects nodes by the node labeller's "
            "`amd.com/gpu.product-name`"
        )
        if pool.slice_kind == "amd-cpx":
            why += (
                "; GPUs partitioned CPX/NPS4 (the operator's Device Config Manager), the device plugin's "
                "`resource_naming_strategy: single`, and the node labeller run with the `compute-memory-partition` "
                "argument (DeviceConfig spec.devicePlugin.nodeLabellerArguments), without which the label "
                "`amd.com/compute-memory-partition=cpx_nps4` the pods select on does not exist"
            )
        return [Prereq("AMD GPU Operator (device plugin + node labeller)", why)]


PLATFORMS: Mapping[str, PlatformProfile] = {
    p.name: p
    for p in (
        GpuOperator(
            "gpu-operator",
            "nvidia",
            "NVIDIA GPU Operator (device plugin + GPU Feature Discovery)",
            ("whole", "mig", "time-sliced"),
        ),
        Gke(
            "gke",
            "nvidia",
            "GKE Standard GPU node pools (GKE's driver and device plugin)",
            ("whole", "mig", "time-sliced"),
            "gce",
        ),
        EksKarpenter(
            "eks-karpenter",
            "nvidia",
            "EKS with Karpenter (GPU Operator device plugin, NodeOverlay for MIG / time-sliced)",
            ("whole", "mig", "time-sliced"),
            "aws",
        ),
        Aks("aks", "nvidia", "AKS GPU node pools (NVIDIA device plugin)", ("whole", "mig", "time-sliced")),
        AmdGpuOperator(
            "amd-gpu-operator", "amd", "AMD GPU Operator (device plugin + node labeller)", ("whole", "amd-cpx")
        ),
    )
}
# The platform of a pool that names none: the operator of its vendor (what the kwok simulation mirrors).
DEFAULT_PLATFORM = {"nvidia": "gpu-operator", "amd": "amd-gpu-operator"}


def platform_for(name: str, vendor: str) -> PlatformProfile:
    return PLATFORMS[name or DEFAULT_PLATFORM[vendor]]
