"""The Kubernetes manifests (deploy/k8s) against their schemas: every built-in object of both
overlays validates against the Kubernetes schemas (kubernetes-validate, strict) and every custom
resource against its operator's CRD (fetched at a pinned version by ``make crds``), and the check
fails on a copy broken on purpose."""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.k8s_manifests import (
    OVERLAYS,
    ROOT,
    Break,
    Check,
    Obj,
    objects,
    one,
    passport,
    pod_spec,
    problems_after,
)

#: The Kubernetes version the built-in objects are validated against.
KUBERNETES_VERSION = "1.32.0"


#: Where `make crds` puts the operators' CRDs (Makefile: CRDS).
CRDS = ROOT / ".cache" / "crds"


CRD_FILES = {
    (
        "mongodbcommunity.mongodb.com/v1",
        "MongoDBCommunity",
    ): "mongodbcommunity.mongodb.com_mongodbcommunity.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
}


def strict_schema(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields, as the API server drops them (pruning): an
    object with ``properties`` and neither ``additionalProperties`` nor
    ``x-kubernetes-preserve-unknown-fields`` admits only those."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schema(api_version: str, kind: str) -> Obj:
    path = CRDS / CRD_FILES[(api_version, kind)]
    assert path.exists(), f"{path} is missing: run `make crds` (the tests never download)"
    crd = yaml.safe_load(path.read_text())
    version = api_version.split("/")[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict_schema(served["schema"]["openAPIV3Schema"])
    # the API server checks these itself; the CRD may leave them open
    schema.setdefault("properties", {}).update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    )
    result: Obj = schema
    return result


def schema_problems(objs: list[Obj]) -> list[str]:
    problems = []
    for obj in objs:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        if key in CRD_FILES:
            errors = jsonschema.Draft7Validator(crd_schema(*key)).iter_errors(obj)
            problems += [f"{where}: {e.message} at {list(e.absolute_path)}" for e in errors]
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: neither a Kubernetes {KUBERNETES_VERSION} kind nor a CRD we pin")
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{where}: {e.message} at {list(e.path)}")
    return problems


CHECKS: dict[str, Check] = {
    "schemas": schema_problems,
}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_overlay_keeps_promise(overlay: str, check: str) -> None:
    assert CHECKS[check](objects(overlay)) == []


# --- each check fails on a broken copy ---------------------------------------------------------


def _break_schema(objs: list[Obj]) -> None:
    pod_spec(passport(objs))["containers"][0]["readinessprobe"] = {}  # misspelt: an unknown field


def _break_crd(objs: list[Obj]) -> None:
    one(objs, "MongoDBCommunity", "lemma-mongo")["spec"]["members"] = "three"


def _break_crd_unknown_field(objs: list[Obj]) -> None:
    one(objs, "ServiceMonitor", "lemma-sci")["spec"]["endpoints"][0]["pathh"] = "/metrics"


def _break_unknown_kind(objs: list[Obj]) -> None:
    objs.append({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic", "metadata": {"name": "x"}})


BREAKS: dict[str, Break] = {
    "schema": ("schemas", "prod", _break_schema),
    "crd": ("schemas", "prod", _break_crd),
    "crd-unknown-field": ("schemas", "dev", _break_crd_unknown_field),
    "unknown-kind": ("schemas", "dev", _break_unknown_kind),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_check_catches_a_broken_copy(name: str) -> None:
    assert problems_after(CHECKS, BREAKS[name]), f"{BREAKS[name][0]} saw nothing wrong after {name}"


def test_strict_schema_refuses_unknown_fields() -> None:
    schema = strict_schema(
        {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {}}}}}
    )
    assert list(jsonschema.Draft7Validator(schema).iter_errors({"a": {"b": 1}})) == []
    assert list(jsonschema.Draft7Validator(schema).iter_errors({"a": {"c": 1}}))
    open_schema = strict_schema(
        {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}}
    )
    assert list(jsonschema.Draft7Validator(open_schema).iter_errors({"c": 1})) == []
