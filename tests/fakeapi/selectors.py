"""Test fake: label and field selectors for the fake Kubernetes API server.

Label selector strings support ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists)
and ``!k`` (does not exist). Field selectors support ``=``, ``==`` and ``!=`` on any dotted path
(``metadata.name``, ``metadata.namespace``, ``spec.nodeName``, ``status.phase``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Requirement = tuple[str, str, tuple[str, ...]]  # (key, operator, values)


class SelectorError(ValueError):
    """A selector string that cannot be parsed."""


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<vals>[^)]*)\)$")
_CMP_RE = re.compile(r"^(?P<key>[^\s!=<>()]+)\s*(?P<op>==|!=|=|>|<)\s*(?P<val>[^\s]*)$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a label selector string into requirements (an empty or None selector matches everything)."""
    reqs: list[Requirement] = []
    for part in _split_top(text or ""):
        m = _SET_RE.match(part)
        if m:
            vals = tuple(v.strip() for v in m["vals"].split(",") if v.strip())
            reqs.append((m["key"], m["op"], vals))
            continue
        m = _CMP_RE.match(part)
        if m:
            op = {"==": "=", "=": "="}.get(m["op"], m["op"])
            reqs.append((m["key"], op, (m["val"],)))
            continue
        if part.startswith("!") and re.fullmatch(r"![^\s!=()]+", part):
            reqs.append((part[1:], "!", ()))
            continue
        if re.fullmatch(r"[^\s!=()]+", part):
            reqs.append((part, "exists", ()))
            continue
        raise SelectorError(f"unable to parse requirement: {part!r}")
    return reqs


def requirement_matches(req: Requirement, labels: Mapping[str, str]) -> bool:
    """Whether one requirement holds for a label map."""
    key, op, vals = req
    present = key in labels
    val = labels.get(key)
    if op == "=":
        return present and val == vals[0]
    if op == "!=":
        return not present or val != vals[0]
    if op == "in":
        return present and val in vals
    if op == "notin":
        return not present or val not in vals
    if op == "exists":
        return present
    if op == "!":
        return not present
    if op in (">", "<"):
        try:
            lhs, rhs = int(str(val)), int(vals[0])
        except ValueError:
            return False
        return present and (lhs > rhs if op == ">" else lhs < rhs)
    return False


def labels_match(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    """Whether a label selector string matches a label map."""
    lab = labels or {}
    return all(requirement_matches(r, lab) for r in parse_label_selector(selector))


def selector_object_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether a ``metav1.LabelSelector`` object (matchLabels/matchExpressions) matches a label map.

    A None selector matches nothing (as for Services/PDBs without selector); an empty one matches everything.
    """
    if selector is None:
        return False
    lab = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if lab.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(expr.get("operator", ""))
        if op is None:
            return False
        if not requirement_matches((expr["key"], op, tuple(expr.get("values") or ())), lab):
            return False
    return True


def selector_object_to_string(selector: Mapping[str, Any] | None) -> str:
    """Render a ``metav1.LabelSelector`` object as a selector string (as in ``Scale.status.selector``)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, vals = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(vals)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(vals)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _lookup(obj: Mapping[str, Any], dotted: str) -> str | None:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return None if cur is None else str(cur)


def parse_field_selector(text: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a field selector string into a predicate on whole objects."""
    checks: list[tuple[str, str, str]] = []
    for part in _split_top(text or ""):
        m = re.match(r"^([^!=]+?)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise SelectorError(f"invalid field selector: {part!r}")
        checks.append((m[1].strip(), "!=" if m[2] == "!=" else "=", m[3].strip()))

    def predicate(obj: Mapping[str, Any]) -> bool:
        for path, op, want in checks:
            got = _lookup(obj, path)
            if path == "metadata.namespace" and got is None:
                got = ""
            if path == "spec.nodeName" and got is None:
                got = ""
            if op == "=" and got != want:
                return False
            if op == "!=" and got == want:
                return False
        return True

    return predicate
