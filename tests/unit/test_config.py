"""Stack config validation: every bad config is refused, naming the key, the value and the fix."""

from __future__ import annotations

import copy
import json

import pytest

from infra.core.config import ConfigError, SecretValue, load
from infra.core.names import PROJECT
from infra.core.plan import build, measured_constants
from infra.core.stackfile import load_stack, read_stack_file, stack_names


def base_config() -> dict:
    """A small valid stack: one NVIDIA pool, two variants."""
    return {
        f"{PROJECT}:namespace": "emb",
        f"{PROJECT}:pools": {
            "gpu-h100": {"vendor": "nvidia", "gpu": "nvidia-h100-80gb", "slice": "whole", "nodes": 2, "gpusPerNode": 8},
        },
        f"{PROJECT}:variants": {
            "retrieval": {"pool": "gpu-h100", "minReplicas": 2, "maxReplicas": 4},
            "classification": {"pool": "gpu-h100", "replicas": 1},
        },
    }


def with_change(path: str, value, delete: bool = False) -> dict:
    """base_config() with `key.sub.sub` set to value (or deleted)."""
    cfg = copy.deepcopy(base_config())
    top, *rest = path.split(".")
    key = f"{PROJECT}:{top}"
    if not rest:
        if delete:
            cfg.pop(key, None)
        else:
            cfg[key] = value
        return cfg
    node = cfg.setdefault(key, {})
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    if delete:
        node.pop(rest[-1], None)
    else:
        node[rest[-1]] = value
    return cfg


# (case id, config, the key path the error must name, a fragment of the explanation)
BAD_CONFIGS = [
    ("unknown-top-level-key", with_change("replicaz", 3), "replicaz", "unknown key"),
    ("namespace-not-dns", with_change("namespace", "Emb_Ns"), "namespace", "DNS label"),
    ("namespace-default", with_change("namespace", "default"), "namespace", "namespace of their own"),
    ("serving-mode-enum", with_change("servingMode", "lora"), "servingMode", "allowed values: merged, base"),
    ("max-model-len-too-long", with_change("maxModelLen", 65536), "maxModelLen", "from 512 to 32768"),
    ("max-model-len-not-number", with_change("maxModelLen", "8k"), "maxModelLen", "whole number"),
    ("no-pools", with_change("pools", None, delete=True), "pools", "at least one GPU pool"),
    (
        "pool-vendor-enum",
        with_change("pools.gpu-h100.vendor", "intel"),
        "pools.gpu-h100.vendor",
        "allowed values: nvidia, amd",
    ),
    ("pool-gpu-unknown", with_change("pools.gpu-h100.gpu", "nvidia-b200"), "pools.gpu-h100.gpu", "allowed values"),
    (
        "pool-gpu-vendor-mismatch",
        with_change("pools.gpu-h100.gpu", "amd-mi300x"),
        "pools.gpu-h100.gpu",
        "is an amd GPU but the pool's vendor is nvidia",
    ),
    (
        "mig-profile-not-offered",
        with_change(
            "pools.gpu-h100", {"vendor": "nvidia", "gpu": "nvidia-h100-80gb", "slice": "mig", "migProfile": "1g.5gb"}
        ),
        "pools.gpu-h100.migProfile",
        "not offered by nvidia-h100-80gb",
    ),
    (
        "time-sliced-one-replica",
        with_change(
            "pools.gpu-h100",
            {"vendor": "nvidia", "gpu": "nvidia-l4", "slice": "time-sliced", "sharedReplicas": 1, "nodes": 4},
        ),
        "pools.gpu-h100.sharedReplicas",
        "sharedReplicas >= 2",
    ),
    ("cpx-on-nvidia", with_change("pools.gpu-h100.slice", "amd-cpx"), "pools.gpu-h100.slice", "no CPX"),
    (
        "amd-pool-without-render-gid",
        with_change("pools.gpu-h100", {"vendor": "amd", "gpu": "amd-mi300x", "nodes": 2}),
        "pools.gpu-h100.renderGroupId",
        "render",
    ),
    (
        "bad-label-key",
        with_change("pools.gpu-h100.nodeSelector", {"bad key!": "x"}),
        'pools.gpu-h100.nodeSelector["bad key!"]',  # pulumi config --path syntax: the fix can be run as is
        "not a valid label key",
    ),
    (
        "bad-toleration-effect",
        with_change("pools.gpu-h100.tolerations", [{"key": "gpu", "effect": "Sometimes"}]),
        "pools.gpu-h100.tolerations[0].effect",
        "NoSchedule",
    ),
    ("image-tag-latest", with_change("pools.gpu-h100.imageTag", "latest"), "pools.gpu-h100.imageTag", "never 'latest'"),
    ("image-tag-too-old", with_change("pools.gpu-h100.imageTag", "v0.31.0"), "pools.gpu-h100.imageTag", ">= v0.32.0"),
    (
        "unknown-variant",
        with_change("variants.reranking", {"pool": "gpu-h100"}),
        "variants.reranking",
        "unknown task variant",
    ),
    (
        "variant-unknown-pool",
        with_change("variants.retrieval.pool", "gpu-h200"),
        "variants.retrieval.pool",
        "not a pool of this stack",
    ),
    ("variant-unknown-key", with_change("variants.retrieval.gpus", 2), "variants.retrieval.gpus", "unknown key"),
    (
        "replicas-and-autoscaling",
        with_change("variants.classification.minReplicas", 2),
        "variants.classification.replicas",
        "not both",
    ),
    (
        "min-not-below-max",
        with_change("variants.retrieval.maxReplicas", 2),
        "variants.retrieval.maxReplicas",
        "greater than minReplicas",
    ),
    (
        "revision-branch",
        with_change("variants.retrieval.revision", "main"),
        "variants.retrieval.revision",
        "40-character",
    ),
    (
        "merged-without-pinned-commit",
        with_change("variants.clustering", {"pool": "gpu-h100", "replicas": 1}),
        "variants.clustering.revision",
        "no pinned commit",
    ),
    (
        "no-variant-enabled",
        with_change("variants", {"retrieval": {"enabled": False}}),
        "variants",
        "no task variant is enabled",
    ),
    (
        "autoscaling-metric-enum",
        with_change("autoscaling.metric", "gpu"),
        "autoscaling.metric",
        "allowed values: cpu, queue, keda",
    ),
    (
        "queue-metric-without-scrape",
        with_change("autoscaling.metric", "queue"),
        "monitoring.serviceMonitor",
        "must scrape the pods",
    ),
    ("offline-with-download", with_change("weights.offline", True), "weights.offline", "pre-populated volume"),
    ("weights-source-enum", with_change("weights.source", "s3"), "weights.source", "allowed values: download, pvc"),
    (
        "pvc-size-not-quantity",
        with_change("weights", {"source": "pvc", "pvcSize": "twenty gigs"}),
        "weights.pvcSize",
        "Kubernetes quantity",
    ),
    (
        "client-namespace-invalid",
        with_change("network.clientNamespaces", ["Search_NS"]),
        "network.clientNamespaces",
        "namespace name",
    ),
    ("plaintext-hf-token", with_change("hfToken", "hf_abcdefghijklmnopqrstuvwxyz0123456789"), "hfToken", "plain text"),
    ("plaintext-unknown-secret-key", with_change("openaiApiKey", "sk-123"), "openaiApiKey", "looks like a secret"),
    ("rollout-enum", with_change("rollout", "recreate"), "rollout", "gpu-constrained, surge"),
    (
        "pool-too-small-for-min-replicas",
        with_change("pools.gpu-h100.nodes", 1)
        | {f"{PROJECT}:variants": {"retrieval": {"pool": "gpu-h100", "replicas": 9}}},
        "pools.gpu-h100.nodes",
        "need 9",
    ),
    (
        "priority-class-value-system-range",
        with_change("priorityClass.value", 2_000_000_000),
        "priorityClass.value",
        "from",
    ),
]


def test_base_config_is_valid():
    cfg = load(base_config(), "test")
    assert list(cfg.variants) == ["retrieval", "classification"]


def test_an_explicit_null_number_takes_the_default():
    cfg = load(with_change("pools.gpu-h100.gpusPerNode", None), "test")
    assert cfg.pools["gpu-h100"].gpus_per_node == 8


@pytest.mark.parametrize("case_id, raw, key, fragment", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_refused_naming_the_key(case_id, raw, key, fragment):
    with pytest.raises(ConfigError) as err:
        load(raw, "test")
    named = [p for p in err.value.problems if p.path == key]
    assert named, f"{case_id}: no problem names {key!r}; got {[p.path for p in err.value.problems]}"
    assert any(fragment in p.message for p in named), f"{case_id}: {fragment!r} not in {[p.message for p in named]}"
    message = str(err.value)
    assert f"{PROJECT}:{key}" in message and "fix: pulumi config" in message


def test_at_least_fifteen_distinct_keys_are_covered():
    assert len({key for _, _, key, _ in BAD_CONFIGS}) >= 15


def test_every_error_is_reported_at_once():
    raw = with_change("namespace", "Bad_NS")
    raw[f"{PROJECT}:servingMode"] = "lora"
    raw[f"{PROJECT}:variants"]["retrieval"]["pool"] = "nope"
    raw[f"{PROJECT}:autoscaling"] = {"metric": "gpu"}
    with pytest.raises(ConfigError) as err:
        load(raw, "test")
    paths = {p.path for p in err.value.problems}
    assert {"namespace", "servingMode", "variants.retrieval.pool", "autoscaling.metric"} <= paths
    assert str(err.value).startswith("stack 'test' has ")


def test_secret_values_are_markers_never_plaintext():
    raw = base_config() | {f"{PROJECT}:hfToken": SecretValue(), f"{PROJECT}:apiKey": SecretValue()}
    cfg = load(raw, "test")
    assert cfg.secrets.hf_token_given and cfg.secrets.api_key_given
    assert cfg.secrets.hf_token_secret_name == f"{PROJECT}-hf-token"
    assert "redacted" in repr(SecretValue())


def test_other_namespaces_config_is_ignored():
    cfg = load(base_config() | {"kubernetes:context": "kind-x"}, "test")
    assert cfg.namespace == "emb"


@pytest.mark.parametrize("env", stack_names())
def test_committed_stacks_are_valid(env):
    cfg = load_stack(env)
    assert cfg.variants, env


def test_stacks_cover_the_environments_and_vendors_the_bundle_promises():
    envs = set(stack_names())
    assert {"dev", "staging", "prod", "prod-amd", "local"} <= envs
    vendors = {env: {p.vendor for p in load_stack(env).pools.values()} for env in envs}
    assert vendors["prod"] == {"nvidia"} and vendors["prod-amd"] == {"amd"} and vendors["local"] == {"nvidia", "amd"}
    slices = {p.slice_kind for env in envs for p in load_stack(env).pools.values()}
    assert {"mig", "time-sliced"} & slices, "at least one stack shares a physical GPU between variants"


@pytest.mark.parametrize(
    "path, value",
    [
        ("hfToken", "hf_plaintextTOKEN1234567890"),  # a known key stored without --secret
        ("weights.apiKey", "sk-plaintext-key-1234567890"),  # an unknown nested key that looks like a secret
        ("secrets.hfToken", "hf_plaintextTOKEN1234567890"),
        ("pools.gpu-h100.password", "hunter2-plaintext-value"),
    ],
)
def test_error_messages_never_print_a_secret_looking_value(path, value):
    with pytest.raises(ConfigError) as err:
        load(with_change(path, value), "test")
    assert any(p.path == path for p in err.value.problems), [p.path for p in err.value.problems]
    assert value not in str(err.value)
    assert f"{PROJECT}:{path} = <redacted>" in str(err.value)


def test_secret_names_are_not_secrets_and_are_shown():
    with pytest.raises(ConfigError) as err:
        load(with_change("secrets.hfTokenSecretName", "Bad_Name"), "test")
    assert "secrets.hfTokenSecretName = 'Bad_Name'" in str(err.value)


@pytest.mark.parametrize(
    "pool, field, fix",
    [
        # time-slicing on AMD: the slice kind is wrong, not the replica count
        (
            {"vendor": "amd", "gpu": "amd-mi300x", "slice": "time-sliced", "sharedReplicas": 4, "renderGroupId": 110},
            "slice",
            "pools.gpu-h100.slice' amd-cpx",
        ),
        # MIG on a GPU without MIG: the fix is another slice kind, not an empty profile
        (
            {"vendor": "nvidia", "gpu": "nvidia-l4", "slice": "mig", "migProfile": "1g.10gb"},
            "slice",
            "pools.gpu-h100.slice' whole",
        ),
        (
            {"vendor": "nvidia", "gpu": "nvidia-h100-80gb", "slice": "mig", "migProfile": "1g.5gb"},
            "migProfile",
            "pools.gpu-h100.migProfile' 1g.10gb",
        ),
    ],
)
def test_an_impossible_slice_names_the_field_to_change_and_a_working_value(pool, field, fix):
    with pytest.raises(ConfigError) as err:
        load(with_change("pools.gpu-h100", pool), "test")
    problems = [p for p in err.value.problems if p.path.startswith("pools.")]
    assert [p.path for p in problems] == [f"pools.gpu-h100.{field}"]
    assert fix in problems[0].fix


def test_variants_on_an_invalid_pool_get_no_misleading_second_error():
    with pytest.raises(ConfigError) as err:
        load(with_change("pools.gpu-h100.vendor", "intel"), "test")
    assert [p.path for p in err.value.problems] == ["pools.gpu-h100.vendor"]


def test_weights_job_uses_the_pools_pinned_image_tag():
    from infra.core.platform_objects import weights_volume

    raw = read_stack_file("prod")
    first_pool = next(iter(raw[f"{PROJECT}:pools"]))
    raw[f"{PROJECT}:pools"][first_pool]["imageTag"] = "v0.34.1"
    jobs = [o for o in weights_volume(load(raw, "prod")) if o["kind"] == "Job"]
    assert [c["image"] for j in jobs for c in j["spec"]["template"]["spec"]["containers"]] == [
        "vllm/vllm-openai:v0.34.1"
    ]


def test_a_slice_too_small_for_the_model_is_refused_when_planned():
    """The fit rule belongs to the sizing (it reads the sizing, which reads the config): the plan raises it."""
    raw = with_change(
        "pools.gpu-h100",
        {"vendor": "nvidia", "gpu": "nvidia-l4", "slice": "time-sliced", "sharedReplicas": 8, "nodes": 4},
    )
    cfg = load(raw, "test")  # a valid config ...
    with pytest.raises(ConfigError) as err:
        build(cfg, measured_constants())  # ... that no plan can size
    named = [p for p in err.value.problems if p.path == "variants.retrieval.pool"]
    assert named and "cannot hold the model" in named[0].message
    assert f"{PROJECT}:variants.retrieval.pool" in str(err.value) and "fix: pulumi config set" in str(err.value)


def test_the_weights_job_is_named_after_what_it_downloads_and_ordered_before_the_servers():
    """A Job's template is immutable: a new revision must be a new Job (Argo CD, Flux and Pulumi then replace it
    instead of failing with "field is immutable"); Argo CD's waves run the platform, then the Job, then the
    releases; the servers wait for the Job's ready marker of their own model."""
    from infra.core.platform_objects import ARGO_SYNC_WAVE, PLATFORM_WAVE, WEIGHTS_WAVE, platform_objects
    from infra.sinks.helm import helm_values

    raw = read_stack_file("prod")

    def job_of(objects):
        [job] = [o for o in objects if o["kind"] == "Job"]
        return job

    plan = build(load(raw, "prod"), measured_constants())
    job = job_of(plan.platform)
    assert job["metadata"]["annotations"][ARGO_SYNC_WAVE] == WEIGHTS_WAVE
    assert {o["metadata"]["annotations"][ARGO_SYNC_WAVE] for o in plan.platform if o["kind"] != "Job"} == {
        PLATFORM_WAVE
    }
    downloads = json.loads(job["spec"]["template"]["spec"]["containers"][0]["command"][-1])
    markers = {marker for _, _, marker in downloads}
    assert markers == {helm_values(r.spec)["weights"]["readyMarker"] for r in plan.releases}
    assert job_of(platform_objects(load(raw, "prod"))) == job  # deterministic

    pinned = copy.deepcopy(raw)
    pinned[f"{PROJECT}:variants"]["retrieval"]["revision"] = "0" * 40
    other = job_of(build(load(pinned, "prod"), measured_constants()).platform)
    assert other["metadata"]["name"] != job["metadata"]["name"]
    assert other["metadata"]["name"].startswith("jina-embeddings-weights-populate-")


def test_the_weights_job_is_the_same_whatever_the_order_of_the_pools():
    """The export reads the pools in the stack file's order, the Pulumi program in sorted order (the engine passes
    the mapping as JSON with sorted keys): the Job, its image and so its name must not depend on it. local has
    an NVIDIA pool first and an AMD pool second, each with its own vLLM image."""
    from infra.core.platform_objects import weights_volume

    raw = read_stack_file("local")
    raw[f"{PROJECT}:weights"] = {"source": "pvc"}
    pools = raw[f"{PROJECT}:pools"]
    assert list(pools) != sorted(pools), "the test needs a stack whose pools are not in sorted order"
    reordered = {**raw, f"{PROJECT}:pools": {name: pools[name] for name in sorted(pools)}}
    jobs = [[o for o in weights_volume(load(r, "local")) if o["kind"] == "Job"] for r in (raw, reordered)]
    assert jobs[0] == jobs[1]
    # the first variant's (retrieval) pool, NVIDIA: its image
    assert jobs[0][0]["spec"]["template"]["spec"]["containers"][0]["image"].startswith("vllm/vllm-openai:")
