"""Runs the Pulumi program (infra.sinks.pulumi.program.run) under `pulumi.runtime.set_mocks`, fed a stack's config
the way the engine feeds it, and records every resource registration.

The engine's language host passes config as strings (JSON for mappings and lists), decrypts
`secure:` values and lists their keys as secret (pulumi-language-python-exec: get_config_env,
get_config_secret_keys_env, set_all_config). `engine_form` reproduces that from a stack file, so the
program is tested on exactly what `pulumi up` would hand it.
"""

from __future__ import annotations

import copy
import json
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs

from infra.core.names import PROJECT
from infra.core.paths import REPO_ROOT
from infra.sinks.pulumi import program

# Plaintexts that stand in for `pulumi config set --secret` values; tests grep for them everywhere.
PLAINTEXT = {
    f"{PROJECT}:hfToken": "hf_UnitTestPlaintextToken0123456789abcdefXYZ",
    f"{PROJECT}:apiKey": "sk-unit-test-plaintext-api-key-0123456789",
}
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc._special_sig_key
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # pulumi.runtime.rpc._special_secret_sig


def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}


def _decrypt(key: str, value: Any) -> Any:
    if _is_secure(value):
        return PLAINTEXT.get(key, f"plaintext-of-{key}")
    if isinstance(value, Mapping):
        return {k: _decrypt(key, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decrypt(key, v) for v in value]
    return value


def _has_secure(value: Any) -> bool:
    if _is_secure(value):
        return True
    if isinstance(value, Mapping):
        return any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def engine_form(stack_config: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """A stack file's `config:` mapping -> (config strings, secret keys), as the engine passes them."""
    config, secret_keys = {}, []
    for key, value in stack_config.items():
        if _has_secure(value):
            secret_keys.append(key)
        plain = _decrypt(key, value)
        if isinstance(plain, str):
            config[key] = plain
        elif isinstance(plain, bool):
            config[key] = "true" if plain else "false"
        elif isinstance(plain, (int, float)):
            config[key] = str(plain)
        else:
            config[key] = json.dumps(plain)
    return config, secret_keys


def normalize(value: Any) -> Any:
    """Values as the engine round-trips them: protobuf numbers are doubles, so 8000 comes back 8000.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    return value


class RecordingMocks(pulumi.runtime.Mocks):
    """Echoes inputs as outputs; records every registration. `namespace_output` makes the Namespace
    resource report a different name than it was given, to prove that others take it by reference."""

    def __init__(self, namespace_output: str | None = None) -> None:
        self.registered: list[MockResourceArgs] = []
        self.namespace_output = namespace_output

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        self.registered.append(args)
        state = copy.deepcopy(dict(args.inputs))
        if args.typ == "kubernetes:core/v1:Namespace" and self.namespace_output:
            state["metadata"]["name"] = self.namespace_output
        return f"{args.name}-id", state

    def call(self, args):  # the program makes no provider calls
        return {}


class RecordingMonitor(MockMonitor):
    """Also records each registration's parent and dependencies (URNs), which MockResourceArgs lacks."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.parents: dict[str, str] = {}
        self.dependencies: dict[str, set[str]] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        self.parents[response.urn] = request.parent
        deps = set(request.dependencies)
        for property_deps in request.propertyDependencies.values():
            deps.update(property_deps.urns)
        self.dependencies[response.urn] = deps
        return response


@dataclass
class ProgramRun:
    env: str
    registered: list[MockResourceArgs]
    monitor: RecordingMonitor
    exports: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None

    def of_type(self, typ: str) -> list[MockResourceArgs]:
        return [r for r in self.registered if r.typ == typ]

    def named(self, name: str) -> MockResourceArgs:
        matches = [r for r in self.registered if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name!r}, got {[(r.typ, r.name) for r in matches]}"
        return matches[0]

    def urn(self, name: str) -> str:
        matches = [u for u in self.monitor.parents if u.endswith(f"::{name}")]
        assert len(matches) == 1, f"expected one URN ending ::{name}, got {matches}"
        return matches[0]

    def depends_on(self, name: str) -> set[str]:
        """Names of the resources `name` waits for (explicit depends_on and inputs taken from outputs)."""
        return {u.rsplit("::", 1)[1] for u in self.monitor.dependencies[self.urn(name)]}

    def parent_of(self, name: str) -> str:
        return self.monitor.parents[self.urn(name)].rsplit("::", 1)[1]

    @property
    def charts(self) -> dict[str, MockResourceArgs]:
        """Chart registrations by variant (the VariantRelease component is named after its variant)."""
        return {r.name.removesuffix("-chart"): r for r in self.of_type("kubernetes:helm.sh/v4:Chart")}


def _run_entry_point() -> dict[str, Any]:
    """What the engine does with `main: infra/` (pulumi-language-python-exec: runpy.run_path of the
    program directory, which runs its __main__.py); the exports land on the root Stack."""
    runpy.run_path(str(REPO_ROOT / "infra"), run_name="__main__")
    return dict(pulumi.runtime.settings.get_root_resource().outputs)  # type: ignore[union-attr]


def run_program(
    env: str,
    stack_config: Mapping[str, Any],
    namespace_output: str | None = None,
    expect_error: bool = False,
    entry_point: bool = False,
) -> ProgramRun:
    """Run infra.sinks.pulumi.program.run() for stack `env` with the given stack-file config (entry_point: through
    infra/__main__.py, as the engine does). With expect_error, the program's exception is returned in
    ProgramRun.error (with what was registered before it)."""
    mocks = RecordingMocks(namespace_output)
    monitor = RecordingMonitor(mocks)
    # A fresh root Stack per run, named after this stack (set_mocks keeps an existing root).
    pulumi.runtime.settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=env, preview=False, monitor=monitor)
    config, secret_keys = engine_form(stack_config)
    pulumi.runtime.set_all_config(config, secret_keys)
    exports: dict[str, Any] = {}

    @pulumi.runtime.test
    def program_run():
        return pulumi.Output.from_input(_run_entry_point() if entry_point else program.run()).apply(exports.update)

    error = None
    try:
        program_run()
    except Exception as exc:  # noqa: BLE001 handed to the test, which asserts on it
        if not expect_error:
            raise
        error = exc
    finally:
        pulumi.runtime.set_all_config({}, [])
    if expect_error and error is None:
        raise AssertionError(
            f"stack {env}: the program was expected to fail but registered {len(mocks.registered)} resource(s)"
        )
    return ProgramRun(env, mocks.registered, monitor, exports, error)
