"""Network exposure: default deny, ingress to the serving port only from the configured clients and
Prometheus, egress only to DNS and (unless offline) the model hub; the `network`/`gateway` stack config
and its bad-input errors; the optional Gateway API HTTPRoute (chart template, off by default)."""

from __future__ import annotations

import ipaddress

import pytest

from infra.checks.policy import rules
from infra.core.config import ConfigError, load
from infra.core.names import PROJECT
from infra.core.names import with_namespace as in_namespace
from infra.core.paths import CHART_PATH
from infra.core.plan import build, measured_constants
from infra.core.platform_objects import network_policies
from infra.core.stackfile import load_stack
from infra.sinks.helm import HelmError, effective_values, template
from tests import kube_schema
from tests.policy.conftest import find


def config(**sections) -> dict:
    """A small valid stack (one NVIDIA pool, retrieval autoscaled), with `sections` merged in."""
    cfg = {
        f"{PROJECT}:namespace": "emb",
        f"{PROJECT}:pools": {
            "gpu": {"vendor": "nvidia", "gpu": "nvidia-h100-80gb", "slice": "whole", "nodes": 2, "gpusPerNode": 8}
        },
        f"{PROJECT}:variants": {
            "retrieval": {"pool": "gpu", "minReplicas": 2, "maxReplicas": 4},
            "classification": {"pool": "gpu", "minReplicas": 2, "maxReplicas": 3},
        },
    }
    cfg.update({f"{PROJECT}:{k}": v for k, v in sections.items()})
    return cfg


def policies_by_name(cfg) -> dict[str, dict]:
    return {p["metadata"]["name"].removeprefix(f"{PROJECT}-"): p["spec"] for p in network_policies(cfg)}


def peers(spec: dict) -> list[dict]:
    return spec["ingress"][0]["from"]


# ---------------------------------------------------------------------------------------------
# NetworkPolicies from config
# ---------------------------------------------------------------------------------------------


def test_ingress_only_from_client_namespaces_gateway_and_prometheus_on_the_serving_port():
    cfg = load(config(network={"clientNamespaces": ["search", "rag"], "gatewayNamespace": "gw"}), "t")
    serving = policies_by_name(cfg)["allow-serving"]
    assert serving["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert peers(serving) == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "rag"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "search"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gw"}}},
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
    ]
    # Nothing else may connect: not the stack's own namespace, not every pod of a namespace.
    assert not any(p == {"podSelector": {}} for p in peers(serving))


def test_client_pod_labels_narrow_every_client_namespace_or_the_own_namespace():
    labels = {"app.kubernetes.io/part-of": "search-api"}
    cfg = load(config(network={"clientNamespaces": ["search"], "clientPodLabels": labels}), "t")
    assert peers(policies_by_name(cfg)["allow-serving"])[0] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "search"}},
        "podSelector": {"matchLabels": labels},
    }
    cfg = load(config(network={"clientPodLabels": labels, "prometheusPodLabels": {}}), "t")
    assert peers(policies_by_name(cfg)["allow-serving"]) == [
        {"podSelector": {"matchLabels": labels}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},  # every pod there
    ]


def test_egress_is_dns_for_all_and_the_hub_only_for_pods_that_download():
    download = policies_by_name(load(config(), "t"))
    assert download["allow-egress"]["egress"][0]["ports"] == [
        {"protocol": "UDP", "port": 53},
        {"protocol": "TCP", "port": 53},
    ]
    hub = download["allow-model-hub"]
    assert hub["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["embedding-server"]}
    ]
    assert hub["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443}]
    block = hub["egress"][0]["to"][0]["ipBlock"]
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.169.254/32"):  # incl. cloud metadata
        excepted = [n for e in block["except"] if isinstance(n := ipaddress.ip_network(e), ipaddress.IPv4Network)]
        assert any(ipaddress.IPv4Network(private).subnet_of(n) for n in excepted), private

    offline = policies_by_name(load(config(weights={"source": "pvc", "offline": True}), "t"))
    # Offline servers never reach the internet; the Job that fills the volume does.
    assert offline["allow-model-hub"]["podSelector"]["matchExpressions"][0]["values"] == ["model-weights"]


def test_prod_offline_servers_have_no_route_out_but_dns(bundles):
    objects = bundles["stack:prod"]
    servers = [o for o in objects if o["kind"] == "Deployment"]
    assert servers and all(rules._offline(s) for s in servers)
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy" and o["spec"].get("egress")):
        if any(rules.selector_matches(policy["spec"]["podSelector"], rules.pod_labels(s)) for s in servers):
            assert all(rules._is_dns_rule(r) for r in policy["spec"]["egress"]), policy["metadata"]["name"]
    job = find(objects, "Job")
    hub = find(objects, "NetworkPolicy", lambda o: o["metadata"]["name"].endswith("allow-model-hub"))
    assert rules.selector_matches(hub["spec"]["podSelector"], rules.pod_labels(job))


# ---------------------------------------------------------------------------------------------
# Bad config: clear errors naming the key, nothing planned
# ---------------------------------------------------------------------------------------------


BAD = [
    (
        "client-pod-label-key",
        config(network={"clientPodLabels": {"bad key!": "x"}}),
        'network.clientPodLabels["bad key!"]',  # pulumi config --path syntax for a key with spaces
        "valid label key",
    ),
    (
        "client-pod-label-value",
        config(network={"clientPodLabels": {"app": "has space"}}),
        "network.clientPodLabels.app",
        "label values",
    ),
    (
        "client-pod-labels-not-mapping",
        config(network={"clientPodLabels": ["app=x"]}),
        "network.clientPodLabels",
        "must be a mapping",
    ),
    ("network-unknown-key", config(network={"clientLabels": {"a": "b"}}), "network.clientLabels", "unknown key"),
    (
        "gateway-without-host",
        config(network={"gatewayNamespace": "gw"}, gateway={"enabled": True, "parentRef": {"name": "shared"}}),
        "gateway.host",
        "required when gateway.enabled",
    ),
    (
        "gateway-wildcard-host",
        config(
            network={"gatewayNamespace": "gw"},
            gateway={"enabled": True, "host": "*.example.com", "parentRef": {"name": "g"}},
        ),
        "gateway.host",
        "no wildcard",
    ),
    (
        "gateway-without-parent",
        config(network={"gatewayNamespace": "gw"}, gateway={"enabled": True, "host": "e.example.com"}),
        "gateway.parentRef.name",
        "required when gateway.enabled",
    ),
    (
        "gateway-without-gateway-namespace",
        config(gateway={"enabled": True, "host": "e.example.com", "parentRef": {"name": "g", "namespace": "gw"}}),
        "network.gatewayNamespace",
        "admits only from network.gatewayNamespace",
    ),
    ("gateway-unknown-key", config(gateway={"enabled": False, "paths": ["/pooling"]}), "gateway.paths", "unknown key"),
    ("gateway-enabled-not-bool", config(gateway={"enabled": "yes"}), "gateway.enabled", "true or false"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_network_or_gateway_config_is_refused_naming_the_key_and_the_fix(case):
    _, raw, path, fragment = case
    with pytest.raises(ConfigError) as err:
        load(raw, "t")
    problems = [p for p in err.value.problems if p.path == path]
    assert problems, f"no problem names {path}: {err.value}"
    assert fragment in problems[0].message and PROJECT in str(err.value) and "fix:" in str(err.value)


# ---------------------------------------------------------------------------------------------
# The HTTPRoute
# ---------------------------------------------------------------------------------------------


def _routes(objects) -> list[dict]:
    return [o for o in objects if o["kind"] == "HTTPRoute"]


def test_routes_are_off_by_default_and_prod_exposes_one_host_with_two_paths_per_variant(bundles):
    assert not any(_routes(objects) for name, objects in bundles.items() if name not in ("stack:prod", "export:prod"))
    prod = load_stack("prod")
    routes = _routes(bundles["stack:prod"])
    assert len(routes) == len(prod.variants)
    assert {h for r in routes for h in r["spec"]["hostnames"]} == {prod.gateway.host}
    exposed = {}
    for route in routes:
        assert route["spec"]["parentRefs"] == [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": prod.gateway.parent_name,
                "namespace": prod.gateway.parent_namespace,
            }
        ]
        for rule in route["spec"]["rules"]:
            (match,) = rule["matches"]
            (rewrite,) = rule["filters"]
            (backend,) = rule["backendRefs"]
            assert match["path"]["type"] == "Exact" and rewrite["urlRewrite"]["path"]["type"] == "ReplaceFullPath"
            exposed[match["path"]["value"]] = (rewrite["urlRewrite"]["path"]["replaceFullPath"], backend["name"])
    assert exposed == {
        f"/{v}{p}": (p, f"{PROJECT}-{v}") for v in prod.variants for p in ("/v1/embeddings", "/v1/models")
    }


def test_gateway_config_reaches_the_chart_values_of_every_release():
    cfg = load(
        config(
            network={"gatewayNamespace": "gw"},
            gateway={
                "enabled": True,
                "host": "emb.example.com",
                "parentRef": {"name": "shared", "sectionName": "https"},
            },
        ),
        "t",
    )
    for release in build(cfg, measured_constants()).releases:
        assert effective_values(release.spec)["httpRoute"] == {
            "enabled": True,
            "host": "emb.example.com",
            "pathPrefix": f"/{release.variant}",
            "parentRefs": [{"name": "shared", "namespace": "gw", "sectionName": "https"}],
        }


def _chart_values(**route) -> dict:
    return {
        "httpRoute": {
            "enabled": True,
            "host": "emb.example.com",
            "pathPrefix": "",
            "parentRefs": [{"name": "gw"}],
            **route,
        }
    }


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ({"host": ""}, "httpRoute.enabled=true needs httpRoute.host"),
        ({"parentRefs": []}, "httpRoute.enabled=true needs httpRoute.host"),
        ({"host": "*.example.com"}, "/httpRoute/host"),
        ({"pathPrefix": "/retrieval/v1"}, "/httpRoute/pathPrefix"),
        ({"paths": ["/pooling"]}, "/httpRoute"),
        ({"parentRefs": [{"name": "gw", "port": 80}]}, "/httpRoute/parentRefs/0"),
    ],
    ids=["no-host", "no-parent", "wildcard-host", "prefix-with-slashes", "extra-paths-key", "parent-unknown-field"],
)
def test_chart_refuses_a_bad_route(bad, fragment):
    with pytest.raises(HelmError) as err:
        template(CHART_PATH, "t", "ns", _chart_values(**bad))
    assert fragment in str(err.value), str(err.value)


def test_rendered_routes_are_valid_against_the_upstream_gateway_api_crd(bundles):
    """Against the HTTPRoute CRD (v1) of the pinned sigs.k8s.io/gateway-api module (tools/versions.env), as
    `tools/bootstrap.sh crds` copies it into the tool cache: the same upstream source the e2e cluster installs."""
    assert ("gateway.networking.k8s.io/v1", "HTTPRoute") in kube_schema.crd_schemas(), (
        f"no HTTPRoute CRD in {kube_schema.crds_dir()}: run `tools/bootstrap.sh crds`"
    )
    routes = _routes(bundles["stack:prod"]) + [
        in_namespace(o, "ns")
        for o in template(
            CHART_PATH,
            "t",
            "ns",
            _chart_values(parentRefs=[{"name": "gw", "namespace": "gateway", "sectionName": "https"}]),
        )
        if o["kind"] == "HTTPRoute"
    ]
    assert len(routes) >= 5
    for route in routes:
        errors = kube_schema.validate_custom(route)
        assert not errors, f"{route['metadata']['name']}: {errors}"
