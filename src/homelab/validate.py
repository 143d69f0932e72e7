"""Schema validation of rendered Kubernetes objects, offline: core kinds, CRD kinds, CRDs themselves.

- Core kinds (and CustomResourceDefinition objects) are checked against the strict JSON schemas that
  kubernetes-validate ships for the cluster's minor version: an unknown field is an error, as it is for
  ``kubectl apply --validate=strict``.
- CRD kinds are checked against the project's own schemas in ``schemas/crds/`` (``index.json`` maps
  ``group/version/Kind`` to a file).
- Any other kind is a violation: without a schema nothing would catch a typo before the cluster does.

Speed: kubernetes-validate builds a fresh jsonschema validator (and re-reads a 1.3 MB definitions file) for
every document, and jsonschema itself manages about 1,300 documents/s on a warm validator here. So each
schema is compiled once per process into plain Python closures (``_Compiler``) that report *every* error
with the path of the offending field, not just the first; a schema using a keyword the compiler does not
know falls back to a cached jsonschema validator, so correctness never depends on the compiler's coverage.
The tests compare both on every fixture.
"""

from __future__ import annotations

import difflib
import functools
import gc
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from homelab.violations import Violation, for_object

# -- kube versions -------------------------------------------------------------------------------------

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def kube_version(k3s_version: str) -> str:
    """The Kubernetes version a k3s release carries: ``v1.31.4+k3s1`` -> ``1.31.4``."""
    m = _VERSION.match(k3s_version.strip())
    if not m:
        raise ValueError(f"not a Kubernetes version: {k3s_version!r}")
    return f"{m.group(1)}.{m.group(2)}.{m.group(3) or 0}"


def _minor(version: str) -> tuple[int, int]:
    m = _VERSION.match(version)
    if not m:
        raise ValueError(f"not a Kubernetes version: {version!r}")
    return int(m.group(1)), int(m.group(2))


@functools.lru_cache(maxsize=1)
def _kv_schema_root() -> Path:
    """kubernetes-validate's schema directory, found without importing it (its import costs 0.1 s)."""
    import importlib.util

    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("kubernetes-validate is not installed: pip install kubernetes-validate")
    return Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"


@functools.lru_cache(maxsize=1)
def _schema_versions() -> tuple[str, ...]:
    names = [p.name for p in _kv_schema_root().iterdir() if p.name.endswith("-local-strict")]
    # compared as integers: kubernetes-validate compares "1.9" > "1.31" as strings
    return tuple(sorted((n[1:].removesuffix("-local-strict") for n in names), key=_minor))


def schema_version(kube: str) -> str:
    """The newest kubernetes-validate schema set not newer than the cluster's minor version.

    A cluster newer than every schema set is checked against the newest one (new minors rarely remove
    fields); one older than every set cannot be checked honestly and raises ValueError.
    """
    want = _minor(kube)
    usable = [v for v in _schema_versions() if _minor(v) <= want]
    if not usable:
        raise ValueError(f"kubernetes-validate has no schemas for Kubernetes {kube} "
                         f"(oldest is {_schema_versions()[0]})")
    return usable[-1]


# -- loading schema files, once per process --------------------------------------------------------------

def install_schema_cache() -> None:
    """Memoize kubernetes-validate's schema file reads (its own validate() re-reads them per document).

    Patched on the module so kubernetes_validate.validate (used as the reference in tests) is fast too.
    The returned dicts are shared: nothing here or in jsonschema mutates a schema.
    """
    from kubernetes_validate import utils

    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)


def _kv_schema(version: str, filename: str) -> Any:
    """A file of kubernetes-validate's strict schema set for ``version``; None when it does not exist."""
    path = _kv_schema_root() / f"v{version}-local-strict" / filename
    try:
        return _load_json(path)
    except FileNotFoundError:
        return None


@functools.lru_cache(maxsize=256)
def _read_json(path: str, mtime_ns: int, size: int) -> Any:
    # keyed by mtime and size so an edited schema is re-read by a long-lived process (tests, watch mode)
    return json.loads(Path(path).read_text())


def _load_json(path: Path) -> Any:
    st = path.stat()
    return _read_json(str(path), st.st_mtime_ns, st.st_size)


# -- the schema compiler -----------------------------------------------------------------------------

# A path is a chain of (parent, key) pairs, built in O(1) per step and flattened only when reporting.
PathChain = tuple[Any, str | int] | None
Errors = list[tuple[PathChain, str]]
Check = Callable[[Any, PathChain, Errors], None]

_ANNOTATIONS = frozenset({"nullable", "description", "title", "default", "examples", "$schema", "$id", "$comment",
                          "readOnly",
                          "writeOnly", "deprecated", "format", "$defs", "definitions", "discriminator",
                          "$anchor"})
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class Unsupported(Exception):
    """The schema uses a keyword the compiler does not implement: use jsonschema for it instead."""


def flatten(chain: PathChain) -> list[str | int]:
    parts: list[str | int] = []
    while chain is not None:
        chain, key = chain
        parts.append(key)
    parts.reverse()
    return parts


def _type_name(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Compiler:
    """Compiles a JSON Schema (the subset Kubernetes and our CRD schemas use) into checking closures.

    ``documents`` maps a reference prefix (the part before ``#``) to the document it names, so core
    schemas can point into kubernetes-validate's shared ``_definitions.json``.
    """

    def __init__(self, documents: dict[str, Any], *, structural: bool = False) -> None:
        self.documents = documents
        # structural: a CRD's openAPIV3Schema. The API server drops (or, under strict field validation,
        # rejects) fields its properties do not list unless x-kubernetes-preserve-unknown-fields is set,
        # so an object schema with properties is closed unless it says otherwise.
        self.structural = structural
        self._refs: dict[tuple[int, str], Check | None] = {}

    def compile(self, schema: Any, doc: Any) -> Check | None:
        """A check for ``schema`` (found inside ``doc``), or None when it accepts everything."""
        if schema is True or schema == {}:
            return None
        if schema is False:
            return lambda v, p, e: e.append((p, "no value is allowed here"))
        if not isinstance(schema, dict):
            raise Unsupported(f"schema node is a {type(schema).__name__}")
        keys = schema.keys()
        unknown = [k for k in keys - _KNOWN if not k.startswith("x-")]
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        if not keys & _HANDLED:
            return None  # annotations only (a description, a format)
        if keys & _HANDLED == {"type"}:
            return _typed(_with_null(schema), None)
        if self.structural and "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema = {**schema, "additionalProperties": False}
        checks: list[Check] = []
        if "$ref" in schema:
            ref = self._ref(schema["$ref"], doc)
            if ref is not None:
                checks.append(ref)
        for key in ("const", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
                    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "uniqueItems",
                    "minProperties", "maxProperties"):
            if key in schema:
                checks.append(_SIMPLE[key](schema[key]))
        if {"properties", "additionalProperties", "required", "patternProperties", "propertyNames"} & schema.keys():
            checks.append(self._object(schema, doc))
        if "items" in schema:
            checks.append(self._items(schema["items"], doc))
        for key in ("allOf", "anyOf", "oneOf"):
            if key in schema:
                checks.append(self._combinator(key, schema[key], doc))
        if "not" in schema:
            negated = self.compile(schema["not"], doc)
            checks.append(_not(negated))
        body = _sequence(checks)
        if "type" not in schema:
            return body
        return _typed(_with_null(schema), body)

    def _ref(self, ref: str, doc: Any) -> Check | None:
        prefix, _, pointer = ref.partition("#")
        target_doc = self.documents[prefix] if prefix else doc
        key = (id(target_doc), pointer)
        if key in self._refs:
            return self._refs[key]
        # compiled on first use: a Deployment reaches hundreds of definitions it never exercises, and a
        # recursive schema reaches its own ref again while compiling it
        cell: list[Check | None] = []

        def lazy(v: Any, p: PathChain, e: Errors) -> None:
            if not cell:
                node = target_doc
                for part in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
                    part = part.replace("~1", "/").replace("~0", "~")
                    node = node[int(part)] if isinstance(node, list) else node[part]
                cell.append(self.compile(node, target_doc))
            target = cell[0]
            if target is not None:
                target(v, p, e)

        self._refs[key] = lazy
        return lazy

    def _object(self, schema: dict[str, Any], doc: Any) -> Check:
        raw: dict[str, Any] = schema.get("properties", {})
        # each property compiled when a document first uses it: a PodSpec has ~40, a manifest sets a handful
        props: dict[str, Check | None] = {}
        required = tuple(schema.get("required", ()))
        extra = schema.get("additionalProperties", True)
        extra_check = None if extra in (True, {}) or extra is False else self.compile(extra, doc)
        closed = extra is False
        patterns = [(re.compile(p), self.compile(s, doc)) for p, s in schema.get("patternProperties", {}).items()]
        names = self.compile(schema["propertyNames"], doc) if "propertyNames" in schema else None
        known = sorted(raw)

        def check(v: Any, p: PathChain, e: Errors) -> None:
            if not isinstance(v, dict):
                return
            for key in required:
                if key not in v:
                    e.append(((p, key), "required field is missing"))
            for key, value in v.items():
                if names is not None:
                    names(key, (p, key), e)
                matched = False
                for regex, pcheck in patterns:
                    if regex.search(key):
                        matched = True
                        if pcheck is not None:
                            pcheck(value, (p, key), e)
                if key in raw:
                    c = props[key] if key in props else props.setdefault(key, self.compile(raw[key], doc))
                    if c is not None:
                        c(value, (p, key), e)
                elif matched:
                    continue
                elif closed:
                    close = difflib.get_close_matches(str(key), known, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    e.append(((p, key), f"unknown field{hint}"))
                elif extra_check is not None:
                    extra_check(value, (p, key), e)

        return check

    def _items(self, items: Any, doc: Any) -> Check:
        if isinstance(items, list):
            raise Unsupported("tuple-form items")
        item = self.compile(items, doc)

        def check(v: Any, p: PathChain, e: Errors) -> None:
            if item is not None and isinstance(v, list):
                for i, x in enumerate(v):
                    item(x, (p, i), e)

        return check

    def _combinator(self, key: str, branches: list[Any], doc: Any) -> Check:
        compiled = [self.compile(b, doc) for b in branches]
        # a branch that is only a type ("string", ["integer", "null"]) lets the message name the types
        type_names = [_pure_type(b) for b in branches]

        def outcomes(v: Any, p: PathChain) -> list[Errors]:
            results: list[Errors] = []
            for c in compiled:
                found: Errors = []
                if c is not None:
                    c(v, p, found)
                results.append(found)
            return results

        if key == "allOf":
            def all_of(v: Any, p: PathChain, e: Errors) -> None:
                for c in compiled:
                    if c is not None:
                        c(v, p, e)
            return all_of

        def one_or_any(v: Any, p: PathChain, e: Errors) -> None:
            results = outcomes(v, p)
            passing = sum(1 for r in results if not r)
            if passing == 1 or (passing > 1 and key == "anyOf"):
                return
            if passing > 1:
                e.append((p, f"matches {passing} of the allowed forms, exactly one must match"))
            elif all(names is not None for names in type_names):
                wanted = " or ".join(t for names in type_names for t in names or () if t != "null")
                e.append((p, f"expected {wanted}, got {_type_name(v)} {_show(v)}"))
            else:
                # report the branch that came closest: the one with the fewest errors
                best: Errors = min(results, key=_count)
                e.extend(best)

        return one_or_any


def _with_null(schema: dict[str, Any]) -> str | list[str]:
    """The schema's type, plus null when OpenAPI's ``nullable: true`` says so."""
    wanted: str | list[str] = schema["type"]
    if schema.get("nullable") is True:
        return [*([wanted] if isinstance(wanted, str) else wanted), "null"]
    return wanted


def _count(found: Errors) -> int:
    return len(found)


def _pure_type(schema: Any) -> list[str] | None:
    if isinstance(schema, dict) and "type" in schema and all(k == "type" or k in _ANNOTATIONS for k in schema):
        t = schema["type"]
        return [t] if isinstance(t, str) else list(t)
    return None


def _sequence(checks: list[Check]) -> Check | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def run(v: Any, p: PathChain, e: Errors) -> None:
        for c in checks:
            c(v, p, e)

    return run


def _typed(wanted: str | list[str], body: Check | None) -> Check:
    names = [wanted] if isinstance(wanted, str) else list(wanted)
    if not all(isinstance(n, str) and n in _TYPES for n in names):
        raise Unsupported(f"type {wanted!r}")
    tests = [_TYPES[n] for n in names]
    label = " or ".join(n for n in names if n != "null") or "null"

    def check(v: Any, p: PathChain, e: Errors) -> None:
        for t in tests:
            if t(v):
                break
        else:
            # a wrong type makes every other keyword's complaint noise: report only this one
            e.append((p, f"expected {label}, got {_type_name(v)} {_show(v)}"))
            return
        if body is not None:
            body(v, p, e)

    return check


def _not(negated: Check | None) -> Check:
    def check(v: Any, p: PathChain, e: Errors) -> None:
        found: Errors = []
        if negated is not None:
            negated(v, p, found)
        if not found:
            e.append((p, "matches a form that is not allowed"))

    return check


def _const(expected: Any) -> Check:
    def check(v: Any, p: PathChain, e: Errors) -> None:
        if not _same(v, expected):
            e.append((p, f"must be {_show(expected)}, got {_show(v)}"))
    return check


def _enum(options: list[Any]) -> Check:
    def check(v: Any, p: PathChain, e: Errors) -> None:
        if not any(_same(v, o) for o in options):
            e.append((p, f"{_show(v)} is not one of {', '.join(_show(o) for o in options)}"))
    return check


def _same(a: Any, b: Any) -> bool:
    """JSON equality: True is not 1, 1.0 is 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _pattern(text: str) -> Check:
    try:
        regex = re.compile(text)
    except re.error:
        # Go's RE2 accepts global flags mid-pattern (upstream PrometheusRule: ^(?i)(abort|warn)?$); Python
        # only at the start. Move them there; a pattern that still does not compile cannot be checked here.
        flags = "".join(re.findall(r"\(\?[a-z]+\)", text))
        try:
            regex = re.compile(flags + re.sub(r"\(\?[a-z]+\)", "", text))
        except re.error:
            return lambda v, p, e: None

    def check(v: Any, p: PathChain, e: Errors) -> None:
        if isinstance(v, str) and not regex.search(v):
            e.append((p, f"{_show(v)} does not match {text!r}"))
    return check


def _bound(keyword: str, limit: Any) -> Check:
    # (applies to, measure, failed-when, message)
    spec: dict[str, tuple[type | tuple[type, ...], Callable[[Any], Any], Callable[[Any, Any], bool], str]] = {
        "minLength": (str, len, lambda m, n: m < n, "shorter than {n} characters"),
        "maxLength": (str, len, lambda m, n: m > n, "longer than {n} characters"),
        "minItems": (list, len, lambda m, n: m < n, "fewer than {n} items"),
        "maxItems": (list, len, lambda m, n: m > n, "more than {n} items"),
        "minProperties": (dict, len, lambda m, n: m < n, "fewer than {n} fields"),
        "maxProperties": (dict, len, lambda m, n: m > n, "more than {n} fields"),
        "minimum": ((int, float), lambda x: x, lambda m, n: m < n, "less than {n}"),
        "maximum": ((int, float), lambda x: x, lambda m, n: m > n, "greater than {n}"),
        "exclusiveMinimum": ((int, float), lambda x: x, lambda m, n: m <= n, "not greater than {n}"),
        "exclusiveMaximum": ((int, float), lambda x: x, lambda m, n: m >= n, "not less than {n}"),
        "multipleOf": ((int, float), lambda x: x, lambda m, n: (m / n) != int(m / n), "not a multiple of {n}"),
    }
    applies, measure, failed, message = spec[keyword]
    if isinstance(limit, bool):
        raise Unsupported(f"boolean {keyword} (draft 4)")
    text = "must not be empty" if keyword in ("minLength", "minItems", "minProperties") and limit == 1 \
        else message.format(n=limit)

    def check(v: Any, p: PathChain, e: Errors) -> None:
        if isinstance(v, applies) and not isinstance(v, bool) and failed(measure(v), limit):
            e.append((p, text))
    return check


def _unique(flag: bool) -> Check:
    def check(v: Any, p: PathChain, e: Errors) -> None:
        if flag and isinstance(v, list):
            seen = [json.dumps(x, sort_keys=True) for x in v]
            if len(set(seen)) != len(seen):
                e.append((p, "items are not unique"))
    return check


_SIMPLE: dict[str, Callable[[Any], Check]] = {
    "const": _const,
    "enum": _enum,
    "pattern": _pattern,
    "uniqueItems": _unique,
    **{k: functools.partial(_bound, k) for k in ("minLength", "maxLength", "minItems", "maxItems", "minProperties",
                                                 "maxProperties", "minimum", "maximum", "exclusiveMinimum",
                                                 "exclusiveMaximum", "multipleOf")},
}
_HANDLED = frozenset({*_SIMPLE, "$ref", "type", "properties", "additionalProperties", "required",
                      "patternProperties", "propertyNames", "items", "allOf", "anyOf", "oneOf", "not"})
_KNOWN = _HANDLED | _ANNOTATIONS


# -- validators per kind -----------------------------------------------------------------------------

Validator = Callable[[dict[str, Any]], list[tuple[list[str | int], str]]]


def _from_check(check: Check | None, schema: dict[str, Any], documents: dict[str, Any]) -> Validator:
    fallback: list[Validator] = []

    def validate(obj: dict[str, Any]) -> list[tuple[list[str | int], str]]:
        if fallback:
            return fallback[0](obj)
        found: Errors = []
        try:
            if check is not None:
                check(obj, None, found)
        except _UNCOMPILABLE:
            # a definition compiled on first use needs jsonschema (or is malformed): switch for good
            fallback.append(_jsonschema_validator(schema, documents))
            return fallback[0](obj)
        return [(flatten(p), m) for p, m in found]
    return validate


def _jsonschema_validator(schema: dict[str, Any], documents: dict[str, Any]) -> Validator:
    """The slow, complete path for schemas the compiler does not cover."""
    import jsonschema
    from referencing import Registry, Resource

    registry: Registry[Any] = Registry()
    for uri, doc in documents.items():
        registry = registry.with_resource(uri, Resource.from_contents(doc))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(root)"
        broken = f"cannot check: its schema is invalid at {where}: {exc.message}"
        return lambda obj: [([], broken)]
    validator = cls(schema, registry=registry)

    def validate(obj: dict[str, Any]) -> list[tuple[list[str | int], str]]:
        try:
            return [(list(err.absolute_path), err.message) for err in validator.iter_errors(obj)]
        except Exception as exc:  # an unresolvable $ref, a regex Python cannot compile
            return [([], f"cannot check: its schema fails to evaluate: {type(exc).__name__}: {exc}")]
    return validate


def build_validator(schema: dict[str, Any], documents: dict[str, Any] | None = None) -> Validator:
    """A reusable validator for one schema: compiled when possible, jsonschema otherwise."""
    return _build(_Compiler(documents or {}), schema)


# Raised while compiling an unusual or malformed schema: jsonschema (the reference) takes over for it.
_UNCOMPILABLE = (Unsupported, TypeError, AttributeError, KeyError, IndexError, ValueError)


def _build(compiler: _Compiler, schema: dict[str, Any]) -> Validator:
    try:
        return _from_check(compiler.compile(schema, schema), schema, compiler.documents)
    except _UNCOMPILABLE:
        return _jsonschema_validator(schema, compiler.documents)


_CORE: dict[tuple[str, str, str], Validator | None] = {}
_CORE_COMPILERS: dict[str, _Compiler] = {}
_CRD: dict[tuple[str, str], Validator] = {}


def reset_caches() -> None:
    """Forget every built validator and read file (benchmarks measure cold runs with this)."""
    _CORE.clear()
    _CORE_COMPILERS.clear()
    _CRD.clear()
    _read_json.cache_clear()
    _schema_versions.cache_clear()
    _kv_schema_root.cache_clear()


def _core_validator(version: str, api_version: str, kind: str) -> Validator | None:
    key = (version, api_version, kind)
    if key not in _CORE:
        _CORE[key] = _build_core(version, api_version, kind)
    return _CORE[key]


def _build_core(version: str, api_version: str, kind: str) -> Validator | None:
    group, _, ver = api_version.rpartition("/")
    # kubernetes-validate's file naming: group's first label, e.g. rbac.authorization.k8s.io/v1 -> rbac-v1
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = _kv_schema(version, f"{kind.lower()}-{short}.json")
    if not isinstance(schema, dict):
        return None
    # the naming drops the group's domain: make sure e.g. networking.example.com/v1 Ingress is not core Ingress
    gvks = schema.get("x-kubernetes-group-version-kind", [])
    if not any(g.get("group", "") == group and g.get("version") == ver and g.get("kind") == kind for g in gvks):
        return None
    if version not in _CORE_COMPILERS:
        definitions = _kv_schema(version, "_definitions.json")
        # per-kind files point at "/api/_definitions.json#/$defs/...", the definitions at "#/$defs/..."
        _CORE_COMPILERS[version] = _Compiler({"/api/_definitions.json": definitions,
                                              "https://kubernetes.io/api/_definitions.json": definitions})
    # one compiler per schema set: ObjectMeta, PodSpec & co. are compiled once for all kinds that use them
    return _build(_CORE_COMPILERS[version], schema)


def _crd_validator(crd_schema_dir: Path, gvk: str) -> Validator | None:
    index_path = crd_schema_dir / "index.json"
    if not index_path.is_file():
        return None
    index = _load_json(index_path)
    entry = index.get(gvk) if isinstance(index, dict) else None
    if isinstance(entry, dict):
        entry = entry.get("file") or entry.get("schema")
    if not isinstance(entry, str):
        return None
    path = crd_schema_dir / entry
    st = path.stat()
    key = (str(path), f"{st.st_mtime_ns}:{st.st_size}")
    if key not in _CRD:
        schema = _load_json(path)
        _CRD[key] = build_validator(schema, {schema.get("$id", ""): schema} if schema.get("$id") else {})
    return _CRD[key]


def _shipped_crds(objects: list[dict[str, Any]]) -> dict[str, Validator]:
    """Validators for the kinds CRDs among ``objects`` define (a chart that ships CRDs and uses them).

    Built lazily per call: compiling is on first use, and each call brings its own CRDs.
    """
    out: dict[str, Validator] = {}
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("kind") != "CustomResourceDefinition":
            continue
        if not str(obj.get("apiVersion", "")).startswith("apiextensions.k8s.io/"):
            continue
        group, kind = _get_path(obj, ("spec", "group")), _get_path(obj, ("spec", "names", "kind"))
        versions = _get_path(obj, ("spec", "versions"))
        for version in versions if isinstance(versions, list) else []:
            schema = _get_path(version, ("schema", "openAPIV3Schema"))
            if group and kind and isinstance(version, dict) and isinstance(schema, dict):
                out[f"{group}/{version.get('name')}/{kind}"] = _structural_validator(schema)
    return out


def _get_path(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _structural_validator(schema: dict[str, Any]) -> Validator:
    # the API server adds apiVersion, kind and metadata to every CRD's schema; many CRDs do not list them
    implicit = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    properties = schema.get("properties")
    root = {**schema, "properties": {**implicit, **(properties if isinstance(properties, dict) else {})}}
    return _build(_Compiler({}, structural=True), root)


def gvk(obj: dict[str, Any]) -> str:
    """``group/version/Kind`` as written in schemas/crds/index.json (``v1/Pod`` for the core group)."""
    return f"{obj.get('apiVersion')}/{obj.get('kind')}"


def validate_objects(objects: Iterable[dict[str, Any]], kube_version: str, crd_schema_dir: Path, *,
                     release: str = "") -> list[Violation]:
    """Every schema violation of every object, in object order then field order."""
    # Loading and compiling schemas allocates ~10^5 long-lived objects; cyclic GC passes over them cost
    # more than the whole validation of a typical release (measured: 2x on a cold run). Nothing here
    # creates garbage cycles worth collecting, so collection waits until the call returns.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _validate_objects(objects, kube_version, crd_schema_dir, release)
    finally:
        if enabled:
            gc.enable()


def _validate_objects(objects: Iterable[dict[str, Any]], kube_version: str, crd_schema_dir: Path,
                      release: str) -> list[Violation]:
    version = schema_version(kube_version)
    objects = list(objects)
    shipped = _shipped_crds(objects)
    out: list[Violation] = []
    for obj in objects:
        if not isinstance(obj, dict):
            out.append(Violation(release, "<not an object>", "<no name>", "", "a rendered document is not a mapping"))
            continue
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
            out.append(for_object(release, obj, "apiVersion" if not api_version else "kind",
                                  "required field is missing"))
            continue
        validator = _core_validator(version, api_version, kind)
        if validator is None:
            try:
                validator = _crd_validator(crd_schema_dir, gvk(obj))
            except (OSError, ValueError) as exc:
                out.append(for_object(release, obj, "", f"cannot read the schema for {gvk(obj)}: {exc}"))
                continue
        if validator is None and gvk(obj) in shipped:
            validator = shipped[gvk(obj)]
        if validator is None:
            out.append(for_object(release, obj, "", _no_schema(obj, version)))
            continue
        for path, message in validator(obj):
            out.append(for_object(release, obj, _dotted(path), message))
    return out


# API groups Kubernetes serves itself: a missing schema there is a wrong apiVersion or kind, not a missing CRD
_BUILTIN_GROUPS = frozenset({"", "apps", "batch", "policy", "autoscaling", "extensions"})


def _no_schema(obj: dict[str, Any], version: str) -> str:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    if group in _BUILTIN_GROUPS or group.endswith(".k8s.io"):
        return f"no schema for {gvk(obj)}: Kubernetes {'.'.join(version.split('.')[:2])} has no such API " \
               "(check apiVersion and kind)"
    return f"no schema for {gvk(obj)}: add schemas/crds/{group}_<plural>.json and list it in schemas/crds/index.json"


def _dotted(parts: list[str | int]) -> str:
    from homelab.problems import dotted

    return dotted(parts)
