"""Shutdown under load, last in the tier (it stops a server): SIGTERM with requests in flight, as the kubelet
sends it after the preStop hook. In-flight requests complete; the process exits within --shutdown-timeout,
and preStop + that exit fit inside terminationGracePeriodSeconds."""

from __future__ import annotations

import time

from tests.vllm.conftest import TEXTS
from tests.vllm.harness import Burst

REQUESTS, INPUTS = 16, 2  # about 16k tokens: seconds of work on 2 busy cores, well inside --shutdown-timeout
SLACK_S = 5  # process teardown after the drain (engine core, API server) on a busy 2-core machine


def test_sigterm_drains_in_flight_requests_and_exits_in_time(servers):
    s = servers["amd-merged"]
    spec = s.spec
    assert spec.shutdown_timeout_s > 0, "no --shutdown-timeout: vLLM would abort in-flight requests at once"
    assert spec.pre_stop_sleep_s + spec.shutdown_timeout_s + SLACK_S <= spec.grace_s, (
        f"preStop {spec.pre_stop_sleep_s} s + --shutdown-timeout {spec.shutdown_timeout_s} s (+{SLACK_S} s) "
        f"exceeds terminationGracePeriodSeconds {spec.grace_s} s")
    # distinct inputs (a shared prefix would be served from vLLM's prefix cache almost for free), enough work
    # that requests are still queued at SIGTERM
    texts = [f"{i} {' '.join(TEXTS) * 12}" for i in range(REQUESTS * INPUTS)]
    burst = Burst(s, []).start_each([texts[i * INPUTS:(i + 1) * INPUTS] for i in range(REQUESTS)])
    deadline = time.monotonic() + 60
    queued = 0.0
    while time.monotonic() < deadline:  # wait until the engine has a queue
        status, text = s.request("GET", "/metrics", timeout=10)
        queued = sum(float(l.rsplit(" ", 1)[1]) for l in str(text).splitlines() if l.startswith("vllm:num_requests_waiting{"))
        if queued > 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the engine never had a queue within 60 s")
    t0 = time.monotonic()
    s.terminate()
    in_flight = REQUESTS - len(burst.results)
    assert in_flight > 0, "every request had finished before SIGTERM: nothing was in flight"
    s.proc.wait(timeout=spec.grace_s)
    exit_s = time.monotonic() - t0
    burst.join(timeout=30)
    statuses = [st for st, _ in burst.results]
    log = s.log_text()
    print(f"\n[vllm-tier] SIGTERM with {in_flight} of {REQUESTS} HTTP requests in flight ({queued:.0f} inputs queued in the engine): exit code {s.proc.returncode} after {exit_s:.1f} s "
          f"(--shutdown-timeout {spec.shutdown_timeout_s} s, preStop {spec.pre_stop_sleep_s} s, grace {spec.grace_s} s); "
          f"requests: {len(statuses)} answered, statuses {sorted(set(statuses))}")
    assert "mode=drain" in log, "vLLM did not drain on SIGTERM"
    assert len(statuses) == REQUESTS and set(statuses) == {200}, statuses
    assert exit_s <= spec.shutdown_timeout_s + SLACK_S, exit_s
    assert spec.pre_stop_sleep_s + exit_s <= spec.grace_s
