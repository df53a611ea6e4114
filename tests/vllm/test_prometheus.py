"""A real Prometheus (the server binary of the same Debian .deb as promtool; started here, never as a service)
scrapes the nvidia-base vLLM with the target labels the rendered ServiceMonitor produces, loads the rendered
PrometheusRule groups unchanged, and sees the request-backlog alert go pending under a bounded burst and
resolve after it; the prometheus-adapter rule's query and the KEDA trigger's query return a value per pod.

Prometheus' own settings (not the rules): scrape and evaluation every 1 s instead of the ServiceMonitor's 30 s
and the default 1 m. The rules' `for:` (10 m for the backlog alert) is kept, so `firing` needs the backlog to
last 10 minutes: with BUNDLE_VLLM_ALERT_FIRING=1 the burst is sustained until the alert fires (about 11 min of
two busy cores); by default (CI) the test stops at pending and checks the alert resolves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.paths import REPO_ROOT
from tests.vllm.harness import Server, free_port, load_manifest

ALERT = "JinaEmbeddingsRequestBacklog"
POD_NAME_SUFFIX = "-7d9c5b8f6d-x2k4q"  # a ReplicaSet pod's name: <deployment>-<pod-template-hash>-<5 chars>
FIRING = os.environ.get("BUNDLE_VLLM_ALERT_FIRING") == "1"


def subset(small: dict, big: dict) -> bool:
    return all(big.get(k) == v for k, v in small.items())


def servicemonitor_target(server: Server) -> tuple[dict, dict]:
    """(scrape settings, target labels) the prometheus-operator derives from the rendered ServiceMonitor, Service and
    Deployment: the ServiceMonitor must select the Service, its endpoint port must be a Service port whose targetPort
    is the container port vLLM listens on; labels namespace, service, job (the Service's name, no jobLabel), endpoint,
    pod and container, as the operator's relabelling sets them."""
    env, variant = server.spec.env, server.spec.variant
    sm, svc, dep = (
        load_manifest(env, variant, "servicemonitor"),
        load_manifest(env, variant, "service"),
        server.spec.deployment,
    )
    assert subset(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]), (
        "the ServiceMonitor does not select the Service"
    )
    ns_sel = sm["spec"].get("namespaceSelector", {})
    assert ns_sel.get("any") or svc["metadata"]["namespace"] in ns_sel.get("matchNames", [sm["metadata"]["namespace"]])
    assert subset(svc["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"]), (
        "the Service does not select the pods"
    )
    (ep,) = sm["spec"]["endpoints"]
    (port,) = [p for p in svc["spec"]["ports"] if p.get("name") == ep["port"]]
    target = port["targetPort"]
    (container,) = [
        c
        for c in dep["spec"]["template"]["spec"]["containers"]
        if any(p.get("name") == target or p["containerPort"] == target for p in c.get("ports", []))
    ]
    assert server.spec.named_port(target) == server.spec.container_port, (
        f"Service targetPort {target} is not vLLM's --port"
    )
    labels = {
        "namespace": svc["metadata"]["namespace"],
        "service": svc["metadata"]["name"],
        "job": svc["metadata"]["name"],
        "endpoint": ep["port"],
        "pod": dep["metadata"]["name"] + POD_NAME_SUFFIX,
        "container": container["name"],
    }
    return {"metrics_path": ep.get("path", "/metrics"), "scheme": ep.get("scheme", "http")}, labels


class Prometheus:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, config: dict) -> Prometheus:
        binary = shutil.which("prometheus")
        assert binary, "no prometheus on PATH: tools/bootstrap.sh promtool, then source tools/env.sh"
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(self.workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.workdir / "prometheus.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError("prometheus not ready in 60 s")

    def api(self, path: str, **params) -> dict:
        q = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}" + (f"?{q}" if q else ""), timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def prometheus(servers):
    s = servers["nvidia-base"]
    scrape, labels = servicemonitor_target(s)
    rule = load_manifest(s.spec.env, s.spec.variant, "prometheusrule")
    work = Path(tempfile.mkdtemp(prefix="vllm-tier-prometheus-"))
    (work / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))  # the rendered groups, unchanged
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(work / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": f"serviceMonitor/{labels['namespace']}/{rule['metadata']['name']}/0",
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                **scrape,
                "static_configs": [{"targets": [f"127.0.0.1:{s.port}"], "labels": labels}],
            }
        ],
    }
    p = Prometheus(work).start(config)
    try:
        yield p, s, labels, rule
    finally:
        p.stop()
        shutil.rmtree(work, ignore_errors=True)


def wait_for(fn, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_rendered_rule_groups_load_unchanged_and_evaluate(prometheus):
    p, s, labels, rule = prometheus
    groups = p.api("rules")["groups"]
    want = {g["name"]: {r.get("alert") or r.get("record") for r in g["rules"]} for g in rule["spec"]["groups"]}
    got = {g["name"]: {r["name"] for r in g["rules"]} for g in groups}
    assert got == want
    # evaluate on scraped data: wait for the first successful scrape, then for two evaluations after it
    wait_for(lambda: p.api("query", query="up == 1")["result"], 30, "a successful scrape")
    time.sleep(2.5)
    bad = [(r["name"], r.get("lastError")) for g in p.api("rules")["groups"] for r in g["rules"] if r["health"] != "ok"]
    assert not bad, bad


def test_scraped_with_the_servicemonitor_labels(prometheus):
    p, s, labels, rule = prometheus
    up = wait_for(lambda: p.api("query", query="up == 1")["result"], 30, "a successful scrape")
    (series,) = up
    assert subset(labels, series["metric"]), series["metric"]
    waiting = p.api("query", query=f'vllm:num_requests_waiting{{model_name="{s.spec.served_name}"}}')["result"]
    assert waiting and subset(labels, waiting[0]["metric"]), waiting


def adapter_query(pods: list[str], namespace: str) -> tuple[str, dict[str, Any]]:
    """The prometheus-adapter rule's metricsQuery, expanded as the adapter does for a pods/<metric> request of the HPA."""
    (rule,) = yaml.safe_load(
        (REPO_ROOT / "charts" / "jina-embeddings" / "files" / "prometheus-adapter-rules.yaml").read_text()
    )
    series = rule["seriesQuery"].split("{")[0]
    matchers = f'namespace="{namespace}",pod=~"{"|".join(pods)}"'
    return (
        rule["metricsQuery"]
        .replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", matchers)
        .replace("<<.GroupBy>>", "pod")
    ), rule


def test_prometheus_adapter_and_keda_queries_return_a_value_per_pod(prometheus):
    p, s, labels, rule = prometheus
    query, adapter_rule = adapter_query([labels["pod"]], labels["namespace"])
    found = wait_for(
        lambda: p.api("series", **{"match[]": adapter_rule["seriesQuery"]}), 30, "the adapter's seriesQuery"
    )
    assert {f["pod"] for f in found} == {labels["pod"]}
    result = p.api("query", query=query)["result"]
    assert [r["metric"] for r in result] == [{"pod": labels["pod"]}], result
    keda = load_manifest(s.spec.env, s.spec.variant, "scaledobject")["spec"]["triggers"]
    for t in keda:
        if t["type"] == "prometheus":
            r = p.api("query", query=t["metadata"]["query"])["result"]
            assert len(r) == 1 and float(r[0]["value"][1]) >= 0, (t["metadata"]["query"], r)


def test_backlog_alert_goes_pending_then_resolves_under_a_bounded_burst(prometheus):
    p, s, labels, rule = prometheus
    (alert_rule,) = [r for g in rule["spec"]["groups"] for r in g["rules"] if r.get("alert") == ALERT]
    states: list[tuple[float, str]] = []
    stop = threading.Event()
    text = "Document: " + "embedding servers queue requests when the engine is busy " * 20

    def load(worker: int):
        # Each request carries 64 distinct ~220-token inputs, and vLLM queues each input as its own engine request:
        # one engine step takes at most --max-num-batched-tokens (8192), about 37 of them, so the rest wait. The
        # burst lasts until the alert reaches its target state, so it adapts to the machine's speed; a fixed burst
        # of few-token inputs never had 20 waiting at a scrape on a fast machine (docs/development.md, 2026-12-03).
        n = 0
        while not stop.is_set():
            n += 1
            s.request(
                "POST",
                "/v1/embeddings",
                {"model": s.spec.served_name, "input": [f"{worker} {n} {i} {text}" for i in range(64)]},
                timeout=600,
            )

    def state() -> str:
        alerts = [a for a in p.api("alerts")["alerts"] if a["labels"].get("alertname") == ALERT]
        return alerts[0]["state"] if alerts else "inactive"

    t0 = time.monotonic()
    workers = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(6 if FIRING else 4)]
    for w in workers:
        w.start()
    target = "firing" if FIRING else "pending"
    try:
        deadline = t0 + (660 + 120 if FIRING else 240)
        while time.monotonic() < deadline:
            st = state()
            if not states or states[-1][1] != st:
                states.append((time.monotonic() - t0, st))
            if st == target:
                break
            time.sleep(0.5)
    finally:
        stop.set()
    for w in workers:
        w.join(timeout=600)
    wait_for(lambda: state() == "inactive", 120, f"{ALERT} to resolve after the burst")
    states.append((time.monotonic() - t0, "inactive"))
    print(
        f"\n[vllm-tier] {ALERT} (expr: {alert_rule['expr']}; for {alert_rule.get('for')}): "
        + " -> ".join(f"{st} at {t:.0f} s" for t, st in states)
    )
    seen = [st for _, st in states]
    window = f"{max(1, round(time.monotonic() - t0))}s"
    assert "pending" in seen, (
        seen,
        "most requests waiting at one scrape:",
        p.api("query", query=f"max_over_time(vllm:num_requests_waiting[{window}])")["result"],
        "failed scrapes:",
        p.api("query", query=f"count_over_time((up == 0)[{window}:1s])")["result"],
    )
    if FIRING:
        assert seen.index("firing") > seen.index("pending"), seen
