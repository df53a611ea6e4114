"""The Pulumi policy pack (policy/): its validators as plain functions with a report closure, and the pack
itself served over gRPC the way the engine talks to it (`pulumi preview --policy-pack policy/`).

The engine run (`pulumi preview --policy-pack policy/...` against the local cluster) is in the e2e tier
(tests/e2e/test_engine.py); here the real pack process answers the engine's Analyze and AnalyzeStack
calls on 127.0.0.1.
"""

from __future__ import annotations

import copy
import select
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from infra.checks.policy import pack, rules
from infra.checks.policy.violations import object_id
from infra.core.paths import REPO_ROOT
from tests.conftest import type_token
from tests.policy.conftest import find


def urn(obj: dict[str, Any]) -> str:
    return f"urn:pulumi:test::jina-embeddings::{type_token(obj)}::{obj['metadata']['name']}"


def resource(obj: dict[str, Any]) -> SimpleNamespace:
    """What the engine hands a validator: the type token, the inputs (no apiVersion/kind needed), the URN."""
    props = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return SimpleNamespace(resource_type=type_token(obj), props=props, urn=urn(obj), name=obj["metadata"]["name"])


class Reports(list):
    def __call__(self, message: str, urn: str | None = None) -> None:
        self.append((message, urn))


# ---------------------------------------------------------------------------------------------
# Validators as plain functions
# ---------------------------------------------------------------------------------------------


def test_manifest_maps_type_tokens_back_to_api_versions():
    def api_version(type_token: str) -> str:
        obj = pack.manifest(type_token, {})
        assert obj is not None, f"{type_token} is a Kubernetes resource"
        return obj["apiVersion"]

    assert api_version("kubernetes:core/v1:Service") == "v1"
    assert api_version("kubernetes:apps/v1:Deployment") == "apps/v1"
    assert api_version("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute") == "gateway.networking.k8s.io/v1"
    assert pack.manifest("kubernetes:helm.sh/v4:Chart", {}) is None
    assert pack.manifest("pulumi:providers:kubernetes", {}) is None
    assert pack.manifest("jina-embeddings:platform:Platform", {}) is None


def test_resource_validators_pass_every_rendered_workload(bundles):
    reports = Reports()
    workloads = [o for objects in bundles.values() for o in objects if o["kind"] in ("Deployment", "Job")]
    for obj in workloads:
        pack.validate_pod_security(resource(obj), reports)
        pack.validate_workload_resources(resource(obj), reports)
    assert reports == [] and len(workloads) > 20


def test_pod_security_validator_reports_a_privileged_pod_by_name(bundles):
    obj = copy.deepcopy(find(bundles["stack:local"], "Deployment"))
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["privileged"] = True
    container["securityContext"].pop("allowPrivilegeEscalation")  # the API server refuses privileged with it false
    reports = Reports()
    pack.validate_pod_security(resource(obj), reports)
    assert [m for m, _ in reports if "[pss.privileged]" in m and object_id(obj) in m], reports


def test_workload_validator_reports_a_gpu_request_that_differs_from_its_limit(bundles):
    obj = copy.deepcopy(find(bundles["stack:prod-amd"], "Deployment"))
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["amd.com/gpu"] = "2"
    reports = Reports()
    pack.validate_workload_resources(resource(obj), reports)
    assert [m for m, _ in reports if "rules.gpu-request-equals-limit" in m]


def test_stack_validators_pass_every_stack(bundles):
    for name in (n for n in bundles if n.startswith("stack:")):
        args = SimpleNamespace(resources=[resource(o) for o in bundles[name]])
        mandatory, advisory = Reports(), Reports()
        pack.validate_stack_mandatory(args, mandatory)
        pack.validate_stack_advisory(args, advisory)
        assert mandatory == [] and advisory == [], (name, mandatory, advisory)


def test_stack_validator_reports_a_missing_default_deny_against_the_namespace_urn(bundle_copy):
    objects = [o for o in bundle_copy("stack:prod") if not o["metadata"]["name"].endswith("default-deny")]
    reports = Reports()
    pack.validate_stack_mandatory(SimpleNamespace(resources=[resource(o) for o in objects]), reports)
    namespace = find(objects, "Namespace")
    assert reports == [(reports[0][0], urn(namespace))] and "[net.default-deny]" in reports[0][0]


def test_unknown_namespaces_in_preview_are_the_stacks_namespace(bundle_copy):
    """Platform objects take their namespace from the Namespace resource's output: unknown in a first preview."""
    objects = bundle_copy("stack:prod")
    for obj in objects:
        if obj["kind"] in ("NetworkPolicy", "Job", "ServiceAccount", "PersistentVolumeClaim"):
            obj["metadata"]["namespace"] = pack.UNKNOWN
    reports = Reports()
    pack.validate_stack_mandatory(SimpleNamespace(resources=[resource(o) for o in objects]), reports)
    pack.validate_stack_advisory(SimpleNamespace(resources=[resource(o) for o in objects]), reports)
    assert reports == []


def test_kube_score_validator_passes_every_stack_and_reports_an_isolated_pod_gone(bundle_copy, bundles):
    for name in (n for n in bundles if n.startswith("stack:")):
        reports = Reports()
        pack.validate_stack_kube_score(SimpleNamespace(resources=[resource(o) for o in bundles[name]]), reports)
        assert reports == [], (name, reports)
    objects = [o for o in bundle_copy("stack:dev") if o["kind"] != "NetworkPolicy"]
    reports = Reports()
    pack.validate_stack_kube_score(SimpleNamespace(resources=[resource(o) for o in objects]), reports)
    deployment = find(objects, "Deployment")
    assert (
        f"{object_id(deployment)}: [kube-score.pod-networkpolicy] The pod does not have a matching NetworkPolicy",
        urn(deployment),
    ) in reports


def test_kube_score_validator_says_plainly_when_the_binary_is_missing(monkeypatch, bundles):
    monkeypatch.setattr(pack.kube_score, "binary", lambda: (_ for _ in ()).throw(pack.kube_score.KubeScoreError("x")))
    reports = Reports()
    pack.validate_stack_kube_score(SimpleNamespace(resources=[resource(o) for o in bundles["stack:dev"]]), reports)
    assert reports == [("generic workload lint not run: x", None)]


def test_every_rule_is_enforced_at_exactly_one_level():
    names = {r.name for r in rules.RULES}
    assert pack.MANDATORY_RULES | pack.ADVISORY_RULES == names and not pack.MANDATORY_RULES & pack.ADVISORY_RULES


# ---------------------------------------------------------------------------------------------
# The pack as the engine runs it: a gRPC Analyzer on 127.0.0.1
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyzer():
    """Start policy/__main__.py from policy/ (as the engine does); it prints its port, then serves."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "__main__.py"],
        cwd=REPO_ROOT / "policy",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs
    if not select.select([proc.stdout], [], [], 60)[0]:  # a hung pack must not hang the suite
        proc.kill()
        pytest.fail("the policy pack printed no port within 60 s")
    try:
        port = int(proc.stdout.readline().strip())
    except ValueError:
        proc.kill()
        pytest.fail(f"the policy pack did not start: {proc.stderr.read()}")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        channel.close()
        proc.terminate()
        proc.wait(timeout=10)


def _request(obj: dict[str, Any]) -> dict[str, Any]:
    props = struct_pb2.Struct()
    props.update({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
    return {"type": type_token(obj), "properties": props, "urn": urn(obj), "name": obj["metadata"]["name"]}


MANDATORY = analyzer_pb2.EnforcementLevel.Value("MANDATORY")


def test_the_served_pack_lists_its_policies_and_levels(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "jina-embeddings-bundle"
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels == {
        "pod-security-restricted": MANDATORY,
        "workload-resources": MANDATORY,
        "bundle-mandatory": MANDATORY,
        "bundle-advisory": analyzer_pb2.EnforcementLevel.Value("ADVISORY"),
        "kube-score": analyzer_pb2.EnforcementLevel.Value("ADVISORY"),
        "kube-score-mandatory": MANDATORY,
        "pod-security-unjudged": analyzer_pb2.EnforcementLevel.Value("ADVISORY"),
    }


def test_the_served_pack_blocks_a_privileged_deployment_and_passes_the_rendered_one(analyzer, bundles):
    clean = find(bundles["stack:prod"], "Deployment")
    assert list(analyzer.Analyze(analyzer_pb2.AnalyzeRequest(**_request(clean))).diagnostics) == []
    bad = copy.deepcopy(clean)
    bad["spec"]["template"]["spec"]["hostNetwork"] = True
    diagnostics = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(**_request(bad))).diagnostics
    # the API server defaults hostPort = containerPort under hostNetwork: two violations
    assert {(d.policyName, d.enforcementLevel) for d in diagnostics} == {("pod-security-restricted", MANDATORY)}
    assert {m for d in diagnostics for m in ("pss.hostNamespaces", "pss.hostPorts") if m in d.message} == {
        "pss.hostNamespaces",
        "pss.hostPorts",
    }


def test_the_served_pack_passes_the_prod_stack_and_blocks_a_route_to_pooling(analyzer, bundle_copy):
    objects = bundle_copy("stack:prod")
    stack = lambda objs: analyzer_pb2.AnalyzeStackRequest(  # noqa: E731
        resources=[analyzer_pb2.AnalyzerResource(**_request(o)) for o in objs]
    )
    assert list(analyzer.AnalyzeStack(stack(objects)).diagnostics) == []
    route = find(objects, "HTTPRoute")
    route["spec"]["rules"][0]["filters"][0]["urlRewrite"]["path"]["replaceFullPath"] = "/pooling"
    diagnostics = analyzer.AnalyzeStack(stack(objects)).diagnostics
    assert [(d.policyName, d.enforcementLevel, d.urn) for d in diagnostics] == [
        ("bundle-mandatory", MANDATORY, urn(route))
    ]
