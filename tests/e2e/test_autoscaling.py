"""The HPA of an autoscaled variant scales it up and back down from (simulated) CPU usage.

kwok reports each pod's CPU usage from its `kwok.x-k8s.io/usage-cpu` annotation (kwokctl's default
ClusterResourceUsage); the real metrics-server scrapes it and the real HPA controller acts on it. The
usage is set through the pod template, so every pod the HPA adds reports it too.

CI time: the chart's scale-down behaviour (stabilizationWindowSeconds 600, 1 pod per 180 s: no flapping
after a burst) would keep this test waiting over ten minutes. The test shortens only that, on the live
HPA (window 0, any number of pods per 15 s); the scale-up behaviour is the chart's own. The busy usage is 150 %
of the CPU request (under the limit, twice the request), so the HPA wants more than maxReplicas at once and
reaches it in one step (the chart allows 2 pods per 60 s) instead of two. Idle again, the usage is set on the
running pods themselves: scaling down adds no pod, and patching the template would first roll every pod.
"""

from __future__ import annotations

import json
import time

import pytest
from kubernetes.utils import parse_quantity

from infra.sinks.helm import effective_values
from tests.e2e.kube import deployment_settled, pods_of, wait_until

pytestmark = pytest.mark.e2e
VARIANT = "retrieval"
USAGE = "kwok.x-k8s.io/usage-cpu"
FAST_SCALE_DOWN = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}
BUSY, IDLE = 1.5, 0.1  # of the CPU request


def usage_of(release, fraction_of_request: float) -> str:
    request = parse_quantity(effective_values(release.spec)["resources"]["requests"]["cpu"])
    return f"{int(float(request) * 1000 * fraction_of_request)}m"


def template_cpu_usage(cluster, namespace: str, release, fraction_of_request: float) -> None:
    """Every pod of the Deployment, those the HPA adds included, reports this usage (the template changes: a roll)."""
    patch = {"spec": {"template": {"metadata": {"annotations": {USAGE: usage_of(release, fraction_of_request)}}}}}
    cluster.kubectl("-n", namespace, "patch", f"deployment/{release.name}", "-p", json.dumps(patch))


def running_pods_cpu_usage(cluster, namespace: str, release, fraction_of_request: float) -> None:
    """The Deployment's running pods report this usage from now on (kwok reads the pod's annotation live)."""
    for pod in pods_of(cluster, namespace, release.name):
        cluster.kubectl(
            "-n", namespace, "annotate", "--overwrite", f"pod/{pod.metadata.name}",
            f"{USAGE}={usage_of(release, fraction_of_request)}",
        )  # fmt: skip


def hpa_state(cluster, namespace: str, name: str) -> tuple[int | None, int | None]:
    """(desired replicas, current CPU utilization %) of the HPA."""
    hpa = cluster.autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace)
    metrics = [m for m in hpa.status.current_metrics or [] if m.type == "Resource" and m.resource.name == "cpu"]
    return hpa.status.desired_replicas, (metrics[0].resource.current.average_utilization if metrics else None)


def test_hpa_scales_up_and_back_down_from_cpu_usage(e2e_cluster, local_stack):
    ns, release = local_stack.namespace, local_stack.release(VARIANT)
    autoscaling = effective_values(release.spec)["autoscaling"]
    assert autoscaling["enabled"] and autoscaling["metric"] == "cpu", autoscaling
    low, high, target = autoscaling["minReplicas"], autoscaling["maxReplicas"], autoscaling["targetCpuUtilization"]
    hpa = release.name

    # a baseline first: metrics-server has scraped the pods, the HPA sees their (idle) utilization
    started = time.monotonic()
    wait_until(lambda: hpa_state(e2e_cluster, ns, hpa)[1] is not None, 180, f"HPA {hpa} to read CPU metrics")
    desired, utilization = hpa_state(e2e_cluster, ns, hpa)
    assert desired == low and utilization < target, (desired, utilization)
    e2e_cluster.kubectl(
        "-n", ns, "patch", f"hpa/{hpa}", "-p", json.dumps({"spec": {"behavior": {"scaleDown": FAST_SCALE_DOWN}}})
    )
    phases = [("baseline", time.monotonic() - started)]

    # busy, above the target -> up to maxReplicas (the pool has the GPUs)
    started = time.monotonic()
    template_cpu_usage(e2e_cluster, ns, release, BUSY)
    wait_until(lambda: hpa_state(e2e_cluster, ns, hpa)[0] == high, 300, f"HPA {hpa} to want {high} replicas")
    wait_until(
        lambda: deployment_settled(e2e_cluster, ns, release.name, high), 120, f"{release.name}: {high} Ready replicas"
    )
    assert hpa_state(e2e_cluster, ns, hpa)[1] > target
    phases.append(("scale-up", time.monotonic() - started))

    # idle again -> back down to minReplicas
    started = time.monotonic()
    running_pods_cpu_usage(e2e_cluster, ns, release, IDLE)
    wait_until(lambda: hpa_state(e2e_cluster, ns, hpa)[0] == low, 300, f"HPA {hpa} to want {low} replicas")
    wait_until(
        lambda: deployment_settled(e2e_cluster, ns, release.name, low),
        120,
        f"{release.name}: back to {low} Ready replicas",
    )
    assert hpa_state(e2e_cluster, ns, hpa)[1] < target
    phases.append(("scale-down", time.monotonic() - started))
    print("\n[autoscaling] " + ", ".join(f"{name} {s:.0f} s" for name, s in phases))
