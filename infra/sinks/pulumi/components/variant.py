"""`VariantRelease`: one task variant of the model, installed from the bundle's local chart.

`kubernetes.helm.v4.Chart` renders the chart with the plan's values (the same values the GitOps
export writes) and registers every rendered object as its own resource. Unlike Helm v3 releases it
keeps no release Secret, and unlike the provider's render-to-directory mode it writes nothing to
disk, so no value is ever stored in plaintext (and the values hold only Secret *names* anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra.core.plan import PlannedRelease
from infra.sinks.helm import helm_values


def deployment_timeouts(
    seconds: int,
) -> Callable[[pulumi.ResourceTransformArgs], pulumi.ResourceTransformResult | None]:
    """A transform giving the chart's Deployments `seconds` to become ready (create and update).

    Transforms reach the children of the Chart component (pulumi >= 3.118, provider >= 4.x)."""
    timeout = f"{seconds}s"

    def transform(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
        if args.type_ != "kubernetes:apps/v1:Deployment":
            return None
        timeouts = pulumi.CustomTimeouts(create=timeout, update=timeout)
        return pulumi.ResourceTransformResult(
            args.props, pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(custom_timeouts=timeouts))
        )

    return transform


@dataclass(frozen=True)
class VariantReleaseArgs:
    release: PlannedRelease  # from infra.core.plan: chart path, release name, spec
    namespace: pulumi.Input[str]  # the Namespace resource's output, not a string
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # platform objects, Secrets


class VariantRelease(pulumi.ComponentResource):
    chart: k8s.helm.v4.Chart
    service_name: pulumi.Output[str]
    served_model_name: pulumi.Output[str]
    url: pulumi.Output[str]  # in-cluster base URL, e.g. http://jina-embeddings-retrieval.<ns>.svc:8000

    def __init__(self, name: str, args: VariantReleaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jina-embeddings:variant:VariantRelease", name, None, opts)
        release = args.release
        self.chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            k8s.helm.v4.ChartArgs(
                chart=str(release.chart_path),
                name=release.name,
                namespace=args.namespace,
                values=helm_values(release.spec),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.depends_on),
                # how long to wait is decided in the pure core
                transforms=[deployment_timeouts(release.spec.rollout_await_seconds)],
            ),
        )
        self.service_name = pulumi.Output.from_input(release.service_name)
        self.served_model_name = pulumi.Output.from_input(release.served_model_name)
        self.url = pulumi.Output.concat(
            "http://", release.service_name, ".", args.namespace, ".svc:", str(release.spec.port)
        )
        self.register_outputs(
            {"service": self.service_name, "servedModelName": self.served_model_name, "url": self.url}
        )
