"""Test fake: patch formats and server-side-apply field ownership for the fake Kubernetes API server.

Implements JSON merge patch (RFC 7386), a strategic merge patch that is a merge patch plus merging of the
well-known keyed lists of built-in kinds (containers by name, ports by port, ...) and the ``$patch``
directives, JSON patch (RFC 6902), and the field sets (``fieldsV1``) server-side apply uses to decide what
an applier owns, what it stopped applying and where two managers conflict.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

Path = tuple[str, ...]

# Keyed lists of built-in kinds, by field name: the key fields tried in order (the first present wins).
KEYED_LISTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "containers": (("name",),),
    "initContainers": (("name",),),
    "ephemeralContainers": (("name",),),
    "env": (("name",),),
    "volumes": (("name",),),
    "volumeMounts": (("mountPath",),),
    "volumeDevices": (("devicePath",),),
    "imagePullSecrets": (("name",),),
    "ports": (("containerPort", "protocol"), ("port", "protocol")),
    "conditions": (("type",),),
    "hostAliases": (("ip",),),
    "volumeClaimTemplates": (),
}


class PatchError(ValueError):
    """A patch that cannot be applied (bad document, failed JSON patch test, missing path)."""


def _list_key(field: str | None, items: list[Any], keyed: bool) -> tuple[str, ...] | None:
    """The key fields a list is merged by, or None when it is atomic."""
    if not keyed or field is None or not items:
        return None
    for candidate in KEYED_LISTS.get(field, ()):
        if all(isinstance(i, dict) and candidate[0] in i for i in items):
            return candidate
    return None


def _item_key(item: dict[str, Any], key: tuple[str, ...]) -> tuple[Any, ...]:
    defaults = {"protocol": "TCP"}
    return tuple(item.get(k, defaults.get(k)) for k in key)


# ---------------------------------------------------------------------------------------------- merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def strategic_merge_patch(target: Any, patch: Any, keyed: bool = True, field: str | None = None) -> Any:
    """A strategic merge patch: a merge patch that merges known keyed lists by key and honours ``$patch``.

    ``$setElementOrder/...``, ``$retainKeys`` and ``$deleteFromPrimitiveList/...`` directives are accepted and
    ignored (element order is kept as in the target, new elements are appended).
    """
    if isinstance(patch, list):
        return _smp_list(target, patch, keyed, field)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace":
        return copy.deepcopy(body)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in body.items():
        if v is None:
            result.pop(k, None)
            continue
        merged = strategic_merge_patch(result.get(k), v, keyed, k)
        if merged is None and isinstance(v, dict) and v.get("$patch") == "delete":
            result.pop(k, None)
        else:
            result[k] = merged
    return result


def _smp_list(target: Any, patch: list[Any], keyed: bool, field: str | None) -> Any:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    current = list(target) if isinstance(target, list) else []
    key = _list_key(field, [i for i in patch + current if isinstance(i, dict)], keyed)
    if key is None:
        return [copy.deepcopy(i) for i in patch]
    result = [copy.deepcopy(i) for i in current]
    for item in patch:
        if not isinstance(item, dict):
            continue
        k = _item_key(item, key)
        idx = next((n for n, cur in enumerate(result) if _item_key(cur, key) == k), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
            continue
        if idx is None:
            result.append({kk: copy.deepcopy(vv) for kk, vv in item.items() if not kk.startswith("$")})
        else:
            result[idx] = strategic_merge_patch(result[idx], item, keyed)
    return result


# ----------------------------------------------------------------------------------------------- json patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError) as exc:
                raise PatchError(f"path element {p!r} not found") from exc
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise PatchError(f"path element {p!r} not found")
    return cur, parts[-1]


def _get(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        try:
            return parent[int(last)]
        except (ValueError, IndexError) as exc:
            raise PatchError(f"index {last!r} out of range") from exc
    if not isinstance(parent, dict) or last not in parent:
        raise PatchError(f"missing value at {'/'.join(parts)!r}")
    return parent[last]


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        idx = len(parent) if last == "-" else int(last)
        if idx > len(parent):
            raise PatchError(f"index {idx} out of range")
        parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        try:
            parent.pop(int(last))
        except (ValueError, IndexError) as exc:
            raise PatchError(f"index {last!r} out of range") from exc
    elif isinstance(parent, dict) and last in parent:
        del parent[last]
    else:
        raise PatchError(f"missing value at {'/'.join(parts)!r}")
    return doc


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    result = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    for op in ops:
        kind = op.get("op")
        parts = _pointer(str(op.get("path", "")))
        if kind == "add":
            result = _add(result, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            result = _remove(result, parts)
        elif kind == "replace":
            _get(result, parts)
            if parts:
                result = _remove(result, parts)
            result = _add(result, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _pointer(str(op.get("from", "")))
            value = copy.deepcopy(_get(result, src))
            if kind == "move":
                result = _remove(result, src)
            result = _add(result, parts, value)
        elif kind == "test":
            if _get(result, parts) != op.get("value"):
                raise PatchError(f"test failed at {op.get('path')!r}")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return result


# ------------------------------------------------------------------------------- server-side apply fields

TRACKED_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")


def _key_element(item: dict[str, Any], key: tuple[str, ...]) -> str:
    fields = {k: item.get(k, "TCP" if k == "protocol" else None) for k in key}
    return "k:" + json.dumps(fields, sort_keys=True, separators=(",", ":"))


def flatten(obj: Any, keyed: bool = True, include_status: bool = False) -> dict[Path, Any]:
    """The leaf field paths of an object (in ``fieldsV1`` element syntax) mapped to their values.

    Only ``metadata.labels/annotations/finalizers/ownerReferences`` of metadata are tracked, and ``status``
    only when ``include_status``. Keyed list items appear as ``k:{...}`` elements plus a ``.`` member path.
    """
    out: dict[Path, Any] = {}
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "metadata" and isinstance(v, dict):
            for mk in TRACKED_METADATA:
                if mk in v:
                    _flatten_into(v[mk], ("f:metadata", f"f:{mk}"), mk, keyed, out)
            continue
        if k == "status" and not include_status:
            continue
        _flatten_into(v, (f"f:{k}",), k, keyed, out)
    return out


def _flatten_into(value: Any, path: Path, field: str | None, keyed: bool, out: dict[Path, Any]) -> None:
    if isinstance(value, dict):
        if not value:
            out[path] = {}
        for k, v in value.items():
            _flatten_into(v, (*path, f"f:{k}"), k, keyed, out)
        return
    if isinstance(value, list):
        key = _list_key(field, value, keyed)
        if key is None:
            out[path] = value
            return
        for item in value:
            el = _key_element(item, key)
            out[(*path, el, ".")] = True
            for k, v in item.items():
                _flatten_into(v, (*path, el, f"f:{k}"), k, keyed, out)
        return
    out[path] = value


def encode_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """Render a set of paths as a ``fieldsV1`` tree."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for el in path:
            node = node.setdefault(el, {})
    return root


def decode_fields(tree: dict[str, Any] | None, prefix: Path = ()) -> set[Path]:
    """Parse a ``fieldsV1`` tree back into a set of leaf paths."""
    out: set[Path] = set()
    for k, v in (tree or {}).items():
        path = (*prefix, k)
        if isinstance(v, dict) and v:
            out |= decode_fields(v, path)
        else:
            out.add(path)
    return out


def _find_item(items: list[Any], element: str) -> int | None:
    want = json.loads(element[2:])
    for n, item in enumerate(items):
        if isinstance(item, dict) and all(
            item.get(k, "TCP" if k == "protocol" else None) == v for k, v in want.items()
        ):
            return n
    return None


def remove_path(obj: dict[str, Any], path: Path) -> None:
    """Delete the field (or keyed list item, for a path ending in ``.``) a path names, if present."""
    cur: Any = obj
    for n, el in enumerate(path):
        last = n == len(path) - 1
        if el == ".":
            return
        if el.startswith("f:"):
            name = el[2:]
            if not isinstance(cur, dict) or name not in cur:
                return
            if last:
                del cur[name]
                return
            cur = cur[name]
        elif el.startswith("k:"):
            if not isinstance(cur, list):
                return
            idx = _find_item(cur, el)
            if idx is None:
                return
            if n + 1 < len(path) and path[n + 1] == "." :
                cur.pop(idx)
                return
            cur = cur[idx]
        else:
            return


def apply_merge(target: Any, applied: Any, keyed: bool = True, field: str | None = None) -> Any:
    """Merge an applied configuration into an object: maps recursively, keyed lists by key, else replace."""
    if isinstance(applied, dict) and isinstance(target, dict):
        result = copy.deepcopy(target)
        for k, v in applied.items():
            if v is None:
                continue
            result[k] = apply_merge(result.get(k), v, keyed, k)
        return result
    if isinstance(applied, list) and isinstance(target, list):
        key = _list_key(field, applied + target, keyed)
        if key is None:
            return copy.deepcopy(applied)
        items = [copy.deepcopy(i) for i in target]
        for item in applied:
            k = _item_key(item, key)
            idx = next((n for n, cur in enumerate(items) if _item_key(cur, key) == k), None)
            if idx is None:
                items.append(copy.deepcopy(item))
            else:
                items[idx] = apply_merge(items[idx], item, keyed)
        return items
    return copy.deepcopy(applied)


def path_to_jsonpath(path: Path) -> str:
    """A readable field path for conflict messages (``.spec.replicas``)."""
    parts = []
    for el in path:
        if el.startswith("f:"):
            parts.append("." + el[2:])
        elif el.startswith("k:"):
            parts.append("[" + ",".join(f"{k}={v!r}" for k, v in json.loads(el[2:]).items()) + "]")
    return "".join(parts)
