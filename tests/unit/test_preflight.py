"""infra.core.preflight: what each stack needs of a cluster (from its rendered objects), and the findings a
snapshot of cluster facts gives. The snapshots are plain dicts in Kubernetes' JSON shapes, built here from the
stack's own simulated nodes (infra.core.simulation) and then broken one fact at a time."""

from __future__ import annotations

import copy
import dataclasses
import json
from fractions import Fraction
from functools import cache
from typing import Any

import pytest

from infra.core import preflight as pf
from infra.core.errors import EXIT_FAILED, EXIT_OK, EXIT_WARNINGS
from infra.core.plan import Plan, build_for_env
from infra.core.simulation import simulated_nodes
from infra.sinks.bundles import plan_objects


@cache
def rendered(env: str) -> tuple[Plan, tuple[dict[str, Any], ...]]:
    plan = build_for_env(env)
    return plan, tuple(plan_objects(plan))


def req_of(env: str, sink: str = "pulumi", plan: Plan | None = None) -> pf.Requirements:
    base, objects = rendered(env)
    return pf.requirements(plan or base, copy.deepcopy(list(objects)), sink=sink)


def apiservice(group: str, version: str, available: bool = True, service: str = "metrics-server") -> dict:
    condition = {"type": "Available", "status": "True" if available else "False"}
    if not available:
        condition |= {"reason": "FailedDiscoveryCheck", "message": "no response from https://10.0.0.1:443"}
    return {
        "metadata": {"name": f"{version}.{group}"},
        "spec": {"group": group, "version": version, "service": {"namespace": "monitoring", "name": service}},
        "status": {"conditions": [condition]},
    }


def healthy(req: pf.Requirements, plan: Plan) -> dict[str, Any]:
    """A cluster with everything the stack needs: every kind served, the metrics APIs Available (listing the
    custom metric), the stack's simulated nodes, its PriorityClass and Secrets, no namespace yet."""
    served: dict[str, list[str]] = {}
    for api_version, kind in req.kinds:
        served.setdefault(api_version, []).append(kind)
    return {
        "server": "https://cluster.example:6443",
        "served": served,
        "apiServices": [
            apiservice("metrics.k8s.io", "v1beta1"),
            apiservice("custom.metrics.k8s.io", "v1beta1", service="prometheus-adapter"),
            apiservice("external.metrics.k8s.io", "v1beta1", service="keda-operator-metrics-apiserver"),
        ],
        "metricNames": {"custom.metrics.k8s.io/v1beta1": ["namespaces/vllm_num_requests_waiting"]}
        | {"custom.metrics.k8s.io/v1beta1": ["pods/vllm_num_requests_waiting"]},
        "nodes": [copy.deepcopy(n) for n in simulated_nodes(plan.config)],  # a pool's nodes share one taint list
        "pods": [],
        "priorityClasses": sorted({w.priority_class for w in req.workloads}),
        "namespace": None,
        "secrets": {s.name: list(s.keys) for s in req.secrets},
        "storageClasses": [{"metadata": {"name": n}} for _, n in req.claims if n]
        + [{"metadata": {"name": "standard", "annotations": {pf.DEFAULT_CLASS_ANNOTATION: "true"}}}],
        "errors": {},
    }


def one(findings: list[pf.Finding], check: str, subject: str) -> pf.Finding:
    matches = [f for f in findings if f.check == check and f.subject == subject]
    assert len(matches) == 1, [f.line() for f in findings]
    return matches[0]


def bad(findings: list[pf.Finding]) -> list[tuple[str, str, str]]:
    return [(f.check, f.subject, f.status) for f in findings if f.status != pf.OK]


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod", "prod-amd"])
def test_every_stack_passes_on_a_cluster_that_has_what_it_needs(env):
    plan, _ = rendered(env)
    req = req_of(env)
    findings = pf.evaluate(req, healthy(req, plan))
    assert bad(findings) == []
    assert pf.exit_code(findings) == EXIT_OK
    assert {f.check for f in findings} >= {"api", "nodes", "capacity", "priority-class", "namespace"}


def test_the_kinds_come_from_the_rendered_objects_not_a_list():
    _, objects = rendered("prod")
    assert set(req_of("prod").kinds) == {(o["apiVersion"], o["kind"]) for o in objects}
    crds = {kind for api, kind in req_of("prod").kinds if pf._api_group(api) not in pf.BUILTIN_GROUPS}
    assert crds == {"ServiceMonitor", "PrometheusRule", "ScaledObject", "HTTPRoute", "NodeOverlay"}
    local = {k for api, k in req_of("local").kinds if pf._api_group(api) not in pf.BUILTIN_GROUPS}
    assert local == {"ServiceMonitor", "PrometheusRule"}  # local turns monitoring on (its runbooks run in e2e)


def test_a_missing_crd_fails_with_where_to_get_it():
    plan, _ = rendered("prod")
    req = req_of("prod")
    snap = healthy(req, plan)
    del snap["served"]["keda.sh/v1alpha1"]
    snap["served"]["monitoring.coreos.com/v1"].remove("PrometheusRule")
    findings = pf.evaluate(req, snap)
    keda = one(findings, "crd", "keda.sh/v1alpha1 ScaledObject")
    assert keda.status == pf.FAIL and "not served" in keda.found and "kedacore/keda" in keda.fix
    rule = one(findings, "crd", "monitoring.coreos.com/v1 PrometheusRule")
    assert rule.status == pf.FAIL and "has no kind PrometheusRule" in rule.found
    assert one(findings, "crd", "monitoring.coreos.com/v1 ServiceMonitor").status == pf.OK
    assert pf.exit_code(findings) == EXIT_FAILED


def test_a_missing_builtin_api_is_named():
    plan, _ = rendered("local")
    req = req_of("local")
    snap = healthy(req, plan)
    del snap["served"]["autoscaling/v2"]
    f = one(pf.evaluate(req, snap), "api", "autoscaling/v2 HorizontalPodAutoscaler")
    assert f.status == pf.FAIL and "upgrade" in f.fix


@pytest.mark.parametrize(
    ("env", "group", "metric"),
    [
        ("local", "metrics.k8s.io", ""),
        ("prod-amd", "custom.metrics.k8s.io", "pods/vllm_num_requests_waiting"),
        ("prod", "external.metrics.k8s.io", ""),
    ],
)
def test_each_autoscaling_metric_needs_its_metrics_api(env, group, metric):
    plan, _ = rendered(env)
    req = req_of(env)
    assert {(m.group, m.metric) for m in req.metrics} == {(group, metric)}
    snap = healthy(req, plan)
    snap["apiServices"] = [s for s in snap["apiServices"] if s["spec"]["group"] != group]
    f = one(pf.evaluate(req, snap), "metrics-api", group)
    assert f.status == pf.FAIL and f.found.startswith(f"no APIService serves {group}")
    assert f.fix == pf.METRICS_API_FIX[group]
    snap["apiServices"].append(apiservice(group, "v1beta1", available=False))
    f = one(pf.evaluate(req, snap), "metrics-api", group)
    assert f.status == pf.FAIL and "not Available (FailedDiscoveryCheck: no response" in f.found


def test_the_custom_metric_must_be_listed_and_is_a_warning_before_the_first_scrape():
    plan, _ = rendered("prod-amd")
    req = req_of("prod-amd")
    snap = healthy(req, plan)
    assert one(pf.evaluate(req, snap), "custom-metric", "pods/vllm_num_requests_waiting").status == pf.OK
    snap["metricNames"] = {"custom.metrics.k8s.io/v1beta1": ["pods/some_other_metric"]}
    findings = pf.evaluate(req, snap)
    f = one(findings, "custom-metric", "pods/vllm_num_requests_waiting")
    assert f.status == pf.WARN and "prometheus-adapter-rules.yaml" in f.fix
    assert pf.exit_code(findings) == EXIT_WARNINGS
    snap["metricNames"] = {}
    snap["errors"] = {"metricNames custom.metrics.k8s.io/v1beta1": "503 Service Unavailable"}
    assert one(pf.evaluate(req, snap), "custom-metric", "pods/vllm_num_requests_waiting").status == pf.UNKNOWN


def test_external_metrics_served_by_another_adapter_is_a_warning_for_keda():
    plan, _ = rendered("prod")
    req = req_of("prod")
    snap = healthy(req, plan)
    snap["apiServices"][2]["spec"]["service"]["name"] = "prometheus-adapter"
    f = one(pf.evaluate(req, snap), "metrics-api", "external.metrics.k8s.io")
    assert f.status == pf.WARN and "monitoring/prometheus-adapter" in f.found


@pytest.mark.parametrize(
    ("tolerations", "taint", "expected"),
    [
        (
            [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "nvidia.com/gpu=x:NoSchedule",
            True,
        ),
        (
            [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}],
            "nvidia.com/gpu=x:NoSchedule",
            False,
        ),
        ([{"key": "nvidia.com/gpu", "operator": "Exists"}], "nvidia.com/gpu=x:NoExecute", True),
        ([{"key": "pool", "operator": "Equal", "value": "a", "effect": "NoSchedule"}], "pool=a:NoSchedule", True),
        ([{"key": "pool", "value": "a"}], "pool=b:NoSchedule", False),
        ([{"operator": "Exists"}], "anything=x:NoExecute", True),
        ([], "amd.com/gpu=present:NoSchedule", False),
    ],
)
def test_toleration_matching_follows_kubernetes(tolerations, taint, expected):
    kv, effect = taint.split(":")
    key, value = kv.split("=")
    assert pf.tolerates(tolerations, {"key": key, "value": value, "effect": effect}) is expected


def test_nodes_without_the_labels_untolerated_taints_or_cordoned_are_not_the_pools():
    plan, _ = rendered("local")
    req = req_of("local")
    snap = healthy(req, plan)
    nvidia = [n for n in snap["nodes"] if n["metadata"]["name"].startswith("gpu-nvidia")]
    for n in nvidia:
        n["spec"]["taints"].append({"key": "dedicated", "value": "training", "effect": "NoSchedule"})
    findings = pf.evaluate(req, snap)
    f = one(findings, "nodes", "pool gpu-nvidia")
    assert f.status == pf.FAIL and "taint dedicated=training:NoSchedule not tolerated" in f.found
    assert "pools.gpu-nvidia.tolerations" in f.fix
    assert not [x for x in findings if x.subject.startswith("pool gpu-nvidia ")], "no capacity line without nodes"
    nvidia[0]["spec"]["taints"].pop()
    nvidia[0]["spec"]["unschedulable"] = True
    assert "cordoned" in one(pf.evaluate(req, snap), "nodes", "pool gpu-nvidia").found
    for n in nvidia:
        del n["metadata"]["labels"]["nvidia.com/gpu.product"]
    f = one(pf.evaluate(req, snap), "nodes", "pool gpu-nvidia")
    assert f.status == pf.FAIL and "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3" in f.found
    assert "pools.gpu-nvidia.nodeSelector" in f.fix


def test_capacity_fails_below_min_replicas_and_warns_below_max_replicas():
    plan, _ = rendered("local")
    req = req_of("local")
    snap = healthy(req, plan)
    subject = "pool gpu-nvidia nvidia.com/gpu"
    f = one(pf.evaluate(req, snap), "capacity", subject)
    assert f.status == pf.OK and f.found == "needs 3 at minReplicas, 4 at maxReplicas; 4 allocatable on 2 node(s)"
    # Another tenant's pod holds one GPU: minReplicas (3) still fit, maxReplicas (4) no longer.
    other = {"nodeName": "gpu-nvidia-0", "namespace": "training", "labels": {}, "requests": {"nvidia.com/gpu": "1"}}
    ours = {"nodeName": "gpu-nvidia-1", "namespace": req.namespace, "labels": {"app.kubernetes.io/part-of": "x"}}
    snap["pods"] = [other, ours | {"requests": {"nvidia.com/gpu": "2"}}]
    f = one(pf.evaluate(req, snap), "capacity", subject)
    assert f.status == pf.WARN and "1 already requested by other pods" in f.found and "maxReplicas" in f.found
    snap["pods"] = []
    snap["nodes"] = [n for n in snap["nodes"] if n["metadata"]["name"] != "gpu-nvidia-1"]
    findings = pf.evaluate(req, snap)
    f = one(findings, "capacity", subject)
    assert f.status == pf.FAIL and "2 allocatable on 1 node(s)" in f.found
    assert pf.exit_code(findings) == EXIT_FAILED


def test_cpu_and_memory_are_checked_per_pod_and_in_total():
    plan, _ = rendered("local")
    req = req_of("local")
    snap = healthy(req, plan)
    for n in snap["nodes"]:
        if n["metadata"]["name"].startswith("gpu-amd"):
            n["status"]["allocatable"]["cpu"] = "2"
        if n["metadata"]["name"].startswith("gpu-nvidia"):
            n["status"]["allocatable"]["memory"] = "8Gi"
    findings = pf.evaluate(req, snap)
    cpu = one(findings, "capacity", "pool gpu-amd cpu")
    assert cpu.status == pf.FAIL and cpu.found.startswith("one pod needs") and "largest node has 2" in cpu.found
    memory = one(findings, "capacity", "pool gpu-nvidia memory")
    assert memory.status == pf.FAIL and "16.0Gi allocatable" in memory.found


def test_the_priority_class_exists_or_the_stack_creates_it():
    plan, objects = rendered("local")
    name = plan.config.priority_class.name
    req = req_of("local")
    snap = healthy(req, plan) | {"priorityClasses": []}
    assert one(pf.evaluate(req, snap), "priority-class", name).found == "created by the stack"
    # priorityClass.create: false renders no PriorityClass; the pods still name it.
    external = pf.requirements(plan, [o for o in copy.deepcopy(list(objects)) if o["kind"] != "PriorityClass"])
    f = one(pf.evaluate(external, snap), "priority-class", name)
    assert f.status == pf.FAIL and "priorityClass.create: true" in f.fix
    assert one(pf.evaluate(external, snap | {"priorityClasses": [name]}), "priority-class", name).status == pf.OK


def test_an_existing_namespace_keeps_or_gets_the_stacks_pod_security_labels():
    plan, objects = rendered("local")
    req = req_of("local")
    ns = copy.deepcopy(next(o for o in objects if o["kind"] == "Namespace"))
    snap = healthy(req, plan) | {"namespace": ns}
    assert one(pf.evaluate(req, snap), "namespace", req.namespace).status == pf.OK
    ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    f = one(pf.evaluate(req, snap), "namespace", req.namespace)
    assert f.status == pf.WARN and "enforce=privileged" in f.found and "--dry-run=server" in f.fix
    ns["status"] = {"phase": "Terminating"}
    assert one(pf.evaluate(req, snap), "namespace", req.namespace).status == pf.FAIL


def test_secrets_must_exist_with_their_keys_unless_pulumi_creates_them():
    plan, _ = rendered("prod")
    req = req_of("prod")
    name = plan.config.secrets.api_key_secret_name
    snap = healthy(req, plan)
    assert one(pf.evaluate(req, snap), "secret", name).status == pf.OK
    snap["secrets"] = {name: ["token"]}
    f = one(pf.evaluate(req, snap), "secret", name)
    assert f.status == pf.FAIL and "lacks key api-key" in f.found
    snap["secrets"] = {}
    f = one(pf.evaluate(req, snap), "secret", name)
    assert f.status == pf.FAIL and f"create secret generic {name} --from-file=api-key=<file>" in f.fix
    given = dataclasses.replace(
        plan,
        config=dataclasses.replace(plan.config, secrets=dataclasses.replace(plan.config.secrets, api_key_given=True)),
    )
    assert one(pf.evaluate(req_of("prod", plan=given), snap), "secret", name).found.startswith("created by `pulumi up`")
    f = one(pf.evaluate(req_of("prod", "gitops", plan=given), snap), "secret", name)
    assert f.status == pf.FAIL and "External Secrets" in f.fix


def test_what_could_not_be_read_is_unknown_and_exits_4():
    plan, _ = rendered("local")
    req = req_of("local")
    snap = healthy(req, plan) | {"nodes": None, "errors": {"nodes": "403 Forbidden"}}
    findings = pf.evaluate(req, snap)
    f = one(findings, "nodes", "pool gpu-nvidia")
    assert f.status == pf.UNKNOWN and "403 Forbidden" in f.found
    assert pf.exit_code(findings) == EXIT_WARNINGS
    report = json.loads(pf.report_json(req, snap["server"], findings))
    assert report["exitCode"] == EXIT_WARNINGS and report["counts"]["unknown"] == 4
    assert {"check", "subject", "status", "found", "fix"} == set(report["findings"][0])


def test_text_has_one_line_per_finding_with_its_fix():
    plan, _ = rendered("prod")
    req = req_of("prod")
    snap = healthy(req, plan) | {"secrets": {}}
    findings = pf.evaluate(req, snap)
    text = pf.render_text(req, snap["server"], findings)
    assert len(text.splitlines()) == len(findings) + 4
    line = one(findings, "secret", plan.config.secrets.api_key_secret_name).line()
    assert line.startswith("fail    secret         jina-embeddings-api-key: missing") and " | fix: kubectl -n " in line
    assert text.splitlines()[-1].endswith("1 fail, 0 unknown")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500m", Fraction(1, 2)),
        ("2", 2),
        ("2Gi", 2 * 2**30),
        ("1.5Gi", 3 * 2**29),
        ("1e3", 1000),
        ("128974848", 128974848),
        ("1k", 1000),
        (4, 4),
    ],
)
def test_quantities_parse_as_kubernetes_does(value, expected):
    assert pf.parse_quantity(value) == expected


def test_a_bad_quantity_names_the_value():
    with pytest.raises(ValueError, match="'12x'"):
        pf.parse_quantity("12x")


def test_pod_requests_default_to_limits_and_cover_init_containers():
    spec = {
        "containers": [
            {"resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "2"}, "requests": {"cpu": "500m"}}},
            {"resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
        ],
        "initContainers": [{"resources": {"requests": {"memory": "4Gi"}}}],
    }
    assert pf.pod_requests(spec) == {"nvidia.com/gpu": 1, "cpu": Fraction(3, 4), "memory": 4 * 2**30}


def test_pod_secrets_cover_volumes_env_envfrom_and_pull_secrets_but_not_optional_ones():
    spec = {
        "volumes": [{"name": "t", "secret": {"secretName": "hf", "items": [{"key": "token", "path": "t"}]}}],
        "containers": [
            {
                "env": [
                    {"name": "K", "valueFrom": {"secretKeyRef": {"name": "api", "key": "api-key"}}},
                    {"name": "O", "valueFrom": {"secretKeyRef": {"name": "opt", "key": "x", "optional": True}}},
                ],
                "envFrom": [{"secretRef": {"name": "bulk"}}],
            }
        ],
        "imagePullSecrets": [{"name": "registry"}],
    }
    assert sorted(pf._pod_secrets(spec)) == [("api", "api-key"), ("bulk", ""), ("hf", "token"), ("registry", "")]


def test_the_weights_claim_needs_its_storage_class_or_a_default_one():
    plan, objects = rendered("prod")
    req = req_of("prod")
    assert [n for _, n in req.claims] == [plan.config.weights.pvc_storage_class] == ["efs-sc"]
    snap = healthy(req, plan)
    assert one(pf.evaluate(req, snap), "storage-class", "efs-sc").status == pf.OK
    snap["storageClasses"] = [c for c in snap["storageClasses"] if c["metadata"]["name"] != "efs-sc"]
    f = one(pf.evaluate(req, snap), "storage-class", "efs-sc")
    assert f.status == pf.FAIL and "would stay Pending" in f.found and "one of: standard" in f.fix
    unnamed = [copy.deepcopy(o) for o in objects]
    for o in unnamed:
        if o["kind"] == "PersistentVolumeClaim":
            del o["spec"]["storageClassName"]
    req_default = pf.requirements(plan, unnamed)
    claim = req_default.claims[0][0]
    assert (
        one(pf.evaluate(req_default, snap), "storage-class", f"default (for {claim})").found
        == "standard is the default"
    )
    snap["storageClasses"][0]["metadata"]["annotations"] = {}
    f = one(pf.evaluate(req_default, snap), "storage-class", f"default (for {claim})")
    assert f.status == pf.FAIL and "weights.pvcStorageClass" in f.fix


def test_a_pool_that_karpenter_launches_warns_when_it_has_no_node_yet_and_others_fail():
    plan, _ = rendered("prod")
    req = req_of("prod")
    assert req.provisioned_pools == frozenset(plan.config.pools)  # prod's pools are eks-karpenter
    snap = healthy(req, plan)
    snap["nodes"] = []
    findings = pf.evaluate(req, snap)
    for pool in plan.config.pools:
        f = one(findings, "nodes", f"pool {pool}")
        assert f.status == pf.WARN and "launches nodes for Pending pods" in f.found and "NodeOverlay" in f.fix
    local_plan, _ = rendered("local")
    local = req_of("local")
    assert local.provisioned_pools == frozenset()  # the GPU Operator on fixed nodes: no node is a failure
    snap = healthy(local, local_plan)
    snap["nodes"] = []
    assert one(pf.evaluate(local, snap), "nodes", "pool gpu-nvidia").status == pf.FAIL
