"""Loading the operator's YAML files safely: every way a file can be broken becomes a Problem.

Handled: missing file, empty file, binary content, invalid UTF-8, malformed YAML (with line and column),
duplicate keys (PyYAML silently keeps the last one, which hides typos), a wrong top-level type, and content
that is not JSON data (non-string keys, ``!!binary``/``!!set``/``!!omap`` values): digests, stamps and the
project cache are JSON. Unquoted dates stay strings, as the Kubernetes API and Helm read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from homelab.problems import Problem, dotted

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser is ~10x faster


class _StrictLoader(_Base):  # type: ignore[misc]
    """SafeLoader (libyaml-backed when available) that refuses duplicate mapping keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue  # SafeLoader reports unhashable keys itself
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"duplicate key {key!r} (first at line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# no implicit timestamps: `2024-01-01` stays the string it is for Kubernetes and Helm (a date is not JSON)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()  # type: ignore[attr-defined]
}

_JSON_SCALARS = (str, int, float, bool, type(None))


def not_json_problems(data: Any, rel: str, prefix: tuple[object, ...] = ()) -> list[Problem]:
    """Problems for mapping keys that are not strings and values that are not JSON data."""
    problems: list[Problem] = []

    def visit(node: Any, path: tuple[object, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    problems.append(Problem(rel, dotted(path), f"key {key!r} is not a string",
                                            "quote it: keys are strings"))
                    continue
                visit(value, (*path, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, (*path, i))
        elif not isinstance(node, _JSON_SCALARS):
            problems.append(Problem(rel, dotted(path), f"unsupported YAML value of type {type(node).__name__}",
                                    "use strings, numbers, booleans, null, lists and mappings only"))

    visit(data, prefix)
    return problems


def _malformed(rel: str, exc: Exception) -> Problem:
    """The problem for a document PyYAML could not load.

    Besides YAMLError, PyYAML's constructors raise plain ValueError/TypeError/KeyError for an explicit tag
    whose text does not fit it (``!!int nope``, ``!!timestamp 2024-13-45``, ``!!bool maybe``), and a deeply
    nested document can exhaust the recursion limit.
    """
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "unknown position"
        what = (exc.problem or exc.context or "malformed YAML").strip()
        return Problem(rel, "", f"malformed YAML at {where}: {what}", "fix the YAML syntax")
    if isinstance(exc, yaml.YAMLError):
        first = (str(exc).splitlines() or ["malformed YAML"])[0]
        return Problem(rel, "", f"malformed YAML: {first}", "fix the YAML syntax")
    if isinstance(exc, RecursionError):
        return Problem(rel, "", "malformed YAML: nested too deeply", "flatten the document")
    if isinstance(exc, (ValueError, TypeError, KeyError, OverflowError)):
        return Problem(rel, "", f"malformed YAML: a tagged value does not fit its tag ({type(exc).__name__}: "
                                f"{str(exc)[:120]})", "remove the !!tag or fix the value")
    raise exc


def parse_yaml_text(
    text: str, rel: str, *, expect: type = dict, allow_empty: bool = False
) -> tuple[Any, list[Problem]]:
    """Parse one YAML document; return (data, problems). ``rel`` names the file in messages."""
    if not text.strip():
        if allow_empty:
            return expect(), []
        return None, [Problem(rel, "", "file is empty", "write the document or delete the file")]
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except Exception as exc:  # every parser failure is the file's problem (see _malformed)
        return None, [_malformed(rel, exc)]
    if data is None and allow_empty:
        return expect(), []
    if not isinstance(data, expect):
        want = "a mapping of keys" if expect is dict else expect.__name__
        return None, [Problem(rel, "", f"top level must be {want}, found {type(data).__name__}",
                              "see the schema under schemas/")]
    problems = not_json_problems(data, rel)
    if problems:
        return None, problems
    return data, []


def load_yaml_file(
    path: Path, rel: str, *, expect: type = dict, allow_empty: bool = False
) -> tuple[Any, list[Problem]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, [Problem(rel, "", "file not found", "create it or check HOMELAB_ENV")]
    except OSError as exc:
        return None, [Problem(rel, "", f"cannot read file: {exc.strerror}", "check permissions")]
    if b"\x00" in raw:
        return None, [Problem(rel, "", "binary file, not YAML text", "replace it with a YAML document")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(rel, "", f"not valid UTF-8 (byte {exc.start})", "save the file as UTF-8")]
    return parse_yaml_text(text, rel, expect=expect, allow_empty=allow_empty)


def load_yaml_documents(path: Path, rel: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Load a multi-document manifest file; every document must be a mapping (empty documents are skipped)."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(rel, "", f"cannot read manifest: {exc}", "save it as UTF-8 YAML")]
    if "\x00" in text:
        return [], [Problem(rel, "", "binary file, not YAML text", "replace it with YAML manifests")]
    try:
        docs = list(yaml.load_all(text, Loader=_StrictLoader))
    except Exception as exc:  # see _malformed
        return [], [_malformed(rel, exc)]
    out: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append(Problem(rel, f"[{i}]", f"document must be a mapping, found {type(doc).__name__}",
                                    "each document is one Kubernetes object"))
            continue
        found = not_json_problems(doc, rel, (i,))
        if found:
            problems += found
            continue
        out.append(doc)
    return out, problems
