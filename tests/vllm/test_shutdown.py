"""Shutdown under load, last in the tier (it stops both servers).

1. The kubelet's sequence for the rendered pod (amd-merged): the pod is deleted while requests are in flight,
   so it leaves the Service's endpoints (no new requests) and the preStop hook runs (sleep, from the spec); then
   SIGTERM. Every in-flight request completes, vLLM drains (`mode=drain`) and exits within --shutdown-timeout,
   and preStop + exit fit inside terminationGracePeriodSeconds.
2. SIGTERM straight into requests in flight (nvidia-base), the issue's literal check. vLLM 0.32.0 drains the
   engine, but a pooling request whose engine work finishes during the drain gets HTTP 500 "cannot schedule new
   futures after shutdown": the API server's renderer thread pool (vllm/renderers/base.py) is shut down when the
   shutdown starts, and the embeddings post-processing is submitted to it. vLLM 0.33.0 has the same code. Kept as
   a strict xfail: it turns red when a vLLM pin fixes it. The rendered preStop sleep is what protects clients.
"""

from __future__ import annotations

import time

import pytest

from tests.vllm.conftest import TEXTS
from tests.vllm.harness import Burst, Server

SLACK_S = 5  # process teardown after the drain (engine core, API server) on a busy 2-core machine


def start_load(s: Server, requests: int, inputs: int) -> tuple[Burst, float]:
    """Concurrent requests of distinct inputs (a shared prefix would come from vLLM's prefix cache almost for
    free); returns once the engine has a queue."""
    texts = [f"{i} {' '.join(TEXTS) * 12}" for i in range(requests * inputs)]
    burst = Burst(s).start_each([texts[i * inputs : (i + 1) * inputs] for i in range(requests)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, text = s.request("GET", "/metrics", timeout=10)
        queued = sum(
            float(line.rsplit(" ", 1)[1])
            for line in str(text).splitlines()
            if line.startswith("vllm:num_requests_waiting{")
        )
        if queued > 0:
            return burst, queued
        time.sleep(0.2)
    raise AssertionError("the engine never had a queue within 60 s")


def test_pod_deletion_drains_in_flight_requests_and_exits_in_time(servers):
    s = servers["amd-merged"]
    spec = s.spec
    assert spec.shutdown_timeout_s > 0, "no --shutdown-timeout: vLLM would abort in-flight requests at once"
    requests = 16
    burst, queued = start_load(s, requests, 2)
    in_flight_at_deletion = requests - len(burst.results)
    assert in_flight_at_deletion > 0, "every request had finished before the pod was deleted"
    time.sleep(spec.pre_stop_sleep_s)  # preStop: the kubelet waits, the endpoints controller removes the pod
    in_flight_at_sigterm = requests - len(burst.results)
    t0 = time.monotonic()
    s.terminate()
    s.proc.wait(timeout=spec.grace_s)
    exit_s = time.monotonic() - t0
    burst.join(timeout=30)
    statuses = [st for st, _ in burst.results]
    print(
        f"\n[vllm-tier] pod deletion with {in_flight_at_deletion} of {requests} requests in flight ({queued:.0f} inputs queued), "
        f"preStop {spec.pre_stop_sleep_s} s, then SIGTERM with {in_flight_at_sigterm} in flight: exit code {s.proc.returncode} after "
        f"{exit_s:.1f} s (--shutdown-timeout {spec.shutdown_timeout_s} s, grace {spec.grace_s} s); statuses {sorted(set(map(str, statuses)))}"
    )
    assert "mode=drain" in s.log_text(), "vLLM did not drain on SIGTERM"
    assert len(statuses) == requests and set(statuses) == {200}, statuses
    assert exit_s <= spec.shutdown_timeout_s + SLACK_S, exit_s
    assert spec.pre_stop_sleep_s + exit_s <= spec.grace_s, (spec.pre_stop_sleep_s, exit_s, spec.grace_s)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="vLLM 0.32.0/0.33.0: a pooling request finishing during the drain gets 500 "
    "(renderer executor shut down first); see the module docstring",
)
def test_sigterm_into_in_flight_requests_completes_them(servers):
    s = servers["nvidia-base"]
    spec = s.spec
    requests = 16
    burst, queued = start_load(s, requests, 4)
    t0 = time.monotonic()
    s.terminate()
    in_flight = requests - len(burst.results)
    if in_flight == 0:  # not an AssertionError: a test that tested nothing must not pass as the expected failure
        raise RuntimeError("every request had finished before SIGTERM: nothing was in flight")
    s.proc.wait(timeout=spec.grace_s)
    exit_s = time.monotonic() - t0
    burst.join(timeout=30)
    statuses = [st for st, _ in burst.results]
    print(
        f"\n[vllm-tier] SIGTERM with {in_flight} of {requests} requests in flight ({queued:.0f} inputs queued): exit code "
        f"{s.proc.returncode} after {exit_s:.1f} s; statuses {sorted(set(map(str, statuses)))}"
    )
    if "mode=drain" not in s.log_text() or exit_s > spec.shutdown_timeout_s + SLACK_S or len(statuses) != requests:
        raise RuntimeError(f"no drain, or exit after {exit_s:.1f} s, or {len(statuses)} answers")
    assert set(statuses) == {200}, statuses  # the expected failure: 500s for requests finished during the drain
