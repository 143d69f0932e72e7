"""The CRD schemas under schemas/crds/ and the custom resources in releases/*/manifests/.

* every schema is a valid JSON Schema that names its upstream CRD version and covers apiVersion/kind/metadata/spec;
* every manifest document whose apiVersion/kind has a schema validates against it (placeholders such as
  ``${inv:domain}`` are left in place: they are strings where strings are expected);
* every custom-resource kind used in a manifest has a schema, so a new kind cannot slip in unchecked;
* the manifest rules the schemas cannot state: every IngressRoute terminates TLS, every container of a workload
  has resource requests and limits, a HelmChartConfig's valuesContent is a YAML mapping;
* every schema rejects at least one broken fixture, tests/fixtures/crds/<kind>-<fault>.yaml, whose first line
  ``# expect: <text>`` names a fragment of the error it must produce.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "schemas" / "crds"
FIXTURES = REPO / "tests" / "fixtures" / "crds"
INDEX: dict[str, str] = json.loads((CRDS / "index.json").read_text())

# API groups served by Kubernetes itself (no CRD, so no schema of ours is expected).
BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}


def _key(doc: dict[str, Any]) -> str:
    return f"{doc.get('apiVersion')}/{doc.get('kind')}"


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _is_builtin(api_version: str) -> bool:
    group = _group(api_version)
    return group in BUILTIN_GROUPS or group.endswith(".k8s.io")


@cache
def _validator(filename: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((CRDS / filename).read_text()))


def _errors(doc: dict[str, Any]) -> list[str]:
    validator = _validator(INDEX[_key(doc)])
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)]


def _manifest_docs() -> list[tuple[str, int, dict[str, Any]]]:
    docs: list[tuple[str, int, dict[str, Any]]] = []
    for path in sorted(REPO.glob("releases/*/manifests/*.yaml")):
        rel = str(path.relative_to(REPO))
        for i, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d is not None):
            docs.append((rel, i, doc))
    return docs


MANIFESTS = _manifest_docs()
CUSTOM = [(rel, i, doc) for rel, i, doc in MANIFESTS if not _is_builtin(str(doc.get("apiVersion", "")))]
FIXTURE_FILES = sorted(FIXTURES.glob("*.yaml"))


def _doc_id(rel: str, i: int, doc: dict[str, Any]) -> str:
    name = (doc.get("metadata") or {}).get("name", "?")
    return f"{rel}[{i}]:{doc.get('kind')}/{name}"


# ---------------------------------------------------------------------------------------------------- schemas
@pytest.mark.parametrize("key", sorted(INDEX))
def test_schema_is_valid_and_describes_its_upstream_crd(key: str) -> None:
    schema = json.loads((CRDS / INDEX[key]).read_text())
    Draft202012Validator.check_schema(schema)
    group_version, _, kind = key.rpartition("/")
    assert schema["properties"]["apiVersion"] == {"const": group_version}
    assert schema["properties"]["kind"] == {"const": kind}
    assert {"apiVersion", "kind", "metadata", "spec"} <= set(schema["properties"])
    assert {"apiVersion", "kind", "metadata"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    assert group_version in schema["x-crd-version"], "x-crd-version names the upstream release and group/version"
    assert any(ch.isdigit() for ch in schema["x-crd-version"].split(",")[0]), "x-crd-version has a release number"
    assert "homelab uses" in schema["description"]
    group = group_version.split("/")[0]
    assert INDEX[key].startswith(f"{group}_") and INDEX[key].endswith(".json")


def test_index_lists_every_schema_file() -> None:
    files = {p.name for p in CRDS.glob("*.json")} - {"index.json"}
    assert files == set(INDEX.values())


# ---------------------------------------------------------------------------------------------------- manifests
def test_there_are_custom_resources_to_check() -> None:
    assert len([1 for _, _, doc in CUSTOM if _key(doc) in INDEX]) >= 10


@pytest.mark.parametrize(("rel", "i", "doc"), CUSTOM, ids=[_doc_id(*c) for c in CUSTOM])
def test_custom_resource_kind_has_a_schema(rel: str, i: int, doc: dict[str, Any]) -> None:
    assert _key(doc) in INDEX, (f"{rel}[{i}]: {_key(doc)} is a custom resource without a schema; "
                                "write schemas/crds/<group>_<plural>.json and add it to index.json")


@pytest.mark.parametrize(("rel", "i", "doc"), CUSTOM, ids=[_doc_id(*c) for c in CUSTOM])
def test_custom_resource_validates(rel: str, i: int, doc: dict[str, Any]) -> None:
    if _key(doc) not in INDEX:
        pytest.skip("no schema (reported by test_custom_resource_kind_has_a_schema)")
    assert _errors(doc) == [], f"{rel}[{i}] does not match {INDEX[_key(doc)]}"


INGRESS_ROUTES = [c for c in CUSTOM if c[2].get("kind") in ("IngressRoute", "IngressRouteTCP")]
WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
WORKLOADS = [(rel, i, doc) for rel, i, doc in MANIFESTS if doc.get("kind") in WORKLOAD_KINDS]
CHART_CONFIGS = [c for c in CUSTOM if c[2].get("kind") == "HelmChartConfig"]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec") or {}
    if doc["kind"] == "Pod":
        return spec
    if doc["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("spec")) or {}


@pytest.mark.parametrize(("rel", "i", "doc"), INGRESS_ROUTES, ids=[_doc_id(*c) for c in INGRESS_ROUTES])
def test_ingressroute_terminates_tls(rel: str, i: int, doc: dict[str, Any]) -> None:
    tls = doc["spec"].get("tls") or {}
    assert tls.get("secretName") or tls.get("certResolver") or tls.get("passthrough"), \
        f"{rel}[{i}]: every IngressRoute serves HTTPS (spec.tls.secretName from a cert-manager Certificate)"


@pytest.mark.parametrize(("rel", "i", "doc"), WORKLOADS, ids=[_doc_id(*c) for c in WORKLOADS])
def test_workload_containers_have_requests_and_limits(rel: str, i: int, doc: dict[str, Any]) -> None:
    pod = _pod_spec(doc)
    containers = pod.get("initContainers", []) + pod.get("containers", [])
    assert containers, f"{rel}[{i}]: no containers found"
    for c in containers:
        resources = c.get("resources") or {}
        assert resources.get("requests") and resources.get("limits"), \
            f"{rel}[{i}] container {c.get('name')}: set resources.requests and resources.limits"


@pytest.mark.parametrize(("rel", "i", "doc"), CHART_CONFIGS, ids=[_doc_id(*c) for c in CHART_CONFIGS])
def test_helmchartconfig_values_content_is_a_mapping(rel: str, i: int, doc: dict[str, Any]) -> None:
    assert isinstance(yaml.safe_load(doc["spec"]["valuesContent"]), dict)


# ---------------------------------------------------------------------------------------------------- fixtures
def _expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <error text>'"
    return first.removeprefix("# expect: ").strip()


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_broken_fixture_is_rejected(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert _key(doc) in INDEX, f"{path.name}: no schema for {_key(doc)}"
    assert path.stem.startswith(doc["kind"].lower() + "-"), "fixtures are named <kind>-<fault>.yaml"
    errors = _errors(doc)
    assert errors, f"{path.name} validated but must be rejected"
    expected = _expectation(path)
    assert any(expected in e for e in errors), f"{path.name}: no error mentions {expected!r}: {errors}"


@pytest.mark.parametrize("key", sorted(INDEX))
def test_every_schema_has_a_broken_fixture(key: str) -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in FIXTURE_FILES}
    assert key.rpartition("/")[2] in kinds


# Minimal valid objects for kinds the releases do not use yet, so those schemas are shown to accept something.
VALID_EXAMPLES: list[dict[str, Any]] = [
    {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRouteTCP",
        "metadata": {"name": "postgres", "namespace": "data"},
        "spec": {
            "entryPoints": ["postgres"],
            "routes": [{"match": "HostSNI(`*`)", "services": [{"name": "postgresql", "port": 5432}]}],
        },
    },
]


def test_every_schema_accepts_a_valid_object() -> None:
    seen = {_key(doc) for _, _, doc in CUSTOM} | {_key(doc) for doc in VALID_EXAMPLES}
    assert set(INDEX) <= seen, f"no valid object for {sorted(set(INDEX) - seen)}"
    for doc in VALID_EXAMPLES:
        assert _errors(doc) == []
