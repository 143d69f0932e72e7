"""Why a task would run: the difference between the inputs in its stamp and its inputs now.

Reasons name the file and the dotted key that changed, e.g.
``releases/postgres/values.yaml primary.persistence.size 8Gi -> 20Gi``. Secret values never appear:
a changed secret is reported by name only.
"""

from __future__ import annotations

from typing import Any

from homelab import redact
from homelab.problems import dotted

_MAX_VALUE = 60


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = "{...}" if isinstance(value, dict) else "[...]"
    elif value is None:
        text = "(absent)"
    else:
        text = str(value)
    text = redact.redact(text)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def flatten(node: Any, path: tuple[object, ...] = ()) -> dict[str, Any]:
    """Leaves of a tree keyed by dotted path; empty containers count as leaves."""
    out: dict[str, Any] = {}
    if isinstance(node, dict) and node:
        for key, value in node.items():
            out.update(flatten(value, (*path, key)))
    elif isinstance(node, list) and node:
        for i, value in enumerate(node):
            out.update(flatten(value, (*path, i)))
    else:
        out[dotted(path)] = node
    return out


def diff_tree(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    a, b = flatten(old), flatten(new)
    changes = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, _ABSENT) != b.get(key, _ABSENT):
            changes.append((key, a.get(key), b.get(key)))
    return changes


_ABSENT = object()
_KNOWN_SECTIONS = {"files", "inventory", "refs", "chart", "code", "secrets", "upstream", "schema", "driver", "kind",
                   "gpu_mode"}


def reasons(old_inputs: dict[str, Any] | None, new_inputs: dict[str, Any], inventory_rel: str,
            limit: int = 12) -> list[str]:
    """Human-readable reasons, most specific first; [] when nothing changed."""
    if old_inputs is None:
        return ["never applied"]
    out: list[str] = []
    old_files, new_files = old_inputs.get("files", {}), new_inputs.get("files", {})
    for path in sorted(set(old_files) | set(new_files)):
        if path not in old_files:
            out.append(f"{path} added")
        elif path not in new_files:
            out.append(f"{path} removed")
        else:
            for key, before, after in diff_tree(old_files[path], new_files[path]):
                out.append(f"{path} {key or '(document)'} {_short(before)} -> {_short(after)}")
    for key, before, after in diff_tree(old_inputs.get("inventory", {}), new_inputs.get("inventory", {})):
        out.append(f"{inventory_rel} {_inventory_key(key)} {_short(before)} -> {_short(after)}")
    for key, before, after in diff_tree(old_inputs.get("refs", {}), new_inputs.get("refs", {})):
        out.append(f"reference {key} {_short(before)} -> {_short(after)}")
    for key, before, after in diff_tree(old_inputs.get("chart", {}), new_inputs.get("chart", {})):
        out.append(f"chart {key} changed" if key == "digest" else f"chart {key} {_short(before)} -> {_short(after)}")
    old_code, new_code = old_inputs.get("code", {}), new_inputs.get("code", {})
    for path in sorted(set(old_code) | set(new_code)):
        if old_code.get(path) != new_code.get(path):
            state = "added" if path not in old_code else "removed" if path not in new_code else "changed"
            out.append(f"code {path} {state}")
    old_sec, new_sec = old_inputs.get("secrets", {}), new_inputs.get("secrets", {})
    for name in sorted(set(old_sec) | set(new_sec)):
        if old_sec.get(name) != new_sec.get(name):
            out.append(f"secret {name} changed (value not shown)")
    old_up, new_up = old_inputs.get("upstream", {}), new_inputs.get("upstream", {})
    for dep in sorted(set(old_up) | set(new_up)):
        if old_up.get(dep) != new_up.get(dep):
            out.append(f"upstream {dep} result changed" if dep in old_up else f"new upstream {dep}")
    if old_inputs.get("gpu_mode") != new_inputs.get("gpu_mode"):
        mode = (new_inputs.get("gpu_mode") or {}).get("mode", "ml")
        out.append(f"GPU mode is now {mode} (vLLM replicas {'0' if mode == 'gaming' else 'restored'})")
    for key in ("schema", "driver", "kind"):
        if old_inputs.get(key) != new_inputs.get(key):
            out.append(f"{key} version {_short(old_inputs.get(key))} -> {_short(new_inputs.get(key))}")
    for key in sorted(set(old_inputs) | set(new_inputs)):
        if key not in _KNOWN_SECTIONS and old_inputs.get(key) != new_inputs.get(key):
            out.append(f"{key} changed")
    if len(out) > limit:
        out = [*out[:limit], f"... and {len(out) - limit} more changes"]
    return out


def _inventory_key(key: str) -> str:
    # host entries are stored under "host"; show them as the operator wrote them
    return key.replace("host.", "hosts[this].", 1) if key.startswith("host.") else key
