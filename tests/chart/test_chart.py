"""The Helm chart: lint, render every stack and scenario, validate against the Kubernetes schemas,
refuse bad values, and hold the invariants a reviewer checks on every GPU Deployment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from infra.sinks.helm import effective_values, helm_binary, run_helm, template, vllm_args
from tests import kube_schema
from tests.conftest import CHART_DIR, STACKS, objects_of_kind, pin

# Custom resources have no built-in schema; they are validated against their CRDs by the export tests.
CUSTOM_KINDS = {"ServiceMonitor", "ScaledObject", "PrometheusRule", "HTTPRoute"}
SCENARIOS = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
BAD_VALUES = sorted((Path(__file__).parent / "bad-values").glob("*.yaml"))


def render_scenario(path: Path) -> list[dict]:
    return template(CHART_DIR, "jina-embeddings-test", "jina-embeddings", yaml.safe_load(path.read_text()) or {})


def all_renders(rendered_releases) -> dict[str, list[dict]]:
    renders = {f"{env}/{variant}": objs for (env, variant), objs in rendered_releases.items()}
    renders.update({f"ci/{p.name}": render_scenario(p) for p in SCENARIOS})
    return renders


def test_helm_is_the_pinned_version():
    assert pin("HELM_VERSION") in run_helm("version", "--short")


def test_chart_lints_strict_with_every_scenario():
    run_helm("lint", "--strict", str(CHART_DIR))
    for scenario in SCENARIOS:
        run_helm("lint", "--strict", str(CHART_DIR), "--values", str(scenario))


def test_there_are_scenarios_for_each_vendor_metric_and_weight_source():
    values = [yaml.safe_load(p.read_text()) for p in SCENARIOS]
    assert {v.get("gpu", {}).get("vendor", "nvidia") for v in values} == {"nvidia", "amd"}
    assert {"queue", "keda"} <= {v.get("autoscaling", {}).get("metric", "cpu") for v in values}
    assert "pvc" in {v.get("weights", {}).get("source") for v in values}
    assert "base" in {v.get("model", {}).get("servingMode") for v in values}


def test_every_stack_variant_renders(stack_plans, rendered_releases):
    expected = {(env, r.variant) for env, plan in stack_plans.items() for r in plan.releases}
    assert set(rendered_releases) == expected and len(expected) >= len(STACKS) * 2


def test_every_rendered_object_is_valid_in_strict_mode_for_every_supported_version(rendered_releases):
    checked = custom = 0
    for name, objects in all_renders(rendered_releases).items():
        for obj in objects:
            if obj["kind"] in CUSTOM_KINDS:
                custom += 1
                continue
            for version in kube_schema.KUBE_VERSIONS:
                try:
                    kube_schema.validate_builtin(obj, version)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(
                        f"{name}: {obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {version}: {exc.message}"
                    )
                checked += 1
    print(f"\n{checked} object x version validations passed; {custom} custom resources left to the CRD checks")
    assert checked > 0


@pytest.mark.parametrize("bad", BAD_VALUES, ids=[p.stem for p in BAD_VALUES])
def test_bad_values_are_refused_by_helm_template(bad):
    expected = bad.read_text().splitlines()[0].removeprefix("# expect: ")
    proc = subprocess.run(
        [helm_binary(), "template", "t", str(CHART_DIR), "--values", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode != 0, f"{bad.name} was accepted"
    assert expected in proc.stderr, f"{bad.name}: {expected!r} not in:\n{proc.stderr}"
    assert proc.stdout == "", "nothing may be rendered from bad values"


def test_there_are_at_least_ten_bad_values_files():
    assert len(BAD_VALUES) >= 10


def _container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def assert_deployment_invariants(name: str, deployment: dict, values: dict) -> None:
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    res = container["resources"]
    gpu_resource = values["gpu"]["resourceName"]
    assert res["limits"][gpu_resource] == res["requests"][gpu_resource] == str(values["gpu"]["count"]), name
    assert [k for k in res["limits"] if "/" in k] == [gpu_resource], f"{name}: one GPU resource, the pool's"
    assert res["requests"]["memory"] == res["limits"]["memory"] and "ephemeral-storage" in res["requests"], name
    probes = [container.get(p) for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    assert all(probes), f"{name}: all three probes"
    assert len({yaml.safe_dump(p) for p in probes}) == 3, f"{name}: probes are distinct"

    def window(p):
        return p["periodSeconds"] * p["failureThreshold"]

    assert window(container["livenessProbe"]) > window(container["readinessProbe"]), (
        f"{name}: liveness tolerates longer"
    )
    assert not container["image"].endswith((":latest", ":nightly")) and (
        ":v" in container["image"] or "@sha256:" in container["image"]
    ), name
    psc, csc = pod["securityContext"], container["securityContext"]
    assert (
        psc["runAsNonRoot"] is True and psc["runAsUser"] != 0 and psc["seccompProfile"]["type"] == "RuntimeDefault"
    ), name
    assert (
        csc["allowPrivilegeEscalation"] is False
        and csc["capabilities"]["drop"] == ["ALL"]
        and "add" not in csc["capabilities"]
    ), name
    assert csc["readOnlyRootFilesystem"] is values["securityContext"]["readOnlyRootFilesystem"], name
    assert csc["seccompProfile"]["type"] == "RuntimeDefault", name
    skips = deployment["metadata"].get("annotations", {})
    assert any(v.startswith("CKV_K8S_22=") for v in skips.values()) is not csc["readOnlyRootFilesystem"], name
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["shm"]["emptyDir"]["medium"] == "Memory", name
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path in ("/home/vllm", "/tmp", "/dev/shm", "/models"):
        assert path in mounts, f"{name}: {path} is a writable volume"
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False, name
    assert ("replicas" in deployment["spec"]) != values["autoscaling"]["enabled"], f"{name}: replicas only without HPA"
    assert container["args"] == vllm_args(values), f"{name}: rendered args equal infra.sinks.helm.vllm_args"
    assert (
        pod.get("nodeSelector", {}) == values["nodeSelector"] and pod.get("tolerations", []) == values["tolerations"]
    ), name
    if values["gpu"]["vendor"] == "amd":
        assert "rocm" in container["image"] and psc["supplementalGroups"], name


def test_stack_deployments_hold_the_invariants(stack_plans, rendered_releases):
    for env, plan in stack_plans.items():
        for release in plan.releases:
            objects = rendered_releases[(env, release.variant)]
            (deployment,) = objects_of_kind(objects, "Deployment")
            name = f"{env}/{release.variant}"
            assert_deployment_invariants(name, deployment, effective_values(release.spec))
            pool = release.pool
            pod = deployment["spec"]["template"]["spec"]
            # GPU resource, node selector and tolerations are the pool's
            assert release.spec.gpu_resource == pool.slice.resource_name, name
            assert pod["nodeSelector"] == pool.full_node_selector, name
            assert {t["key"] for t in pod["tolerations"]} >= {t.key for t in pool.full_tolerations}, name
            (service,) = objects_of_kind(objects, "Service")
            assert (
                service["metadata"]["name"] != "vllm"
                and service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
            ), name


def test_scenario_deployments_hold_the_invariants():
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for scenario in SCENARIOS:
        values = _merge(defaults, yaml.safe_load(scenario.read_text()) or {})
        (deployment,) = objects_of_kind(render_scenario(scenario), "Deployment")
        assert_deployment_invariants(scenario.name, deployment, values)


def test_autoscaling_objects_follow_the_metric():
    for scenario in SCENARIOS:
        values = yaml.safe_load(scenario.read_text()) or {}
        metric = values.get("autoscaling", {}).get("metric", "cpu")
        enabled = values.get("autoscaling", {}).get("enabled", True)
        kinds = {o["kind"] for o in render_scenario(scenario)}
        assert ("HorizontalPodAutoscaler" in kinds) == (enabled and metric != "keda"), scenario.name
        assert ("ScaledObject" in kinds) == (enabled and metric == "keda"), scenario.name
        assert ("PodDisruptionBudget" in kinds) == enabled, scenario.name


def test_hpa_behavior_is_tuned_for_slow_gpu_start(rendered_releases):
    for name, objects in rendered_releases.items():
        for hpa in objects_of_kind(objects, "HorizontalPodAutoscaler"):
            behavior = hpa["spec"]["behavior"]
            assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300, name
            assert behavior["scaleUp"]["policies"][0]["type"] == "Pods", name


def test_base_mode_passes_the_task_and_merged_mode_does_not(rendered_releases, stack_plans):
    modes = set()
    for env, plan in stack_plans.items():
        for release in plan.releases:
            args = _container(objects_of_kind(rendered_releases[(env, release.variant)], "Deployment")[0])["args"]
            overrides = next(a for a in args if a.startswith("--hf-overrides="))
            mode = release.spec.model.serving_mode
            modes.add(mode)
            assert (f'"jina_task":"{release.variant}"' in overrides) == (mode == "base"), f"{env}/{release.variant}"
            assert '"matryoshka_dimensions":[32,64,128,256,512,768,1024]' in overrides
    assert modes == {"merged", "base"}


def test_kv_cache_bytes_are_rendered_as_an_integer_only_where_the_plan_sets_them(rendered_releases, stack_plans):
    seen = set()
    for env, plan in stack_plans.items():
        for release in plan.releases:
            args = _container(objects_of_kind(rendered_releases[(env, release.variant)], "Deployment")[0])["args"]
            flags = [a for a in args if a.startswith("--kv-cache-memory-bytes=")]
            expected = release.spec.engine.kv_cache_memory_bytes
            # an integer, not Helm's float formatting of a large number (1.7e+09)
            assert flags == ([f"--kv-cache-memory-bytes={expected}"] if expected else []), f"{env}/{release.variant}"
            seen.add(bool(flags))
    assert seen == {True, False}


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def test_no_object_is_named_vllm_whatever_the_release_name():
    # A Service named vllm injects VLLM_PORT=tcp://..., which vLLM refuses. The schema sees only the raw
    # fullnameOverride; release `vllm` with nameOverride `vllm` computes the same name, which the chart checks.
    proc = subprocess.run(
        [helm_binary(), "template", "vllm", str(CHART_DIR), "--set", "nameOverride=vllm"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and proc.stdout == "", "an object named vllm was rendered"
    assert "the objects would be named 'vllm'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("env", STACKS)
def test_ephemeral_storage_covers_every_disk_backed_emptydir_and_the_writable_layer(env, stack_plans):
    """kubelet evicts a pod whose disk use passes its ephemeral-storage limit: the limit must leave room for every
    disk-backed emptyDir at its sizeLimit plus the container's writable layer, or the sizeLimits never apply."""
    from kubernetes.utils import parse_quantity

    from infra.core.plan import measured_constants
    from infra.sinks.helm import render_release

    layer = measured_constants().writable_layer_bytes
    for release in stack_plans[env].releases:
        [deployment] = [o for o in render_release(release) if o["kind"] == "Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        disk = sum(
            parse_quantity(v["emptyDir"]["sizeLimit"])
            for v in pod["volumes"]
            if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory"
        )
        for part in ("requests", "limits"):
            quantity = parse_quantity(pod["containers"][0]["resources"][part]["ephemeral-storage"])
            assert quantity >= disk + layer, (
                f"{env}/{release.variant}: {part} {quantity} < emptyDirs {disk} + layer {layer}"
            )


def test_read_only_root_filesystem_follows_the_pool_and_the_vendor(stack_plans):
    """NVIDIA pools default to a writable root (toolkit 1.20.0's CDI hook aborts container creation on a read-only
    one, NVIDIA/nvidia-container-toolkit#2026); AMD pools to a read-only root; a pool may set either."""
    from infra.core.config import load
    from infra.core.plan import build, measured_constants

    for plan in stack_plans.values():
        for release in plan.releases:
            assert release.spec.read_only_root_filesystem is (release.pool.vendor == "amd"), release.name
    raw = {
        "jina-embeddings:pools": {
            "gpu": {
                "vendor": "nvidia",
                "gpu": "nvidia-h100-80gb",
                "slice": "whole",
                "nodes": 2,
                "readOnlyRootFilesystem": True,
            },
        },
        "jina-embeddings:variants": {"retrieval": {"pool": "gpu"}},
    }
    [release] = build(load(raw, "t"), measured_constants()).releases
    [deployment] = [o for o in render_release_objects(release) if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert not any(v.startswith("CKV_K8S_22=") for v in deployment["metadata"].get("annotations", {}).values())


def render_release_objects(release):
    from infra.sinks.helm import render_release

    return render_release(release)


def test_template_cache_returns_helms_output_and_misses_on_any_changed_input(tmp_path, monkeypatch):
    """infra.sinks.helm keeps `helm template` output by a digest of its inputs: a second render of the same
    inputs runs no helm; another value, release, namespace or chart file renders again; a failure is not kept."""
    import infra.sinks.helm as helm

    monkeypatch.setattr(helm, "HELM_CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv("BUNDLE_HELM_CACHE", raising=False)
    chart = tmp_path / "chart"
    subprocess.run(["cp", "-r", str(CHART_DIR), str(chart)], check=True)
    calls: list[tuple[str, ...]] = []
    real = helm.run_helm

    def counting(*args: str, **kw):
        calls.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(helm, "run_helm", counting)
    values = {"replicaCount": 2}
    first = template(chart, "r", "ns", values)
    assert len(calls) == 1 and len(list((tmp_path / "cache").glob("*.yaml"))) == 1
    assert template(chart, "r", "ns", values) == first and len(calls) == 1  # served from the cache
    template(chart, "r", "ns", {"replicaCount": 3})
    template(chart, "r2", "ns", values)
    template(chart, "r", "ns2", values)
    assert len(calls) == 4
    (chart / "templates" / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n")
    with_extra = template(chart, "r", "ns", values)
    assert "ConfigMap" in {o["kind"] for o in with_extra} and len(calls) == 5
    with pytest.raises(helm.HelmError):
        template(chart, "r", "ns", {"replicaCount": "two"})  # values.schema.json refuses it
    with pytest.raises(helm.HelmError):
        template(chart, "r", "ns", {"replicaCount": "two"})  # ... again: failures are never cached
    assert len(calls) == 7
    monkeypatch.setenv("BUNDLE_HELM_CACHE", "off")
    assert template(chart, "r", "ns", values) == with_extra and len(calls) == 8
