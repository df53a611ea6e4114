"""Accelerator profiles as data: GPU vendors, GPU models and the slices a pod can ask for.

Differences between NVIDIA and AMD, and between a whole GPU, a MIG profile, time-sliced replicas and
an AMD compute partition, live in these tables and nowhere else; what a slice is called on a cluster (its
extended resource, node labels and taints) is the platform's (infra.core.platforms).
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.core.platforms import PlatformError, platform_for
from infra.core.platforms import Toleration as Toleration  # re-exported: release.py and older callers import it here

MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class VendorProfile:
    """What changes with the GPU vendor: image, device-plugin resource prefix and the pod security settings the
    vendor's device nodes need. Resource names, node labels and taints depend on the platform as well
    (infra.core.platforms)."""

    name: str
    image_repository: str
    # vLLM >= 0.32.0 fixes the pooling hang for inputs of exactly max_model_len (vllm#55427).
    image_tag: str
    whole_gpu_resource: str
    # Non-root processes need the host's `video` (44) and `render` groups to open /dev/kfd and
    # /dev/dri/renderD* on AMD (ROCm/k8s-device-plugin#39); NVIDIA device nodes are world-rw.
    needs_render_groups: bool
    # Whether the container's root filesystem is read-only by default on this vendor's pools (a pool may set
    # `readOnlyRootFilesystem`). NVIDIA: no. nvidia-container-toolkit 1.20.0's CDI hook update-application-profile
    # mkdirs /etc/nvidia/... inside the container and aborts container creation on a read-only root
    # (NVIDIA/nvidia-container-toolkit#2026, fixed by #2028 in a later release); EKS's AL2023 NVIDIA AMI v20260818
    # ships 1.20.0 (awslabs/amazon-eks-ami#2790), and KServe turned it off for its GPU pods for this reason
    # (kserve/kserve#5711). Pod Security "restricted" does not require it. AMD's device plugin runs no such hook.
    read_only_root_default: bool


VENDORS: dict[str, VendorProfile] = {
    "nvidia": VendorProfile(
        name="nvidia",
        image_repository="vllm/vllm-openai",
        image_tag="v0.33.0",
        whole_gpu_resource="nvidia.com/gpu",
        needs_render_groups=False,
        read_only_root_default=False,
    ),
    "amd": VendorProfile(
        name="amd",
        image_repository="vllm/vllm-openai-rocm",
        image_tag="v0.33.0",
        whole_gpu_resource="amd.com/gpu",
        needs_render_groups=True,
        read_only_root_default=True,
    ),
}

# Group id of `video` on the common GPU node images; `render` differs per node OS (105-110 seen),
# so pools name it (`renderGroupId`).
VIDEO_GROUP_ID = 44


@dataclass(frozen=True)
class GpuModel:
    key: str
    vendor: str
    product_label: str  # value of the vendor's product label on such a node
    memory_bytes: int  # what the device reports as total memory
    dense_bf16_tflops: float  # vendor datasheet, dense (no sparsity)
    mig_profiles: tuple[str, ...] = ()  # NVIDIA MIG profiles this model offers
    cpx_partitions: int = 0  # AMD compute partitions per GPU in CPX mode (0: not supported)


GPU_MODELS: dict[str, GpuModel] = {
    "nvidia-l4": GpuModel("nvidia-l4", "nvidia", "NVIDIA-L4", 23034 * MIB, 121.0),
    "nvidia-a100-80gb": GpuModel(
        "nvidia-a100-80gb",
        "nvidia",
        "NVIDIA-A100-SXM4-80GB",
        81920 * MIB,
        312.0,
        mig_profiles=("1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    ),
    "nvidia-h100-80gb": GpuModel(
        "nvidia-h100-80gb",
        "nvidia",
        "NVIDIA-H100-80GB-HBM3",
        81559 * MIB,
        989.4,
        mig_profiles=("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    ),
    "nvidia-h200": GpuModel(
        "nvidia-h200",
        "nvidia",
        "NVIDIA-H200",
        143771 * MIB,
        989.4,
        mig_profiles=("1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"),
    ),
    "amd-mi300x": GpuModel(
        # 192 GB HBM3 (decimal, conservative); CPX splits it into 8 logical GPUs (AMD quick-start guide).
        "amd-mi300x",
        "amd",
        "AMD_Instinct_MI300X_OAM",
        192 * 10**9,
        1307.4,
        cpx_partitions=8,
    ),
}

# MIG profile "<g>g.<mem>gb": g of the GPU's 7 compute slices and <mem> GB of memory. Per-GPU counts
# are NVIDIA's MIG user guide figures for the 80 GB / 141 GB parts.
_MIG_PER_GPU = {
    "1g.10gb": 7,
    "1g.20gb": 4,
    "2g.20gb": 3,
    "3g.40gb": 2,
    "4g.40gb": 1,
    "7g.80gb": 1,
    "1g.18gb": 7,
    "1g.35gb": 4,
    "2g.35gb": 3,
    "3g.71gb": 2,
    "4g.71gb": 1,
    "7g.141gb": 1,
}

SLICE_KINDS = ("whole", "mig", "time-sliced", "amd-cpx")


@dataclass(frozen=True)
class GpuSlice:
    """What one pod gets: the resource it asks for, the memory it may plan on, the share of one GPU's
    compute, and the node labels that identify nodes offering this slice (both from the pool's platform)."""

    kind: str
    resource_name: str
    # Memory this pod may plan on (MIG and CPX: the partition; time-sliced: an equal share).
    memory_budget_bytes: int
    # Memory the vLLM process sees as "total" (what --gpu-memory-utilization is a fraction of).
    visible_memory_bytes: int
    compute_share: float
    per_gpu: int  # pods of this slice one physical GPU holds
    # The platform's node labels for this GPU and slice (vendor presence and model included).
    node_labels: tuple[tuple[str, str], ...]
    description: str


class SliceError(ValueError):
    """A slice the GPU (or its platform) cannot offer. `field` is the pool key to change and `example` a value
    that works, so config validation can print a `pulumi config set` that fixes it."""

    def __init__(self, message: str, field: str, example: str | int):
        super().__init__(message)
        self.field = field
        self.example = example


def _geometry(gpu: GpuModel, kind: str, mig_profile: str, shared_replicas: int) -> tuple[int, int, float, int, str]:
    """(memory budget, visible memory, compute share, per GPU, description) of a slice. Raises SliceError."""
    if kind == "whole":
        return gpu.memory_bytes, gpu.memory_bytes, 1.0, 1, f"one whole {gpu.product_label}"
    if kind == "mig":
        if not gpu.mig_profiles:
            raise SliceError(f"{gpu.key} has no MIG; use slice 'whole'", "slice", "whole")
        if mig_profile not in gpu.mig_profiles:
            raise SliceError(
                f"MIG profile {mig_profile!r} is not offered by {gpu.key}; allowed: {', '.join(gpu.mig_profiles)}",
                "migProfile",
                gpu.mig_profiles[0],
            )
        compute_slices = int(mig_profile.split("g.")[0])
        memory = int(mig_profile.split("g.")[1].removesuffix("gb")) * 10**9  # nominal GB, conservative
        per_gpu = _MIG_PER_GPU[mig_profile]
        return (
            memory,
            memory,
            compute_slices / 7,
            per_gpu,
            f"MIG {mig_profile} of a {gpu.product_label} ({per_gpu} per GPU)",
        )
    if kind == "time-sliced":
        if gpu.vendor != "nvidia":
            raise SliceError(
                f"time-slicing is an NVIDIA device-plugin feature; {gpu.key} is {gpu.vendor}",
                "slice",
                "amd-cpx" if gpu.cpx_partitions else "whole",
            )
        if shared_replicas < 2:
            raise SliceError(f"time-sliced pools need sharedReplicas >= 2, got {shared_replicas}", "sharedReplicas", 4)
        # Time-slicing shares compute but does not isolate memory: each replica must stay inside an
        # equal share, which the sizing enforces through --gpu-memory-utilization.
        return (
            gpu.memory_bytes // shared_replicas,
            gpu.memory_bytes,
            1.0 / shared_replicas,
            shared_replicas,
            f"1/{shared_replicas} of a time-sliced {gpu.product_label}",
        )
    if kind == "amd-cpx":
        if not gpu.cpx_partitions:
            raise SliceError(f"{gpu.key} has no CPX compute partitioning; use slice 'whole'", "slice", "whole")
        # NPS4 splits memory into 4 quadrants of 48 GB; two CPX partitions share one, 24 GB each.
        memory = gpu.memory_bytes // gpu.cpx_partitions
        return (
            memory,
            memory,
            1.0 / gpu.cpx_partitions,
            gpu.cpx_partitions,
            f"CPX partition of an {gpu.product_label} ({gpu.cpx_partitions} per GPU)",
        )
    raise SliceError(f"unknown slice kind {kind!r}; allowed: {', '.join(SLICE_KINDS)}", "slice", "whole")


def gpu_slice(
    gpu: GpuModel, kind: str, *, mig_profile: str = "", shared_replicas: int = 0, platform: str = ""
) -> GpuSlice:
    """Build the slice a pool offers on `platform` (default: the GPU vendor's operator). Raises SliceError naming
    the allowed values on bad input."""
    memory, visible, share, per_gpu, description = _geometry(gpu, kind, mig_profile, shared_replicas)
    profile = platform_for(platform, gpu.vendor)
    try:
        profile.check(gpu.key, kind)
    except PlatformError as exc:
        raise SliceError(str(exc), exc.field, exc.example) from exc
    return GpuSlice(
        kind,
        profile.resource_name(kind, mig_profile),
        memory,
        visible,
        share,
        per_gpu,
        profile.node_labels(gpu.key, gpu.product_label, kind, mig_profile, shared_replicas),
        description,
    )
