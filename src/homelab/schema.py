"""JSON Schema validation of inventories, release files and secrets, reported as Problems.

Messages are rewritten for operators: an unknown key names the key and lists the allowed ones, a wrong
type says what was expected and what was found. A schema may carry ``x-hint`` on any subschema to give
the fix for that field.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from homelab.problems import Problem, dotted

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}


@cache
def load_schema(schema_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((schema_dir / name).read_text())
    return data


def _ecma_anchors(pattern: str) -> str:
    """``pattern`` with ``$`` (outside a character class) as ``\\Z``.

    JSON Schema patterns are ECMA-262 regexes, where ``$`` matches only at the very end. Python's ``$`` also
    matches before a final newline, so ``^[a-z]+$`` would accept ``"name\\n"`` and an address like
    ``"10.0.0.1\\n"`` would pass the schema and reach ``ipaddress`` unchecked.
    """
    out: list[str] = []
    escaped = in_class = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            ch = r"\Z"
        out.append(ch)
    return "".join(out)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(_ecma_anchors(pattern))


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _compiled(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


@cache
def _validator(schema_dir: Path, name: str) -> Any:
    from jsonschema import Draft202012Validator  # imported here: keeps the no-op path light
    from jsonschema.validators import extend

    schema = load_schema(schema_dir, name)
    return extend(Draft202012Validator, {"pattern": _pattern})(schema)  # type: ignore[no-untyped-call]


def schema_version(schema_dir: Path, name: str) -> str:
    """The schema's declared version: part of every input digest that the schema shapes."""
    return str(load_schema(schema_dir, name).get("x-homelab-version", 1))


def _found(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _problems_for(error: Any, rel: str) -> list[Problem]:
    path = list(error.absolute_path)
    field = dotted(path)
    hint = str(error.schema.get("x-hint", "")) if isinstance(error.schema, dict) else ""
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        return [Problem(rel, dotted([*path, k]), "unknown key",
                        hint or (f"allowed keys: {', '.join(allowed)}" if allowed else "remove it"))
                for k in extra]
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [Problem(rel, dotted([*path, missing]), "required key is missing", hint or "add it")]
    if v == "type":
        want = error.validator_value
        wants = [want] if isinstance(want, str) else list(want)
        text = " or ".join(_TYPE_NAMES.get(w, w) for w in wants)
        return [Problem(rel, field, f"expected {text}, found {_found(error.instance)}", hint)]
    if v == "enum":
        options = ", ".join(str(o) for o in error.validator_value)
        return [Problem(rel, field, f"{error.instance!r} is not allowed", hint or f"one of: {options}")]
    if v == "pattern":
        return [Problem(rel, field, f"{error.instance!r} has the wrong form",
                        hint or f"must match {error.validator_value}")]
    if v == "oneOf" and error.context:
        from jsonschema.exceptions import best_match

        return _problems_for(best_match(error.context), rel)
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [Problem(rel, field, f"{error.instance!r} is out of range ({v} {error.validator_value})", hint)]
    if v in ("minItems", "minLength", "minProperties"):
        return [Problem(rel, field, "must not be empty" if error.validator_value == 1 else error.message, hint)]
    if v == "uniqueItems":
        return [Problem(rel, field, "has duplicate entries", hint or "list each item once")]
    if v == "propertyNames":
        return [Problem(rel, field, f"key {error.instance!r} has the wrong form", hint)]
    return [Problem(rel, field, error.message, hint)]


def validate(data: Any, schema_dir: Path, name: str, rel: str) -> list[Problem]:
    """All schema problems of ``data`` against ``schemas/<name>``, one per offending field."""
    validator = _validator(schema_dir, name)
    problems: list[Problem] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        problems.extend(_problems_for(error, rel))
    # one line per field and message: jsonschema can report the same key under several branches
    return sorted(set(problems), key=lambda p: (p.field, p.message))
