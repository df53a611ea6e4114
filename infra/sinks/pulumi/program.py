"""The Pulumi program: stack config -> plan -> components -> stack outputs.

`pulumi up` runs infra/__main__.py, which calls `run()`. Everything that decides what is deployed
happens in the pure core (infra.core.config.load, infra.core.plan.build) before the first resource is
registered, so an invalid stack registers nothing and reports every problem in one message.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pulumi
from pulumi.runtime import config as engine

from infra.core.catalog import VARIANTS
from infra.core.config import ConfigError, SecretValue, load
from infra.core.names import PROJECT, common_labels
from infra.core.plan import Plan, PlannedRelease, build, measured_constants
from infra.core.release import secret_refs
from infra.sinks.pulumi.components.platform import Platform, PlatformArgs
from infra.sinks.pulumi.components.secrets import (
    SecretSpec,
    StackSecrets,
    StackSecretsArgs,
)
from infra.sinks.pulumi.components.variant import VariantRelease, VariantReleaseArgs

EXAMPLE_TEXT = "What is climate change?"
LOCAL_PORT = 8000


def engine_config(project: str = PROJECT) -> dict[str, Any]:
    """The stack's config, as the engine passed it, in the shape infra.core.config.load reads.

    Every `<project>:*` key is kept, known or not, so unknown keys are reported too. The engine hands
    the program strings: structured values (set with --path, or YAML mappings and lists in the stack
    file) arrive as JSON, scalars as text, which load() coerces. A secret key becomes a SecretValue
    marker: validation learns that it was given, never its plaintext.
    """
    # The language host fills engine.CONFIG and the secret keys from PULUMI_CONFIG /
    # PULUMI_CONFIG_SECRET_KEYS before the program starts (pulumi-language-python-exec).
    values = {**engine.get_config_env(), **engine.CONFIG.get()}
    secret_keys = set(engine.get_config_secret_keys_env())
    raw: dict[str, Any] = {}
    for key, value in values.items():
        if not key.startswith(f"{project}:"):
            continue  # other namespaces (kubernetes:context, ...) belong to their providers
        if key in secret_keys or engine.is_config_secret(key):
            raw[key] = SecretValue()
        elif isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            try:
                raw[key] = json.loads(value)
            except json.JSONDecodeError:
                raw[key] = value  # load() reports it as the wrong type, with the key and the fix
        else:
            raw[key] = value
    return raw


def secret_specs(plan: Plan) -> list[SecretSpec]:
    """The Secrets this stack creates: only those whose value was set with --secret."""
    s = plan.config.secrets
    given = {"hfToken": s.hf_token_given, "apiKey": s.api_key_given}
    return [SecretSpec(ref.config_key, ref.name, ref.data_key) for ref in secret_refs(s) if given[ref.config_key]]


def curl_example(release: PlannedRelease, namespace: str) -> str:
    """A ready-to-paste request to one variant: port-forward to its Service, then POST
    /v1/embeddings. The API key (if any) is read from its Secret at run time, never printed."""
    port = release.spec.port
    body = {"model": release.served_model_name, "input": [VARIANTS[release.variant].query_prefix + EXAMPLE_TEXT]}
    ns = shlex.quote(namespace)
    headers = "-H 'Content-Type: application/json'"
    api_key = release.spec.api_key
    if api_key.name:
        jsonpath = shlex.quote("{.data." + api_key.data_key + "}")
        headers += (
            f' -H "Authorization: Bearer $(kubectl -n {ns} get secret {shlex.quote(api_key.name)}'
            f' -o jsonpath={jsonpath} | base64 -d)"'
        )
    return (
        f"kubectl -n {ns} port-forward svc/{shlex.quote(release.service_name)} {LOCAL_PORT}:{port} >/dev/null & "
        f"sleep 3; curl -s http://127.0.0.1:{LOCAL_PORT}/v1/embeddings {headers} "
        f"-d {shlex.quote(json.dumps(body))}; kill $!"
    )


def run() -> dict[str, Any]:
    """Register the stack's resources and export what a user needs; returns the exports."""
    env = pulumi.get_stack()
    try:
        plan = build(load(engine_config(), env), measured_constants())
    except ConfigError as exc:
        # RunError: the engine prints the message alone (every problem with its fix), no traceback.
        raise pulumi.RunError(str(exc)) from exc
    cfg = plan.config

    platform = Platform("platform", PlatformArgs(objects=plan.platform))
    needs: list[pulumi.Resource] = [platform]
    specs = secret_specs(plan)
    if specs:
        labels = {**common_labels(cfg.env), "app.kubernetes.io/component": "secret"}
        needs.append(
            StackSecrets("secrets", StackSecretsArgs(namespace=platform.namespace_name, labels=labels, secrets=specs))
        )
    releases = {
        r.variant: VariantRelease(
            r.variant, VariantReleaseArgs(release=r, namespace=platform.namespace_name, depends_on=needs)
        )
        for r in plan.releases
    }

    def curl(release: PlannedRelease) -> pulumi.Output[str]:
        return platform.namespace_name.apply(lambda ns: curl_example(release, ns))

    def variant_outputs(release: PlannedRelease) -> dict[str, Any]:
        component = releases[release.variant]
        return {
            "url": component.url,
            "servedModelName": component.served_model_name,
            "service": component.service_name,
            "curl": curl(release),
        }

    exports: dict[str, Any] = {
        "namespace": platform.namespace_name,
        "variants": {r.variant: variant_outputs(r) for r in plan.releases},
        "curl": curl(plan.releases[0]),  # the first enabled variant (retrieval when it is on)
    }
    for name, value in exports.items():
        pulumi.export(name, value)
    return exports
