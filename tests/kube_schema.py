"""Strict schema validation of Kubernetes objects, for the tests.

Built-in kinds: kubernetes-validate's bundled schemas in strict mode (unknown fields are errors), per
Kubernetes minor. Custom resources (ServiceMonitor, ScaledObject, HTTPRoute, Argo CD Application, Flux
Kustomization, ...): the `openAPIV3Schema` of the real CRD, which `tools/bootstrap.sh crds` copies out of
the upstream Go module into the tool cache ($BUNDLE_CRDS_DIR, never into the repo). A CRD schema is made
strict the way the API server's field validation is: an object schema with `properties` accepts no other
field unless it says `x-kubernetes-preserve-unknown-fields`. Not checked here: CEL rules
(`x-kubernetes-validations`) and formats; the e2e tier's server-side apply checks those.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from infra.sinks.helm import TOOLS_DIR

# Kubernetes minors the chart claims (Chart.yaml kubeVersion ">=1.31.0-0") up to the newest schema
# kubernetes-validate 1.37.0 bundles.
KUBE_VERSIONS = tuple(f"1.{minor}" for minor in range(31, 38))


def crds_dir() -> Path:
    return Path(os.environ.get("BUNDLE_CRDS_DIR", TOOLS_DIR / "crds"))


def is_builtin(obj: dict[str, Any]) -> bool:
    return _has_builtin_schema(obj["apiVersion"], obj["kind"])


@functools.cache
def _has_builtin_schema(api_version: str, kind: str) -> bool:
    try:
        kubernetes_validate.validate({"apiVersion": api_version, "kind": kind}, KUBE_VERSIONS[-1], strict=False)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        pass
    return True


def validate_builtin(obj: dict[str, Any], version: str) -> None:
    """Raises kubernetes_validate.ValidationError (or SchemaNotFoundError for a custom resource)."""
    kubernetes_validate.validate(obj, version, strict=True)


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema, for every CRD in the tool cache's pinned sources.

    Only the stable links (`crds/<source>` -> `<source>-<version>`) are read: an older pin's copy may
    still lie beside them.
    """
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    root = crds_dir()
    if not root.is_dir():
        return schemas
    for source in sorted(p for p in root.iterdir() if p.is_symlink() and p.is_dir()):
        for path in sorted(source.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for v in spec["versions"]:
                    if v.get("served") and "schema" in v:
                        schemas[(f"{spec['group']}/{v['name']}", spec["names"]["kind"])] = strict(
                            v["schema"]["openAPIV3Schema"]
                        )
    return schemas


def strict(schema: Any) -> Any:
    """An OpenAPI v3 structural schema with unknown fields forbidden and `nullable` honoured."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: strict(v) if k in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf") else v
        for k, v in schema.items()
    }
    if "properties" in schema:
        out["properties"] = {name: strict(s) for name, s in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if schema.get("nullable") and isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]
    return out


def validate_custom(obj: dict[str, Any], version: str = KUBE_VERSIONS[-1]) -> list[str]:
    """Errors of a custom resource against its CRD (empty when valid). KeyError when no CRD is cached."""
    schema = crd_schemas()[(obj["apiVersion"], obj["kind"])]
    body = copy.deepcopy(obj)
    # A CRD's schema leaves metadata to the API server: check it as ObjectMeta, strictly.
    metadata = body.pop("metadata", {})
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in jsonschema.Draft4Validator(schema).iter_errors({**body, "metadata": {}})
    ]
    try:
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}, version, strict=True
        )
    except kubernetes_validate.ValidationError as exc:
        errors.append(f"metadata: {exc.message}")
    return errors
