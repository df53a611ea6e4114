"""The Pulumi program (infra/sinks/pulumi/program.py + infra/sinks/pulumi/components/) under `pulumi.runtime.set_mocks`, for
every stack: the right resources and counts, wiring (parents, namespace by reference, ordering),
chart values equal to the plan's, the stack outputs, Secrets only when given, and zero resources
on invalid config with every problem in one message.

The plan the program builds from the engine's config is compared with `infra.core.plan.build_for_env`,
which reads the stack file directly as the GitOps export does: both sinks start from one plan.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from infra.core.config import ConfigError, SecretValue
from infra.core.names import PROJECT
from infra.core.plan import Plan, build_for_env
from infra.core.release import DEFAULT_AWAIT_SECONDS
from infra.core.stackfile import stack_file, stack_names
from infra.sinks.bundles import exported_envs
from infra.sinks.export import MANIFESTS_DIR
from infra.sinks.helm import helm_values
from infra.sinks.pulumi.components.platform import RESOURCE_TYPES
from infra.sinks.pulumi.components.variant import deployment_timeouts
from infra.sinks.pulumi.program import engine_config
from tests.conftest import type_token
from tests.unit.pulumi_program_harness import (
    PLAINTEXT,
    SECRET_SIG,
    SECRET_SIG_KEY,
    ProgramRun,
    normalize,
    run_program,
)

STACKS = stack_names()
CHART = "kubernetes:helm.sh/v4:Chart"
SECRET = "kubernetes:core/v1:Secret"
COMPONENTS = {
    "jina-embeddings:platform:Platform",
    "jina-embeddings:secrets:StackSecrets",
    "jina-embeddings:variant:VariantRelease",
}


def stack_config(env: str) -> dict[str, Any]:
    """The `config:` mapping of Pulumi.<env>.yaml, `secure:` entries as written."""
    return yaml.safe_load(stack_file(env).read_text())["config"]


def test_the_engine_entry_point_runs_the_program():
    """`pulumi up` runs infra/__main__.py as a script (main: infra/ in Pulumi.yaml): same resources,
    and the stack outputs are exported on the root stack."""
    direct = run_program("local", stack_config("local"))
    via_main = run_program("local", stack_config("local"), entry_point=True)
    assert sorted((r.typ, r.name) for r in via_main.registered) == sorted((r.typ, r.name) for r in direct.registered)
    assert via_main.exports == direct.exports


def test_every_stack_is_tested():
    assert set(STACKS) >= {"dev", "staging", "prod", "prod-amd", "local"}, STACKS


@pytest.fixture(scope="module", params=STACKS)
def stack(request) -> tuple[str, Plan, ProgramRun]:
    env = request.param
    return env, build_for_env(env), run_program(env, stack_config(env))


def _role(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}"


# ---------------------------------------------------------------------------------------------
# Resources and counts
# ---------------------------------------------------------------------------------------------


def test_resources_and_counts(stack):
    env, plan, run = stack
    got = sorted((r.typ, r.name) for r in run.registered)
    expected = sorted(
        [("jina-embeddings:platform:Platform", "platform")]
        + [(type_token(o), f"platform-{_role(o)}") for o in plan.platform]
        + [("jina-embeddings:variant:VariantRelease", r.variant) for r in plan.releases]
        + [(CHART, f"{r.variant}-chart") for r in plan.releases]
    )
    assert got == expected, f"stack {env}: registered resources differ from the plan"
    # no stack file holds a `secure:` value, so no Secret is created: the chart references names only
    assert run.of_type(SECRET) == [], f"stack {env}: Secrets created without a --secret value"
    assert len(run.of_type(CHART)) == len(plan.config.variants) >= 1


def test_every_planned_kind_is_wired(stack):
    env, plan, _ = stack
    missing = {(o["apiVersion"], o["kind"]) for o in plan.platform} - set(RESOURCE_TYPES)
    assert not missing, f"stack {env}: plan kinds without a Pulumi resource type: {missing}"


def test_components_parent_their_children(stack):
    env, plan, run = stack
    for r in run.registered:
        if r.typ in COMPONENTS:
            assert run.parent_of(r.name) == f"{PROJECT}-{env}", f"{r.typ} {r.name} is not a child of the stack"
            assert not r.custom
        elif r.typ == CHART:
            variant = r.name.removesuffix("-chart")
            assert run.parent_of(r.name) == variant, f"{r.name}: parent {run.parent_of(r.name)}"
        else:
            assert run.parent_of(r.name) == "platform" and r.name.startswith("platform-"), f"{r.typ} {r.name}"


def test_platform_objects_equal_the_plan(stack):
    env, plan, run = stack
    for obj in plan.platform:
        got = normalize(run.named(f"platform-{_role(obj)}").inputs)
        assert got == normalize(obj), f"stack {env}: {obj['kind']}/{obj['metadata']['name']} differs from the plan"


def test_namespace_first_then_everything_namespaced_waits_for_it(stack):
    env, plan, run = stack
    ns_name = f"platform-{_role(plan.platform[0])}"
    assert plan.platform[0]["kind"] == "Namespace"
    assert run.depends_on(ns_name) == set(), "the Namespace waits for nothing"
    for obj in plan.platform[1:]:
        deps = run.depends_on(f"platform-{_role(obj)}")
        if "namespace" in obj["metadata"]:
            assert ns_name in deps, (
                f"stack {env}: {obj['kind']}/{obj['metadata']['name']} does not take the namespace from the Namespace resource"
            )
        else:
            assert ns_name not in deps, f"stack {env}: cluster-scoped {obj['kind']} needlessly waits for the Namespace"
    for obj in plan.platform:
        if obj["kind"] == "Job":
            others = {f"platform-{_role(o)}" for o in plan.platform if o["kind"] != "Job"}
            assert run.depends_on(f"platform-{_role(obj)}") == others, (
                "the weights Job starts after every other platform object"
            )


# ---------------------------------------------------------------------------------------------
# Charts: the plan's values, from the local chart, after the platform
# ---------------------------------------------------------------------------------------------


def test_chart_values_equal_the_plan(stack):
    env, plan, run = stack
    assert set(run.charts) == {r.variant for r in plan.releases}
    for release in plan.releases:
        inputs = run.charts[release.variant].inputs
        assert normalize(inputs["values"]) == helm_values(release.spec), (
            f"stack {env}: chart values of {release.variant} differ from the plan"
        )
        assert inputs["chart"] == str(release.chart_path) and Path(inputs["chart"]).is_dir()
        assert (Path(inputs["chart"]) / "Chart.yaml").exists(), "the chart is the bundle's local chart"
        assert inputs["name"] == release.name
        assert inputs["namespace"] == plan.namespace


def test_charts_wait_for_every_platform_object(stack):
    env, plan, run = stack
    platform = {f"platform-{_role(o)}" for o in plan.platform}
    for release in plan.releases:
        missing = platform - run.depends_on(f"{release.variant}-chart")
        assert not missing, f"stack {env}: chart {release.variant} does not wait for {sorted(missing)}"


def test_no_secret_values_reach_the_charts(stack):
    env, _, run = stack
    for variant, chart in run.charts.items():
        values = chart.inputs["values"]
        for path, ref in (("vllm.apiKey", values["vllm"]["apiKey"]), ("weights.hfToken", values["weights"]["hfToken"])):
            assert set(ref) == {"existingSecret", "key"}, (
                f"stack {env} {variant}: {path} holds more than a Secret reference: {sorted(ref)}"
            )


# ---------------------------------------------------------------------------------------------
# Stack outputs
# ---------------------------------------------------------------------------------------------


def test_outputs(stack):
    env, plan, run = stack
    out = run.exports
    assert set(out) == {"namespace", "variants", "curl"}
    assert out["namespace"] == plan.namespace
    assert list(out["variants"]) == [r.variant for r in plan.releases]
    for release in plan.releases:
        got = out["variants"][release.variant]
        assert {k: got[k] for k in ("url", "servedModelName", "service")} == {
            "url": release.url,
            "servedModelName": release.served_model_name,
            "service": release.service_name,
        }, f"stack {env}: outputs of {release.variant}"
        curl = got["curl"]
        prefix = "Query: " if release.variant == "retrieval" else "Document: "
        for part in (
            f"kubectl -n {plan.namespace} port-forward svc/{release.service_name} 8000:8000",
            "curl -s http://127.0.0.1:8000/v1/embeddings",
            json.dumps({"model": release.served_model_name, "input": [prefix + "What is climate change?"]}),
        ):
            assert part in curl, f"stack {env} {release.variant}: {part!r} missing from the curl output: {curl}"
        api_key_secret = plan.config.secrets.api_key_secret_name
        assert ("Authorization: Bearer" in curl) == bool(api_key_secret), (
            f"stack {env}: API key header iff an API key Secret is referenced"
        )
        if api_key_secret:
            assert f"get secret {api_key_secret} -o jsonpath='{{.data.api-key}}' | base64 -d" in curl
    assert out["curl"] == out["variants"][plan.releases[0].variant]["curl"]


def test_curl_output_runs_as_pasted(tmp_path):
    """Paste the curl output into bash, with kubectl, curl and sleep replaced by recorders on PATH:
    it port-forwards to the first variant's Service, reads the API key from its Secret, and POSTs a
    JSON body naming the served model. (The e2e tier runs it against a real API server.)"""
    run = run_program("prod", stack_config("prod"))
    log = tmp_path / "calls.jsonl"
    stub = (
        f"#!{sys.executable}\n"
        "import json, os, sys, time\n"
        f"open({str(log)!r}, 'a').write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + '\\n')\n"
        "if sys.argv[1:3] == ['-n', 'jina-embeddings'] and 'get' in sys.argv: print('c2VydmluZy1rZXk=')\n"
        "if 'port-forward' in sys.argv: time.sleep(30)\n"
        # `sleep 3` gives the real port-forward time to start; the recorder waits until the
        # port-forward recorder has logged, or a loaded machine could kill it before it writes.
        f"while os.path.basename(sys.argv[0]) == 'sleep' and 'port-forward' not in open({str(log)!r}).read(): time.sleep(0.05)\n"
    )
    for tool in ("kubectl", "curl", "sleep"):
        (tmp_path / tool).write_text(stub)
        (tmp_path / tool).chmod(0o755)
    proc = subprocess.run(
        ["bash", "-c", run.exports["curl"]],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert ["kubectl", "-n", "jina-embeddings", "port-forward", "svc/jina-embeddings-retrieval", "8000:8000"] in calls
    assert [
        "kubectl",
        "-n",
        "jina-embeddings",
        "get",
        "secret",
        "jina-embeddings-api-key",
        "-o",
        "jsonpath={.data.api-key}",
    ] in calls
    curl = next(c for c in calls if c[0] == "curl")
    assert curl[1:3] == ["-s", "http://127.0.0.1:8000/v1/embeddings"]
    assert "Authorization: Bearer serving-key" in curl
    body = json.loads(curl[curl.index("-d") + 1])
    assert body == {
        "model": "jinaai/jina-embeddings-v5-text-small-retrieval",
        "input": ["Query: What is climate change?"],
    }


def test_namespace_flows_by_reference():
    """The Namespace resource reports another name than planned: everything else must follow it."""
    run = run_program("dev", stack_config("dev"), namespace_output="renamed-by-the-engine")
    plan = build_for_env("dev")
    for obj in plan.platform:
        inputs = run.named(f"platform-{_role(obj)}").inputs
        if obj["kind"] != "Namespace" and "namespace" in obj["metadata"]:
            assert inputs["metadata"]["namespace"] == "renamed-by-the-engine", (
                f"{obj['kind']} took the namespace as a string"
            )
    assert {c.inputs["namespace"] for c in run.charts.values()} == {"renamed-by-the-engine"}
    assert run.exports["namespace"] == "renamed-by-the-engine"
    assert all(".renamed-by-the-engine.svc:" in v["url"] for v in run.exports["variants"].values())
    assert "kubectl -n renamed-by-the-engine " in run.exports["curl"]


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------


def _with_secrets(env: str, **extra: Any) -> dict[str, Any]:
    config = stack_config(env)
    config[f"{PROJECT}:hfToken"] = {"secure": "v1:AAAAunit-test-ciphertext-hf"}
    config[f"{PROJECT}:apiKey"] = {"secure": "v1:AAAAunit-test-ciphertext-key"}
    config.update(extra)
    return config


def test_secret_values_become_kubernetes_secrets_only_when_given(capfd, caplog):
    run = run_program("dev", _with_secrets("dev"))
    plan = build_for_env("dev")
    secrets = {s.inputs["metadata"]["name"]: s for s in run.of_type(SECRET)}
    assert set(secrets) == {"jina-embeddings-hf-token", "jina-embeddings-api-key"}
    for name, config_key, data_key in (
        ("jina-embeddings-hf-token", "hfToken", "token"),
        ("jina-embeddings-api-key", "apiKey", "api-key"),
    ):
        secret = secrets[name]
        assert run.parent_of(secret.name) == "secrets"
        assert secret.inputs["metadata"]["namespace"] == plan.namespace
        assert "platform-namespace-jina-embeddings-dev" in run.depends_on(secret.name)
        assert secret.inputs["type"] == "Opaque"
        # stringData reaches the engine wrapped as a secret: encrypted in state, masked in logs
        wrapped = secret.inputs["stringData"]
        assert wrapped[SECRET_SIG_KEY] == SECRET_SIG, f"{name}: stringData is not marked secret"
        assert wrapped["value"] == {data_key: PLAINTEXT[f"{PROJECT}:{config_key}"]}
        assert "data" not in secret.inputs
    for variant, chart in run.charts.items():
        values = chart.inputs["values"]
        assert values["weights"]["hfToken"] == {"existingSecret": "jina-embeddings-hf-token", "key": "token"}, variant
        assert values["vllm"]["apiKey"] == {"existingSecret": "jina-embeddings-api-key", "key": "api-key"}, variant
        assert {s.name for s in secrets.values()} <= run.depends_on(chart.name), (
            f"{variant} does not wait for the Secrets"
        )

    # The plaintext is nowhere but inside those two secret-wrapped inputs.
    others = [r for r in run.registered if r.typ != SECRET]
    dumps = {
        "other resources' inputs": json.dumps([r.inputs for r in others], default=str),
        "stack outputs": json.dumps(run.exports),
        "program stdout/stderr": "".join(capfd.readouterr()),
        "log records": caplog.text,
    }
    for where, text in dumps.items():
        for plaintext in PLAINTEXT.values():
            assert plaintext not in text, f"a secret's plaintext appears in {where}"


def test_secret_names_can_be_chosen():
    run = run_program(
        "dev",
        _with_secrets(
            "dev", **{f"{PROJECT}:secrets": {"hfTokenSecretName": "hub-token", "apiKeySecretName": "serving-key"}}
        ),
    )
    assert sorted(s.inputs["metadata"]["name"] for s in run.of_type(SECRET)) == ["hub-token", "serving-key"]
    values = run.charts["retrieval"].inputs["values"]
    assert values["weights"]["hfToken"]["existingSecret"] == "hub-token"
    assert values["vllm"]["apiKey"]["existingSecret"] == "serving-key"


def test_weights_job_mounts_the_created_hf_token_secret():
    run = run_program("prod", _with_secrets("prod"))
    [job_args] = [r for r in run.registered if r.name.startswith("platform-job-jina-embeddings-weights-populate-")]
    job = job_args.inputs
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["hf-token"]["secret"]["secretName"] == "jina-embeddings-hf-token"
    assert "jina-embeddings-hf-token" in {s.inputs["metadata"]["name"] for s in run.of_type(SECRET)}


def test_engine_config_marks_secrets_and_parses_structured_values(monkeypatch):
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_SECRET_KEYS", raising=False)
    pulumi.runtime.set_all_config(
        {
            f"{PROJECT}:namespace": "ns",
            f"{PROJECT}:maxModelLen": "8192",
            f"{PROJECT}:variants": '{"retrieval": {"pool": "p"}}',
            f"{PROJECT}:network": '{"clientNamespaces": ["a"]}',
            f"{PROJECT}:hfToken": PLAINTEXT[f"{PROJECT}:hfToken"],
            f"{PROJECT}:typo": "x",
            "kubernetes:context": "prod-cluster",
        },
        [f"{PROJECT}:hfToken"],
    )
    try:
        raw = engine_config()
    finally:
        pulumi.runtime.set_all_config({}, [])
    assert raw == {
        f"{PROJECT}:namespace": "ns",
        f"{PROJECT}:maxModelLen": "8192",
        f"{PROJECT}:variants": {"retrieval": {"pool": "p"}},
        f"{PROJECT}:network": {"clientNamespaces": ["a"]},
        f"{PROJECT}:hfToken": SecretValue(),
        f"{PROJECT}:typo": "x",  # kept: load() reports unknown keys
    }
    assert PLAINTEXT[f"{PROJECT}:hfToken"] not in repr(raw)


def test_engine_config_reads_the_language_hosts_environment(monkeypatch):
    """Without set_all_config (older language hosts), config comes from PULUMI_CONFIG."""
    pulumi.runtime.set_all_config({}, [])
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({f"{PROJECT}:namespace": "from-env", f"{PROJECT}:apiKey": "plain"}))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps([f"{PROJECT}:apiKey"]))
    assert engine_config() == {f"{PROJECT}:namespace": "from-env", f"{PROJECT}:apiKey": SecretValue()}


# ---------------------------------------------------------------------------------------------
# Invalid config: nothing registered, every problem in one message
# ---------------------------------------------------------------------------------------------


def test_invalid_config_registers_nothing_and_lists_every_problem():
    config = stack_config("dev")
    config[f"{PROJECT}:namespace"] = "Not_A_Label"
    config[f"{PROJECT}:replicaz"] = 3
    config[f"{PROJECT}:autoscaling"] = {"metric": "gpu"}
    config[f"{PROJECT}:hfToken"] = "hf_PlaintextInTheStackFile0123456789"
    config[f"{PROJECT}:variants"] = copy.deepcopy(config[f"{PROJECT}:variants"])
    config[f"{PROJECT}:variants"]["retrieval"]["pool"] = "no-such-pool"
    run = run_program("dev", config, expect_error=True)

    assert run.registered == [], (
        f"resources registered from invalid config: {[(r.typ, r.name) for r in run.registered]}"
    )
    assert isinstance(run.error, pulumi.RunError)
    assert isinstance(run.error.__cause__, ConfigError)
    problems = {p.path for p in run.error.__cause__.problems}
    assert problems == {"namespace", "replicaz", "autoscaling.metric", "hfToken", "variants.retrieval.pool"}
    message = str(run.error)
    assert "5 invalid config value(s)" in message
    for path in problems:
        assert f"{PROJECT}:{path} = " in message, f"{path} missing from: {message}"
    assert message.count("fix: ") == 5
    assert "hf_PlaintextInTheStackFile0123456789" not in message, "the message must not echo a plaintext secret"


def test_an_unknown_gpu_platform_registers_nothing():
    config = stack_config("prod")
    config[f"{PROJECT}:pools"] = copy.deepcopy(config[f"{PROJECT}:pools"])
    config[f"{PROJECT}:pools"]["gpu-h100-mig"]["platform"] = "eks"
    run = run_program("prod", config, expect_error=True)
    assert run.registered == []
    assert isinstance(run.error, pulumi.RunError) and isinstance(run.error.__cause__, ConfigError)
    [problem] = run.error.__cause__.problems
    assert (problem.path, problem.value) == ("pools.gpu-h100-mig.platform", "eks")
    assert "allowed values: gpu-operator, gke, eks-karpenter, aks, amd-gpu-operator" in str(run.error)


@pytest.mark.parametrize("env", STACKS)
def test_every_stack_rejects_bad_config_before_registering(env):
    config = stack_config(env)
    config[f"{PROJECT}:maxModelLen"] = 100
    config[f"{PROJECT}:unknownKey"] = "x"
    run = run_program(env, config, expect_error=True)
    assert run.registered == []
    assert isinstance(run.error, pulumi.RunError)
    assert isinstance(run.error.__cause__, ConfigError)
    assert {p.path for p in run.error.__cause__.problems} >= {"maxModelLen", "unknownKey"}
    assert re.search(rf"{PROJECT}:maxModelLen = 100: must be from \d+ to \d+", str(run.error))


# ---------------------------------------------------------------------------------------------
# Deployment await timeouts (a transform on each chart)
# ---------------------------------------------------------------------------------------------


def test_rollout_await_covers_a_rollout_one_pod_at_a_time(stack):
    env, plan, _ = stack
    for release in plan.releases:
        v = helm_values(release.spec)
        window = v["probes"]["startup"]["periodSeconds"] * v["probes"]["startup"]["failureThreshold"]
        replicas = v["autoscaling"]["maxReplicas"] if v["autoscaling"]["enabled"] else v["replicaCount"]
        seconds = release.spec.rollout_await_seconds
        assert seconds >= DEFAULT_AWAIT_SECONDS
        if v["rollout"]["maxSurge"] + v["rollout"]["maxUnavailable"] == 1:
            assert seconds >= replicas * window, f"stack {env} {release.variant}: {seconds}s < {replicas} x {window}s"


def test_deployment_timeouts_apply_to_deployments_only():
    transform = deployment_timeouts(1234)

    def args(type_: str) -> pulumi.ResourceTransformArgs:
        return pulumi.ResourceTransformArgs(
            custom=True, type_=type_, name="x", props={"a": 1}, opts=pulumi.ResourceOptions()
        )

    result = transform(args("kubernetes:apps/v1:Deployment"))
    assert result is not None and result.opts.custom_timeouts is not None
    assert result.props == {"a": 1}
    assert (result.opts.custom_timeouts.create, result.opts.custom_timeouts.update) == ("1234s", "1234s")
    assert transform(args("kubernetes:core/v1:Service")) is None
    run = run_program("local", stack_config("local"))
    assert all(len(chart.transforms) == 1 for chart in run.charts.values())


# ---------------------------------------------------------------------------------------------
# The other sink: the GitOps export writes the same values
# ---------------------------------------------------------------------------------------------


def export_differences(run: ProgramRun, export_dir: Path) -> list[str]:
    """Where manifests/<env>/ (values/<variant>.yaml, platform/ and weights/<kind>-<name>.yaml) differs from what the
    mocked program hands the engine: the chart values and the platform objects' inputs."""
    problems = []
    values_files = {p.stem: p for p in (export_dir / "values").glob("*.yaml")}
    if set(values_files) != set(run.charts):
        problems.append(f"exported values for {sorted(values_files)}, charts for {sorted(run.charts)}")
    for variant in sorted(set(values_files) & set(run.charts)):
        if yaml.safe_load(values_files[variant].read_text()) != normalize(run.charts[variant].inputs["values"]):
            problems.append(f"values/{variant}.yaml differs from the values `pulumi up` passes to the {variant} chart")
    platform = {r.name.removeprefix("platform-"): r for r in run.registered if r.name.startswith("platform-")}
    platform_files = {p.stem: p for d in ("platform", "weights") for p in (export_dir / d).glob("*.yaml")}
    if set(platform_files) != set(platform):
        problems.append(f"exported platform objects {sorted(platform_files)}, Pulumi resources {sorted(platform)}")
    for role in sorted(set(platform_files) & set(platform)):
        if yaml.safe_load(platform_files[role].read_text()) != normalize(platform[role].inputs):
            problems.append(f"platform/{role}.yaml differs from the {platform[role].typ} `pulumi up` registers")
    return problems


@pytest.mark.parametrize("env", STACKS)
def test_pulumi_and_the_gitops_export_agree(env):
    assert env in exported_envs(), f"manifests/{env}/ is missing: run `make export`"
    run = run_program(env, stack_config(env))
    assert export_differences(run, MANIFESTS_DIR / env) == [], f"stack {env}: the two sinks disagree; run `make export`"


def test_a_stale_export_is_caught(tmp_path):
    stale = tmp_path / "dev"
    shutil.copytree(MANIFESTS_DIR / "dev", stale)
    values = yaml.safe_load((stale / "values" / "retrieval.yaml").read_text())
    values["vllm"]["maxNumSeqs"] += 1
    (stale / "values" / "retrieval.yaml").write_text(yaml.safe_dump(values))
    (stale / "platform" / "serviceaccount-jina-embeddings-server.yaml").unlink()
    problems = export_differences(run_program("dev", stack_config("dev")), stale)
    assert any("values/retrieval.yaml differs" in p for p in problems), problems
    assert any("serviceaccount-jina-embeddings-server" in p for p in problems), problems
