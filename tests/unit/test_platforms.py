"""GPU platforms (infra.core.platforms): each profile's resource names, selectors, tolerations and prerequisites,
the shipped stacks rendering their platform's names, and bad `platform` / `machineType` config refused."""

from __future__ import annotations

import pytest
import yaml

from infra.core.accelerators import GPU_MODELS, SliceError, gpu_slice
from infra.core.config import ConfigError, load
from infra.core.names import PROJECT
from infra.core.paths import REPO_ROOT
from infra.core.plan import build, build_for_env, measured_constants
from infra.core.platforms import (
    MACHINE_TYPES,
    PLATFORMS,
    Toleration,
    eks_allocatable,
    gke_allocatable,
)
from infra.core.prerequisites import prerequisites
from infra.core.stackfile import load_stack, read_stack_file
from tests.unit.test_config import base_config, with_change

H100, L4, A100, MI300X = (GPU_MODELS[k] for k in ("nvidia-h100-80gb", "nvidia-l4", "nvidia-a100-80gb", "amd-mi300x"))
NVIDIA_TAINT = Toleration(key="nvidia.com/gpu")


def names(platform: str, gpu, kind: str, **kw) -> tuple[str, dict[str, str]]:
    s = gpu_slice(gpu, kind, platform=platform, **kw)
    return s.resource_name, dict(s.node_labels)


# ---------------------------------------------------------------------------------------------
# One test per profile: resource names, node labels, tolerations
# ---------------------------------------------------------------------------------------------


def test_gpu_operator_uses_the_device_plugin_and_gfd_names():
    assert names("gpu-operator", H100, "whole") == (
        "nvidia.com/gpu",
        {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    )
    resource, labels = names("gpu-operator", H100, "mig", mig_profile="1g.10gb")
    assert resource == "nvidia.com/mig-1g.10gb" and labels["nvidia.com/mig.strategy"] == "mixed"
    resource, labels = names("gpu-operator", L4, "time-sliced", shared_replicas=4)
    assert resource == "nvidia.com/gpu.shared"  # renameByDefault: true
    assert labels["nvidia.com/gpu.replicas"] == "4" and labels["nvidia.com/gpu.sharing-strategy"] == "time-slicing"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-L4"  # no -SHARED suffix when the resource is renamed
    assert PLATFORMS["gpu-operator"].tolerations() == (NVIDIA_TAINT,)


def test_gke_offers_every_slice_as_nvidia_gpu_and_selects_gke_labels():
    resource, labels = names("gke", L4, "time-sliced", shared_replicas=4)
    assert resource == "nvidia.com/gpu"
    assert labels == {
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "cloud.google.com/gke-gpu-sharing-strategy": "time-sharing",
        "cloud.google.com/gke-max-shared-clients-per-gpu": "4",
    }
    resource, labels = names("gke", H100, "mig", mig_profile="1g.10gb")
    assert resource == "nvidia.com/gpu" and labels["cloud.google.com/gke-gpu-partition-size"] == "1g.10gb"
    assert names("gke", GPU_MODELS["nvidia-h200"], "whole")[1] == {
        "cloud.google.com/gke-accelerator": "nvidia-h200-141gb"
    }
    assert not any(k.startswith("nvidia.com/") for k in labels), "GKE runs no GPU Feature Discovery"
    assert PLATFORMS["gke"].tolerations() == (NVIDIA_TAINT,)  # GKE's nvidia.com/gpu=present:NoSchedule


def test_eks_karpenter_selects_only_labels_karpenter_knows_before_launch():
    resource, labels = names("eks-karpenter", H100, "mig", mig_profile="1g.10gb")
    assert resource == "nvidia.com/mig-1g.10gb"
    assert labels == {"karpenter.k8s.aws/instance-gpu-name": "h100", "nvidia.com/mig.config": "all-1g.10gb"}
    assert names("eks-karpenter", A100, "whole") == ("nvidia.com/gpu", {"karpenter.k8s.aws/instance-gpu-name": "a100"})
    assert PLATFORMS["eks-karpenter"].tolerations() == (NVIDIA_TAINT,)


def test_aks_selects_the_aks_accelerator_label_and_tolerates_sku_gpu():
    assert names("aks", A100, "whole") == ("nvidia.com/gpu", {"kubernetes.azure.com/accelerator": "nvidia"})
    assert names("aks", A100, "mig", mig_profile="1g.10gb")[0] == "nvidia.com/mig-1g.10gb"
    assert PLATFORMS["aks"].tolerations() == (NVIDIA_TAINT, Toleration(key="sku", operator="Equal", value="gpu"))


def test_amd_gpu_operator_names_partitions_amd_gpu_and_selects_the_partition_label():
    assert names("amd-gpu-operator", MI300X, "amd-cpx") == (
        "amd.com/gpu",
        {
            "feature.node.kubernetes.io/amd-gpu": "true",
            "amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM",
            "amd.com/compute-memory-partition": "cpx_nps4",
        },
    )
    assert "amd.com/compute-memory-partition" not in names("amd-gpu-operator", MI300X, "whole")[1]
    assert PLATFORMS["amd-gpu-operator"].tolerations() == (Toleration(key="amd.com/gpu"),)


@pytest.mark.parametrize(
    "platform, gpu, kind, field",
    [
        ("amd-gpu-operator", MI300X, "time-sliced", "slice"),  # no time-slicing on AMD (a geometry rule)
        ("gke", GPU_MODELS["nvidia-h200"], "amd-cpx", "slice"),
    ],
)
def test_a_slice_the_platform_cannot_offer_is_refused(platform, gpu, kind, field):
    with pytest.raises(SliceError) as exc:
        gpu_slice(gpu, kind, platform=platform)
    assert exc.value.field == field


def test_every_profile_offers_a_resource_of_its_vendor():
    for p in PLATFORMS.values():
        gpu = H100 if p.vendor == "nvidia" else MI300X
        for kind in p.kinds:
            extra = (
                {"mig_profile": "1g.10gb"} if kind == "mig" else {"shared_replicas": 2} if kind == "time-sliced" else {}
            )
            resource = gpu_slice(gpu, kind, platform=p.name, **extra).resource_name
            assert resource.startswith(f"{p.vendor}.com/"), (p.name, kind, resource)


# ---------------------------------------------------------------------------------------------
# Prerequisites per profile (what the export README lists before the first sync)
# ---------------------------------------------------------------------------------------------


def pool_with(platform: str, gpu: str, slice_: str, **extra):
    raw = {"vendor": GPU_MODELS[gpu].vendor, "platform": platform, "gpu": gpu, "slice": slice_, "nodes": 1}
    raw.update(extra)
    if raw["vendor"] == "amd":
        raw["renderGroupId"] = 110
    cfg = load(
        {f"{PROJECT}:pools": {"p": raw}, f"{PROJECT}:variants": {"retrieval": {"pool": "p", "replicas": 1}}}, "t"
    )
    return cfg


def prereq_text(cfg) -> str:
    return "\n".join(f"{p.component}: {p.why}" for p in prerequisites(cfg))


def test_prerequisites_name_what_each_platform_needs():
    text = prereq_text(pool_with("gpu-operator", "nvidia-l4", "time-sliced", sharedReplicas=4, gpusPerNode=1))
    assert "NVIDIA GPU Operator" in text and "renameByDefault: true" in text and "replicas: 4" in text

    text = prereq_text(pool_with("gke", "nvidia-l4", "time-sliced", sharedReplicas=4, gpusPerNode=1))
    assert "not the NVIDIA GPU Operator" in text
    assert "gpu-sharing-strategy=time-sharing,max-shared-clients-per-gpu=4" in text

    text = prereq_text(pool_with("eks-karpenter", "nvidia-h100-80gb", "mig", migProfile="1g.10gb", gpusPerNode=8))
    assert "NodeOverlay" in text and "settings.featureGates.nodeOverlay: true" in text
    assert "nvidia.com/mig.config: all-1g.10gb" in text and "nvidia.com/gpu:NoSchedule" in text
    assert "NodeOverlay" not in prereq_text(pool_with("eks-karpenter", "nvidia-h100-80gb", "whole", gpusPerNode=8))

    text = prereq_text(pool_with("aks", "nvidia-a100-80gb", "mig", migProfile="1g.10gb", gpusPerNode=8))
    assert "--gpu-instance-profile MIG1g" in text and "sku=gpu:NoSchedule" in text

    text = prereq_text(pool_with("amd-gpu-operator", "amd-mi300x", "amd-cpx", gpusPerNode=8))
    assert "`compute-memory-partition` argument" in text and "nodeLabellerArguments" in text
    assert "compute-memory-partition` argument" not in prereq_text(
        pool_with("amd-gpu-operator", "amd-mi300x", "whole", gpusPerNode=8)
    )


def test_eks_karpenter_overlay_carries_a_nodes_count_of_the_slice():
    cfg = pool_with(
        "eks-karpenter",
        "nvidia-h100-80gb",
        "mig",
        migProfile="1g.10gb",
        gpusPerNode=8,
        machineType="p5.48xlarge",
        nodeSelector={"karpenter.sh/nodepool": "gpu-h100-mig"},
    )
    [overlay] = PLATFORMS["eks-karpenter"].cluster_objects(cfg.pools["p"])
    assert overlay["apiVersion"] == "karpenter.sh/v1alpha1" and overlay["kind"] == "NodeOverlay"
    assert overlay["spec"]["capacity"] == {"nvidia.com/mig-1g.10gb": "56"}
    requirements = {r["key"]: r["values"] for r in overlay["spec"]["requirements"]}
    assert requirements == {
        "karpenter.k8s.aws/instance-gpu-name": ["h100"],
        "karpenter.k8s.aws/instance-gpu-count": ["8"],
        "karpenter.sh/nodepool": ["gpu-h100-mig"],
        "node.kubernetes.io/instance-type": ["p5.48xlarge"],
    }
    assert all(r["operator"] == "In" for r in overlay["spec"]["requirements"])


# ---------------------------------------------------------------------------------------------
# Machine types: allocatable and the fit check
# ---------------------------------------------------------------------------------------------


def test_allocatable_follows_the_documented_reservations():
    # GKE: 16 vCPU -> 60 + 10 + 10 + 30 = 110m reserved; 64 GiB -> 1 + 0.8 + 0.8 + 2.88 GiB + 100 MiB.
    cpu, memory = gke_allocatable(MACHINE_TYPES["g2-standard-16"])
    assert cpu == 15890 and memory == int(64 * 2**30 - 5.48 * 2**30 - 100 * 2**20)
    cpu, memory = eks_allocatable(MACHINE_TYPES["p5.48xlarge"])
    assert cpu == 192000 - 60 - 10 - 10 - int(188000 * 0.0025) and memory == 2048 * 2**30 - (11 * 110 + 355) * 2**20


def test_dev_does_not_fit_a_g2_standard_12_and_the_fix_names_one_that_fits():
    raw = read_stack_file("dev", REPO_ROOT)
    raw[f"{PROJECT}:pools"]["gpu-l4-shared"]["machineType"] = "g2-standard-12"
    with pytest.raises(ConfigError) as exc:
        build(load(raw, "dev"), measured_constants())
    [problem] = exc.value.problems
    assert problem.path == "pools.gpu-l4-shared.machineType" and problem.value == "g2-standard-12"
    assert "12000m CPU" in problem.message and "11900m" in problem.message
    assert "machineType' g2-standard-16" in problem.fix


# ---------------------------------------------------------------------------------------------
# The shipped stacks render their platform's names
# ---------------------------------------------------------------------------------------------


def exported(env: str, path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((REPO_ROOT / "manifests" / env / path).read_text()) if d]


def pod_spec(env: str, variant: str) -> dict:
    [deployment] = exported(env, f"{variant}/deployment-jina-embeddings-{variant}.yaml")
    return deployment["spec"]["template"]["spec"]


SHIPPED = {
    # env: (platform of every pool, resource, a label the pods select on)
    "dev": ("gke", "nvidia.com/gpu", ("cloud.google.com/gke-gpu-sharing-strategy", "time-sharing")),
    "staging": ("eks-karpenter", "nvidia.com/mig-1g.10gb", ("karpenter.k8s.aws/instance-gpu-name", "a100")),
    "prod": ("eks-karpenter", "nvidia.com/mig-1g.10gb", ("karpenter.k8s.aws/instance-gpu-name", "h100")),
    "prod-amd": ("amd-gpu-operator", "amd.com/gpu", ("amd.com/compute-memory-partition", "cpx_nps4")),
}


@pytest.mark.parametrize("env", sorted(SHIPPED))
def test_each_shipped_stack_renders_its_platforms_names(env):
    platform, resource, (key, value) = SHIPPED[env]
    cfg = load_stack(env)
    assert {p.platform.name for p in cfg.pools.values()} == {platform}
    assert f"platform: {platform}" in (REPO_ROOT / f"Pulumi.{env}.yaml").read_text(), "the stack names its platform"
    for variant in cfg.variants:
        spec = pod_spec(env, variant)
        [container] = [c for c in spec["containers"] if resource in c["resources"].get("limits", {})]
        assert str(container["resources"]["limits"][resource]) == "1"
        assert spec["nodeSelector"][key] == value
        if platform != "gpu-operator":
            assert not any(k.startswith("nvidia.com/gpu.") for k in spec["nodeSelector"]), "no GFD label"
    readme = (REPO_ROOT / "manifests" / env / "README.md").read_text()
    for need in prerequisites(cfg):
        assert need.component in readme


def test_gke_dev_names_its_machine_type_and_tolerates_gkes_taint():
    spec = pod_spec("dev", "retrieval")
    assert spec["nodeSelector"]["node.kubernetes.io/instance-type"] == "g2-standard-16"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_eks_stacks_export_the_nodeoverlay_karpenter_needs(env):
    plan = build_for_env(env)
    [pool] = plan.config.pools.values()
    [overlay] = exported(env, f"platform/nodeoverlay-jina-embeddings-{pool.name}.yaml")
    assert overlay["spec"]["capacity"] == {"nvidia.com/mig-1g.10gb": str(pool.gpus_per_node * 7)}
    assert (
        f"platform/nodeoverlay-jina-embeddings-{pool.name}.yaml"
        in (REPO_ROOT / "manifests" / env / "kustomization.yaml").read_text()
    )
    assert [o for o in plan.platform if o["kind"] == "NodeOverlay"] == [overlay]


def test_stacks_without_an_unknown_resource_export_no_nodeoverlay():
    for env in ("local", "dev", "prod-amd"):
        assert not [o for o in build_for_env(env).platform if o["kind"] == "NodeOverlay"], env


def test_local_mirrors_the_operators_the_kwok_nodes_simulate():
    cfg = load_stack("local")
    assert {p.vendor: p.platform.name for p in cfg.pools.values()} == {
        "nvidia": "gpu-operator",
        "amd": "amd-gpu-operator",
    }


# ---------------------------------------------------------------------------------------------
# Bad platform / machineType: the key, the value, the allowed values
# ---------------------------------------------------------------------------------------------


def bad(change: dict) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load(change, "t")
    return exc.value


def test_unknown_platform_names_the_field_the_value_and_the_allowed_values():
    err = bad(with_change("pools.gpu-h100.platform", "eks"))
    [problem] = err.problems
    assert (problem.path, problem.value) == ("pools.gpu-h100.platform", "eks")
    assert "allowed values: gpu-operator, gke, eks-karpenter, aks, amd-gpu-operator" in problem.message
    assert problem.fix == f"pulumi config set --path '{PROJECT}:pools.gpu-h100.platform' gpu-operator"


def test_a_platform_of_the_other_vendor_is_refused():
    [problem] = bad(with_change("pools.gpu-h100.platform", "amd-gpu-operator")).problems
    assert problem.path == "pools.gpu-h100.platform"
    assert "nvidia platforms: gpu-operator, gke, eks-karpenter, aks" in problem.message


def test_machine_type_must_be_known_for_the_platform_and_match_the_pool():
    cfg = base_config()
    cfg[f"{PROJECT}:pools"]["gpu-h100"].update(platform="gke", machineType="p5.48xlarge")
    [problem] = bad(cfg).problems
    assert problem.path == "pools.gpu-h100.machineType" and "g2-standard-16" in problem.message

    cfg[f"{PROJECT}:pools"]["gpu-h100"].update(platform="eks-karpenter", machineType="p4de.24xlarge")
    [problem] = bad(cfg).problems
    assert "8 x nvidia-a100-80gb" in problem.message and "p5.48xlarge" in problem.fix

    cfg[f"{PROJECT}:pools"]["gpu-h100"].update(platform="gpu-operator", machineType="p5.48xlarge")
    [problem] = bad(cfg).problems
    assert "gke and eks-karpenter" in problem.message


def test_every_nvidia_model_has_its_gke_and_karpenter_name():
    for gpu in (g for g in GPU_MODELS.values() if g.vendor == "nvidia"):
        assert gpu_slice(gpu, "whole", platform="gke").node_labels
        assert gpu_slice(gpu, "whole", platform="eks-karpenter").node_labels
