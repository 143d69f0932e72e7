"""Schema validation of rendered objects: exact lines for every failure fixture, agreement with the reference
validators (kubernetes-validate for core kinds, jsonschema for CRD kinds) on fixtures and on mutated objects."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from homelab import validate
from homelab.validate import validate_objects
from tests.helpers import FIXTURES, REPO

CRDS = REPO / "schemas" / "crds"
KUBE = "1.31.4"
CASES = sorted((FIXTURES / "validate").glob("*.yaml"))
FAULTS = [c for c in CASES if not c.name.startswith("valid-")]
CRD_FAULTS = sorted((FIXTURES / "crds").glob("*.yaml"))  # the CRD schemas' own broken fixtures


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _expected(path: Path) -> list[str]:
    return [ln.removeprefix("# expect: ") for ln in path.read_text().splitlines() if ln.startswith("# expect: ")]


def _reference_valid(doc: dict[str, Any]) -> bool | None:
    """What the reference validators say; None when neither has a schema for the kind."""
    validate.install_schema_cache()
    try:
        kubernetes_validate.validate(doc, KUBE, strict=True)
        return True
    except kubernetes_validate.ValidationError:
        return False
    except kubernetes_validate.SchemaNotFoundError:
        pass
    index = json.loads((CRDS / "index.json").read_text())
    name = index.get(f"{doc.get('apiVersion')}/{doc.get('kind')}")
    if name is None:
        return None
    schema = json.loads((CRDS / name).read_text())
    return bool(jsonschema.Draft202012Validator(schema).is_valid(doc))


@pytest.mark.parametrize("case", FAULTS, ids=[c.stem for c in FAULTS])
def test_fault_fixture_reports_exactly_its_lines(case: Path) -> None:
    expected = _expected(case)
    assert expected, f"{case.name} has no '# expect:' line"
    lines = [v.line() for v in validate_objects(_docs(case), KUBE, CRDS, release="fixture")]
    assert lines == expected


def test_valid_fixture_passes() -> None:
    docs = _docs(FIXTURES / "validate" / "valid-core-and-crd.yaml")
    assert validate_objects(docs, KUBE, CRDS, release="fixture") == []
    assert all(_reference_valid(d) for d in docs)


@pytest.mark.parametrize("case", FAULTS, ids=[c.stem for c in FAULTS])
def test_reference_validators_agree_on_fixtures(case: Path) -> None:
    for doc in _docs(case):
        reference = _reference_valid(doc)
        if reference is not None:
            assert reference is False, f"{case.name}: the reference validator accepts it"


@pytest.mark.skipif(not CRD_FAULTS, reason="no CRD fixtures yet")
@pytest.mark.parametrize("case", CRD_FAULTS, ids=[c.stem for c in CRD_FAULTS])
def test_every_crd_failure_fixture_is_detected(case: Path) -> None:
    docs = _docs(case)
    found = validate_objects(docs, KUBE, CRDS, release="fixture")
    assert found, f"{case.name}: no violation reported"
    assert not [v for v in found if "no schema for" in v.message]
    assert all(_reference_valid(d) is False for d in docs)


# -- agreement with the references on mutated objects ---------------------------------------------------------

def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _mutations(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each object once per node: an unknown key added to every mapping, a wrongly typed value for every leaf."""
    for path, node in list(_paths(doc)):
        if isinstance(node, dict):
            mutated = copy.deepcopy(doc)
            target = mutated
            for key in path:
                target = target[key]
            target["zzUnknownField"] = "x"
            yield mutated
        elif path and path[-1] not in ("apiVersion", "kind"):
            wrong: Any = {"str": 7, "int": "seven", "float": "x", "bool": "yes", "list": {"a": 1}}.get(
                type(node).__name__, ["x"])
            mutated = copy.deepcopy(doc)
            _set(mutated, path, wrong)
            yield mutated


@pytest.mark.parametrize("source", ["valid-core-and-crd", "policy-valid"])
def test_compiled_validator_agrees_with_references_on_mutations(source: str) -> None:
    path = FIXTURES / "validate" / "valid-core-and-crd.yaml" if source == "valid-core-and-crd" \
        else FIXTURES / "policy" / "valid-everything.yaml"
    checked = 0
    for doc in _docs(path):
        for mutated in _mutations(doc):
            reference = _reference_valid(mutated)
            if reference is None:
                continue
            ours = not validate_objects([mutated], KUBE, CRDS)
            assert ours == reference, f"disagree on {json.dumps(mutated)[:300]}"
            checked += 1
    assert checked > 100


# -- the compiler's corners ------------------------------------------------------------------------------------

def test_unsupported_keyword_falls_back_to_jsonschema() -> None:
    schema = {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}
    check = validate.build_validator(schema)
    assert check({"a": 1}) and not check({"a": 1, "b": 2}) and not check({})


def test_recursive_references_compile() -> None:
    schema = {"$defs": {"node": {"type": "object", "additionalProperties": False,
                                 "properties": {"v": {"type": "integer"},
                                                "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
              "$ref": "#/$defs/node"}
    check = validate.build_validator(schema)
    assert check({"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}) == []
    assert check({"v": 1, "kids": [{"v": 2, "kids": [{"v": "3"}]}]}) == [
        (["kids", 0, "kids", 0, "v"], "expected integer, got string '3'")]


def test_oneof_anyof_const_and_bounds() -> None:
    schema = {"type": "object", "properties": {
        "o": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
        "a": {"anyOf": [{"type": "string", "pattern": "^x"}, {"type": "integer"}]},
        "c": {"const": True}, "n": {"type": "array", "minItems": 1, "uniqueItems": True}}}
    check = validate.build_validator(schema)
    ref = jsonschema.Draft202012Validator(schema)
    for value in ({"o": 1}, {"o": 1.5}, {"o": -1.5}, {"a": "xy"}, {"a": "y"}, {"a": 3}, {"c": True}, {"c": 1},
                  {"n": []}, {"n": [1, 1]}, {"n": [1, True]}, {"o": "1"}):
        assert (check(value) == []) == ref.is_valid(value), value


def test_versions() -> None:
    assert validate.kube_version("v1.31.4+k3s1") == "1.31.4"
    assert validate.kube_version("1.30") == "1.30.0"
    assert validate.schema_version("1.31.4") == "1.31.0"
    newest = validate.schema_version("1.99.0")
    assert newest.startswith("1.") and validate._minor(newest) >= (1, 37)
    with pytest.raises(ValueError, match=r"no schemas for Kubernetes 1\.10"):
        validate.schema_version("1.10.0")


def test_validators_are_built_once_per_kind() -> None:
    validate.reset_caches()
    doc = _docs(FIXTURES / "validate" / "valid-core-and-crd.yaml")[0]
    validate_objects([copy.deepcopy(doc) for _ in range(50)], KUBE, CRDS)
    assert [k for k in validate._CORE if k[2] == "Deployment"] == [("1.31.0", "apps/v1", "Deployment")]


def test_edited_crd_schema_is_reread(tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "index.json").write_text(json.dumps({"example.com/v1/Widget": "w.json"}))
    (crds / "w.json").write_text(json.dumps({"type": "object", "properties": {"spec": {"type": "object"}}}))
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    assert validate_objects([widget], KUBE, crds) == []
    (crds / "w.json").write_text(json.dumps({"type": "object", "properties": {"spec": {
        "type": "object", "additionalProperties": False, "properties": {"color": {"type": "string"}}}}}))
    assert [v.line() for v in validate_objects([widget], KUBE, crds, release="r")] == [
        "r: Widget/w: spec.size: unknown field"]


# -- custom resources whose CRD comes in the same rendering ------------------------------------------------

GADGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"kind": "Gadget", "plural": "gadgets"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object",
                 "properties": {
                     "spec": {"type": "object", "required": ["size"], "properties": {
                         "size": {"type": "integer"},
                         "mode": {"type": "string", "pattern": "^(?i)(abort|warn)?$"},
                         "note": {"type": "string", "nullable": True},
                         "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                         "port": {"x-kubernetes-int-or-string": True,
                                  "anyOf": [{"type": "integer"}, {"type": "string"}]}}}}}}}]}}


def _gadget(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": "apps"},
            "spec": spec}


def test_custom_resource_is_checked_against_the_crd_shipped_with_it() -> None:
    good = _gadget({"size": 2, "mode": "WARN", "note": None, "extra": {"anything": [1]}, "port": "http"})
    assert validate_objects([GADGET_CRD, good], KUBE, CRDS) == []
    bad = _gadget({"sise": 2, "mode": "stop", "port": [1]})
    assert [v.line() for v in validate_objects([GADGET_CRD, bad], KUBE, CRDS, release="r")] == [
        "r: Gadget/g: spec.size: required field is missing",
        "r: Gadget/g: spec.sise: unknown field (did you mean 'size'?)",
        "r: Gadget/g: spec.mode: 'stop' does not match '^(?i)(abort|warn)?$'",
        "r: Gadget/g: spec.port: expected integer or string, got array [1]",
    ]
    # without its CRD in the same batch, nothing describes the kind
    (alone,) = validate_objects([good], KUBE, CRDS, release="r")
    assert alone.message.startswith("no schema for example.com/v1/Gadget: add schemas/crds/example.com_")


def test_unknown_top_level_field_of_a_custom_resource_is_reported() -> None:
    cr = {**_gadget({"size": 1}), "spek": {}}
    assert [v.line() for v in validate_objects([GADGET_CRD, cr], KUBE, CRDS, release="r")] == [
        "r: Gadget/g: spek: unknown field (did you mean 'spec'?)"]


def test_broken_schema_is_a_violation_not_a_crash(tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "index.json").write_text(json.dumps({"example.com/v1/Widget": "w.json"}))
    (crds / "w.json").write_text(json.dumps({"type": "object", "properties": {"spec": {"type": 7}}}))
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    (found,) = validate_objects([widget], KUBE, crds, release="r")
    assert found.line().startswith("r: Widget/w: (object): cannot check: its schema is invalid at "
                                   "properties.spec.type: ")
