"""Property-based tests (issue 17): bad input never crashes, never drops data, never prints a secret.

Stack files (read_stack_file + load + plan build, through `python -m infra plan`), the chart's values (through
`helm template`), every CLI command's arguments and every suggested `pulumi config set` fix. The only allowed
outcomes are a plan or a clean error: exit 2, one `error:` message naming a key or a file position, no
traceback, nothing written. Profile `ci` (the default) bounds the examples; HYPOTHESIS_PROFILE=long for more.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import re
import shlex
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from infra.cli import build_parser, main
from infra.core.config import ConfigError, SecretValue, load, looks_like_secret
from infra.core.names import PROJECT
from infra.core.paths import REPO_ROOT
from infra.core.plan import build, measured_constants
from infra.core.stackfile import parse_stack_text
from tests.conftest import FUZZ_CASES

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BASE_TEXT = (REPO_ROOT / "Pulumi.prod.yaml").read_text()
BASE = parse_stack_text(BASE_TEXT)


def count(name: str) -> None:
    FUZZ_CASES[name] = FUZZ_CASES.get(name, 0) + 1


def run_cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code if isinstance(exc.code, int) else 2
    return rc, out.getvalue() + err.getvalue()


def assert_clean_error(rc: int, output: str) -> None:
    assert rc == 2, output
    assert "Traceback" not in output, output
    assert "error:" in output, output


# --------------------------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "true", "8192", "-5", "nvidia", "latest", "v0.99.0", "a" * 300, "ünïcödé", "x.y/z"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)


def leaf_paths(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [path] + [p for k, v in value.items() for p in leaf_paths(v, path + (k,))]
    if isinstance(value, list):
        return [path] + [p for i, v in enumerate(value) for p in leaf_paths(v, path + (i,))]
    return [path]


ALL_PATHS = [p for p in leaf_paths(BASE) if p]


def set_at(doc: Any, path: tuple, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


@st.composite
def mutated_configs(draw) -> dict[str, Any]:
    """A valid stack (prod) with one field replaced by a random value, or one key added."""
    path = draw(st.sampled_from(ALL_PATHS))
    if draw(st.booleans()):
        return set_at(BASE, path, draw(values))
    parent = path[:-1]
    target = BASE
    for part in parent:
        target = target[part]
    if not isinstance(target, dict):
        return set_at(BASE, path, draw(values))
    return set_at(BASE, parent + (draw(st.text(min_size=1, max_size=12)),), draw(values))


def dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump({"config": config}, allow_unicode=True, sort_keys=False)


@st.composite
def stack_texts(draw) -> str:
    kind = draw(st.sampled_from(["mutated", "random", "cut", "duplicate", "deep", "garbage"]))
    if kind == "mutated":
        return dump(draw(mutated_configs()))
    if kind == "random":
        return yaml.safe_dump(draw(values), allow_unicode=True)
    if kind == "cut":  # a valid file cut or spliced anywhere: mostly malformed YAML
        i = draw(st.integers(0, len(BASE_TEXT)))
        return BASE_TEXT[:i] + draw(st.sampled_from(["", "{", ":", "\t", "- x", "'", "&a *b", "\n  x: [", "\x07"]))
    if kind == "duplicate":  # a line repeated: a duplicate key at its depth (or a harmless repeat)
        lines = BASE_TEXT.splitlines()
        i = draw(st.integers(0, len(lines) - 1))
        return "\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :]) + "\n"
    if kind == "deep":
        depth = draw(st.integers(1, 200))
        return "config:\n  jina-embeddings:pools: " + "[" * depth + "1" + "]" * depth + "\n"
    return draw(st.text(max_size=200))


# --------------------------------------------------------------------------------------------- stack files


def read_keys(config: dict[str, Any]) -> dict[str, Any]:
    return {k.rpartition(":")[2]: v for k, v in config.items() if k.startswith(f"{PROJECT}:")}


def assert_nothing_lost(config: dict[str, Any], plan) -> None:
    """Every pool, enabled variant and label of the document is in the plan."""
    raw = read_keys(config)
    assert set(map(str, raw.get("pools") or {})) == set(plan.config.pools)
    for name, pool in (raw.get("pools") or {}).items():
        selector = dict(plan.config.pools[str(name)].node_selector)
        for key, value in ((pool or {}).get("nodeSelector") or {}).items():
            assert selector.get(str(key)) == value, (name, key)
    for name, variant in (raw.get("variants") or {}).items():
        enabled = (variant or {}).get("enabled", True) in (True, "true", "True")
        assert (str(name) in plan.config.variants) == enabled, name
    for key in ("clientNamespaces",):
        given_ = ((raw.get("network") or {}).get(key)) or []
        assert list(plan.config.network.client_namespaces) == given_


@given(stack_texts())
@example("config:\n  jina-embeddings:variants: {}\n  jina-embeddings:variants: {}\n")  # issue 17: first one dropped
@example("- a\n- b\n")  # issue 17: AttributeError
@example("config: [a]\n")
@example("config:\n  jina-embeddings:pools: &a [*a]\n")  # a recursive alias
@example("\x08")  # shrunk: a control character raised ReaderError from the loader's constructor
def test_a_stack_file_gives_a_plan_or_a_clean_error(tmp_path_factory, text: str) -> None:
    count("stack files")
    d = tmp_path_factory.mktemp("stack")
    (d / "Pulumi.fuzz.yaml").write_text(text, encoding="utf-8")
    rc, output = run_cli(["plan", "--env", "fuzz", "--stack-dir", str(d), "--json"])
    assert sorted(p.name for p in d.iterdir()) == ["Pulumi.fuzz.yaml"], "nothing may be written"
    if rc == 0:
        plan_json = json.loads(output)
        assert plan_json
        config = parse_stack_text(text)
        assert_nothing_lost(config, build(load(config, "fuzz"), measured_constants()))
        return
    assert_clean_error(rc, output)
    # A message names a config key (jina-embeddings:...) or a position in the file.
    assert re.search(rf"{PROJECT}:|Pulumi\.fuzz\.yaml(:\d+:\d+)?:", output), output


# --------------------------------------------------------------------------------------------- fixes


def _pulumi_path(text: str) -> list[str | int]:
    parts: list[str | int] = []
    for m in re.finditer(r'\.?([^.\[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]', text):
        parts.append(
            m.group(1) if m.group(1) is not None else int(m.group(2)) if m.group(2) else json.loads(m.group(3))
        )
    return parts


def _typed(value: str, typ: str, nested: bool) -> Any:
    """What `pulumi config set` stores: top-level values are strings; with --path, true/false are booleans and
    integers without a leading 0 numbers, unless --type says otherwise."""
    if typ == "string" or not nested:
        return value
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", value):
        return int(value)
    return value


def apply_fix(config: dict[str, Any], fix: str) -> dict[str, Any] | None:
    """`config` after running the fix's `pulumi config` commands, or None when the fix is not a command."""
    # Pulumi reads a key without a namespace as the project's: `0:` is `jina-embeddings:0`.
    config = {(k if ":" in str(k) else f"{PROJECT}:{k}"): copy.deepcopy(v) for k, v in config.items()}
    words = shlex.split(fix, comments=True)
    commands: list[list[str]] = [[]]
    for word in words:
        commands.append([]) if word == "&&" else commands[-1].append(word)
    if not words or words[:2] != ["pulumi", "config"]:
        return None
    for command in commands:
        argv = command
        assert argv[:2] == ["pulumi", "config"], fix
        verb, rest = argv[2], argv[3:]
        typ = rest[rest.index("--type") + 1] if "--type" in rest else ""
        secret = "--secret" in rest
        args = [a for i, a in enumerate(rest) if not a.startswith("--") and (i == 0 or rest[i - 1] != "--type")]
        key = args[0]
        assert key.startswith(f"{PROJECT}:"), fix
        top, *path = _pulumi_path(key[len(PROJECT) + 1 :]) if "--path" in rest else [key[len(PROJECT) + 1 :]]
        full = [key.rpartition(":")[0] + ":" + str(top), *path]
        if verb == "rm":
            target: Any = config
            for part in full[:-1]:
                target = target.get(part) if isinstance(target, dict) else None
                if target is None:
                    break
            else:
                if isinstance(target, dict):
                    target.pop(full[-1], None)
                elif isinstance(target, list) and isinstance(full[-1], int) and full[-1] < len(target):
                    target.pop(full[-1])
            continue
        assert verb == "set", fix
        value = SecretValue() if secret else _typed(args[1], typ, bool(path))
        target = config
        for part, nxt in zip(full[:-1], full[1:], strict=True):
            # A path step through a node of the wrong kind replaces it, as setting a nested path over a scalar,
            # a list (for a name) or a mapping (for an index) would.
            wanted: type = list if isinstance(nxt, int) else dict
            if isinstance(target, list):
                while len(target) <= part:
                    target.append(None)
            if not isinstance(target[part] if isinstance(target, list) else target.get(part), wanted):
                target[part] = wanted()
            target = target[part]
        if isinstance(target, list):
            while len(target) <= full[-1]:
                target.append(None)
        target[full[-1]] = value
    return config


@given(mutated_configs())
@example(set_at(BASE, (f"{PROJECT}:pools", "gpu-h100-mig", "nodeSelector", "zone"), 3))  # issue 17: fix was "true"
@example(set_at(BASE, (f"{PROJECT}:variants", "retrieval", "maxNumBatchedTokens"), -5))
def test_every_suggested_fix_passes_validation(config: dict[str, Any]) -> None:
    count("fixes")
    try:
        load(config, "fuzz")
        return
    except ConfigError as exc:
        problems = exc.problems
    for problem in problems:
        command = problem.fix.split("#")[0].strip()
        # no placeholder such as <value> in place of a value (a key may contain '<' itself)
        assert "--secret" in command or not re.search(r"\s'?<[A-Za-z][^>]*>'?$", command), problem.fix
        fixed = apply_fix(config, problem.fix)
        if fixed is None:
            continue  # an edit of the file (a key that looks like a secret, a pool to rename)
        try:
            load(fixed, "fuzz")
        except ConfigError as again:
            still = [p for p in again.problems if p.path == problem.path and p.message == problem.message]
            assert not still, f"{problem}\n  still after the fix: {still}"


# --------------------------------------------------------------------------------------------- secrets

secret_bodies = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=24, max_size=40
)
secrets = st.one_of(
    st.tuples(st.sampled_from(["hf_", "ghp_", "github_pat_", "sk-", "glpat-", "xoxb-"]), secret_bodies).map("".join),
    secret_bodies.filter(looks_like_secret),
)


@given(mutated_configs(), secrets, st.data())
@example(set_at(BASE, (f"{PROJECT}:namespace",), "x"), "hf_abcdefghijklmnopqrstuvwxyz0123", None)
def test_no_secret_is_ever_printed(tmp_path_factory, config: dict[str, Any], secret: str, data) -> None:
    count("secrets")
    paths = leaf_paths(config)
    if data is None:
        config = set_at(config, (f"{PROJECT}:namespace",), secret)
    else:
        path = data.draw(st.sampled_from([p for p in paths if p]))
        how = data.draw(st.sampled_from(["value", "key", "embedded", "other-namespace"]))
        if how == "other-namespace":
            config = {**config, "kubernetes:token": secret}
        elif how == "key":
            parent = path[:-1]
            target: Any = config
            for part in parent:
                target = target[part]
            config = (
                set_at(config, parent + (secret,), "x") if isinstance(target, dict) else set_at(config, path, secret)
            )
        else:
            config = set_at(config, path, secret if how == "value" else f"prefix {secret} suffix")
    d = tmp_path_factory.mktemp("secret")
    (d / "Pulumi.fuzz.yaml").write_text(dump(config), encoding="utf-8")
    outputs = []
    for extra in ([], ["--json"]):
        rc, output = run_cli(["plan", "--env", "fuzz", "--stack-dir", str(d), *extra])
        outputs.append(output)
    try:
        plan = build(load(config, "fuzz"), measured_constants())
    except ConfigError as exc:
        outputs += [str(exc)] + [str(p) for p in exc.problems]
        plan = None
    if plan is not None:
        from infra.sinks.export import gitops_objects, to_yaml

        outputs += [to_yaml(o) for o in gitops_objects(plan).values()]
        from tests.unit.pulumi_program_harness import run_program

        run = run_program("fuzz", config, expect_error=False)
        outputs.append(repr(run.registered) + repr(run.exports))
    for output in outputs:
        assert secret not in output


# --------------------------------------------------------------------------------------------- chart values


@settings(max_examples=4, deadline=None)
@given(
    st.integers(1, 40),
    st.sampled_from([512, 1000, 8192, 32768]),
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True),
        st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
        max_size=2,
    ),
)
def test_chart_values_render_or_fail_cleanly(replicas: int, max_len: int, labels: dict[str, str]) -> None:
    """Valid values of the typed fields go through `helm template` (the chart's schema and validate.yaml)."""
    from infra.sinks.helm import HelmError, render_release

    count("chart values")
    config = set_at(
        BASE,
        (f"{PROJECT}:variants", "retrieval"),
        {"pool": "gpu-h100-mig", "replicas": replicas, "maxModelLen": max_len},
    )
    pool = BASE[f"{PROJECT}:pools"]["gpu-h100-mig"]
    config = set_at(config, (f"{PROJECT}:pools", "gpu-h100-mig", "nodeSelector"), {**pool["nodeSelector"], **labels})
    config = set_at(config, (f"{PROJECT}:pools", "gpu-h100-mig", "nodes"), 10)
    try:
        plan = build(load(config, "fuzz"), measured_constants())
    except ConfigError as exc:
        assert all(p.path.startswith("variants.retrieval") for p in exc.problems), str(exc)
        return
    try:
        objects = render_release(plan.release("retrieval"))
    except HelmError as exc:
        pytest.fail(f"the chart refused values the config accepted: {exc}")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
    assert all(selector.get(k) == v for k, v in labels.items())


# --------------------------------------------------------------------------------------------- CLI arguments

PARSER = build_parser()
SUBCOMMANDS: dict[str, argparse.ArgumentParser] = dict(
    next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices or {}
)
junk = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)


@st.composite
def argvs(draw) -> list[str]:
    name = draw(st.sampled_from(sorted(SUBCOMMANDS)))
    argv = [name]
    for action in SUBCOMMANDS[name]._actions:
        if action.dest == "help" or not draw(st.booleans() if not action.required else st.just(True)):
            continue
        if not action.option_strings:
            argv.append(draw(st.sampled_from(list(action.choices or ["x"])) | junk))
            continue
        argv.append(action.option_strings[0])
        if action.nargs != 0:
            # Never a real stack: --env/--stack always names a missing one, so nothing can run for real.
            argv.append("no-such-" + draw(junk) if action.dest in ("env", "stack") else draw(junk))
    return argv


@given(argvs())
@example(["alerts", "--env", "no-such-stack", "--out", "x"])
def test_cli_arguments_give_a_clean_error(tmp_path_factory, argv: list[str]) -> None:
    count("cli arguments")
    d = tmp_path_factory.mktemp("cli")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        rc, output = run_cli(argv)
    finally:
        os.chdir(cwd)
    assert "Traceback" not in output, output
    if any(a.startswith("--env") or a == "--stack" for a in argv) or SUBCOMMANDS[argv[0]]._actions[1:] and rc == 2:
        assert rc == 2, (argv, output)
    assert list(d.iterdir()) == [], f"{argv} wrote {list(d.iterdir())}"
