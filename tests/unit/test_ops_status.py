"""`python -m infra status`: aggregation over client model objects, text, and a clear error when the
cluster cannot be reached."""

from __future__ import annotations

from datetime import UTC, datetime

from kubernetes.client import (
    CoreV1Event,
    V1Container,
    V1ContainerState,
    V1ContainerStateTerminated,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1Deployment,
    V1DeploymentSpec,
    V1DeploymentStatus,
    V1LabelSelector,
    V1Node,
    V1NodeStatus,
    V1ObjectMeta,
    V1ObjectReference,
    V1Pod,
    V1PodSpec,
    V1PodStatus,
    V1PodTemplateSpec,
    V1ResourceRequirements,
    V2CrossVersionObjectReference,
    V2ExternalMetricSource,
    V2ExternalMetricStatus,
    V2HorizontalPodAutoscaler,
    V2HorizontalPodAutoscalerSpec,
    V2HorizontalPodAutoscalerStatus,
    V2MetricIdentifier,
    V2MetricSpec,
    V2MetricStatus,
    V2MetricTarget,
    V2MetricValueStatus,
)

from infra.cli import main
from infra.core.errors import EXIT_UNREACHABLE
from infra.core.plan import build_for_env
from infra.ops.status import render_text, summarize
from infra.sinks.helm import effective_values
from tests.conftest import free_port

PLAN = build_for_env("prod")
NS = PLAN.namespace
POOL = PLAN.config.pools["gpu-h100-mig"]
RESOURCE = POOL.slice.resource_name


def deployment(name: str, desired: int, ready: int) -> V1Deployment:
    return V1Deployment(
        metadata=V1ObjectMeta(name=name, namespace=NS),
        spec=V1DeploymentSpec(replicas=desired, selector=V1LabelSelector(), template=V1PodTemplateSpec()),
        status=V1DeploymentStatus(
            replicas=desired, ready_replicas=ready, available_replicas=ready, updated_replicas=desired
        ),
    )


def keda_hpa(release: str, current: int, desired: int, value: str) -> V2HorizontalPodAutoscaler:
    metric = V2MetricIdentifier(name="s0-prometheus")
    return V2HorizontalPodAutoscaler(
        metadata=V1ObjectMeta(name=f"keda-hpa-{release}", namespace=NS),
        spec=V2HorizontalPodAutoscalerSpec(
            min_replicas=3,
            max_replicas=12,
            scale_target_ref=V2CrossVersionObjectReference(kind="Deployment", name=release),
            metrics=[
                V2MetricSpec(
                    type="External",
                    external=V2ExternalMetricSource(
                        metric=metric, target=V2MetricTarget(type="AverageValue", average_value="5")
                    ),
                )
            ],
        ),
        status=V2HorizontalPodAutoscalerStatus(
            current_replicas=current,
            desired_replicas=desired,
            current_metrics=[
                V2MetricStatus(
                    type="External",
                    external=V2ExternalMetricStatus(metric=metric, current=V2MetricValueStatus(average_value="7")),
                )
            ],
        ),
    )


def pod(
    name: str,
    release: str,
    node: str | None,
    gpus: int = 1,
    ready: bool = True,
    waiting: str | None = None,
    oom: bool = False,
    namespace: str = NS,
) -> V1Pod:
    status = V1ContainerStatus(
        name="vllm",
        image="vllm/vllm-openai:v0.33.0",
        image_id="",
        ready=ready,
        restart_count=1 if oom else 0,
        state=V1ContainerState(waiting=V1ContainerStateWaiting(reason=waiting) if waiting else None),
        last_state=V1ContainerState(
            terminated=V1ContainerStateTerminated(
                exit_code=137, reason="OOMKilled", finished_at=datetime(2026, 1, 1, tzinfo=UTC)
            )
        )
        if oom
        else None,
    )
    return V1Pod(
        metadata=V1ObjectMeta(name=name, namespace=namespace, labels={"app.kubernetes.io/instance": release}),
        spec=V1PodSpec(
            node_name=node,
            containers=[V1Container(name="vllm", resources=V1ResourceRequirements(requests={RESOURCE: str(gpus)}))],
        ),
        status=V1PodStatus(phase="Running" if node else "Pending", container_statuses=[status] if node else None),
    )


def node(name: str, slices: int, labels: dict[str, str] | None = None) -> V1Node:
    return V1Node(
        metadata=V1ObjectMeta(name=name, labels=POOL.full_node_selector if labels is None else labels),
        status=V1NodeStatus(allocatable={RESOURCE: str(slices), "cpu": "96"}),
    )


def event(reason: str, message: str, minute: int, kind: str = "Warning") -> CoreV1Event:
    return CoreV1Event(
        metadata=V1ObjectMeta(name=f"e{minute}"),
        involved_object=V1ObjectReference(kind="Pod", name="p"),
        reason=reason,
        message=message,
        type=kind,
        count=2,
        last_timestamp=datetime(2026, 1, 1, 0, minute, tzinfo=UTC),
    )


def healthy_objects():
    deployments = [
        deployment(
            r.name,
            effective_values(r.spec)["autoscaling"]["minReplicas"],
            effective_values(r.spec)["autoscaling"]["minReplicas"],
        )
        for r in PLAN.releases
    ]
    hpas = [keda_hpa(r.name, 3, 3, "7") for r in PLAN.releases]
    pods = [pod(f"{r.name}-abc-{i}", r.name, "gpu-a") for r in PLAN.releases for i in range(2)]
    return deployments, hpas, pods


def test_a_fully_ready_stack_is_healthy_and_reports_autoscalers_and_gpus():
    deployments, hpas, pods = healthy_objects()
    other_tenant = pod("training-0", "someone-else", "gpu-a", gpus=3, namespace="ml-training")
    report = summarize(
        PLAN,
        deployments,
        hpas,
        pods,
        [node("gpu-a", 56), node("cpu-1", 0, {"kubernetes.io/os": "linux"})],
        [],
        all_pods=pods + [other_tenant],
    )
    assert report.healthy
    retrieval = report.variants[0]
    assert (retrieval.variant, retrieval.desired, retrieval.ready) == ("retrieval", 3, 3)
    assert retrieval.autoscaler is not None
    assert retrieval.autoscaler.name == "keda-hpa-jina-embeddings-retrieval"
    assert retrieval.autoscaler.metrics == ["s0-prometheus 7/5"]
    [pool] = report.pools
    assert [n.name for n in pool.nodes] == ["gpu-a"]  # the CPU node lacks the pool's labels
    assert (pool.allocatable, pool.requested, pool.nodes[0].requested_by_stack) == (56, 8 + 3, 8)
    text = render_text(report)
    assert "pool gpu-h100-mig: nvidia.com/mig-1g.10gb 11/56" in text and "overall: OK" in text


def test_short_replicas_pending_pods_oom_and_warnings_make_it_degraded():
    deployments, hpas, pods = healthy_objects()
    deployments[1] = deployment("jina-embeddings-text-matching", 2, 1)
    pods += [
        pod("jina-embeddings-text-matching-abc-x", "jina-embeddings-text-matching", None),
        pod(
            "jina-embeddings-clustering-abc-y",
            "jina-embeddings-clustering",
            "gpu-a",
            ready=False,
            waiting="CrashLoopBackOff",
            oom=True,
        ),
    ]
    events = [
        event("FailedScheduling", f"0/3 nodes are available: 3 Insufficient {RESOURCE}.", 5),
        event("Unhealthy", "Startup probe failed: connection refused", 7),
        event("Scheduled", "ok", 9, kind="Normal"),
    ]
    report = summarize(PLAN, deployments, hpas, pods, [node("gpu-a", 56)], events)
    assert not report.healthy
    assert [v.variant for v in report.variants if not v.healthy] == ["text-matching"]
    assert report.unscheduled == ["jina-embeddings-text-matching-abc-x (text-matching)"]
    assert report.oom_killed == ["jina-embeddings-clustering-abc-y/vllm at 2026-01-01 00:00:00+00:00"]
    assert [e.reason for e in report.events] == ["Unhealthy", "FailedScheduling"]  # newest first, warnings only
    text = render_text(report)
    assert "CrashLoopBackOff" in text and "<-- short" in text and "overall: DEGRADED" in text


def test_a_missing_deployment_and_autoscaler_are_reported():
    report = summarize(PLAN, [], [], [], [], [])
    assert not report.healthy and not any(v.found for v in report.variants)
    assert "Deployment not found" in render_text(report)
    assert "no node carries the pool's labels" in render_text(report)


def test_an_unreachable_cluster_gives_a_clear_error_and_exit_3(tmp_path, capsys):
    port = free_port()  # bound, then released: nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: nowhere, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: nobody, user: {{token: not-a-secret}}}}]
contexts: [{{name: nowhere, context: {{cluster: nowhere, user: nobody}}}}]
current-context: nowhere
""")
    assert main(["status", "--env", "prod", "--kubeconfig", str(kubeconfig)]) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "cluster unreachable" in err and f"127.0.0.1:{port}" in err and "Connection refused" in err


def test_an_unreadable_kubeconfig_is_a_usage_error(tmp_path, capsys):
    assert main(["status", "--env", "prod", "--kubeconfig", str(tmp_path / "missing")]) == 2
    assert "cannot load kubeconfig" in capsys.readouterr().err
