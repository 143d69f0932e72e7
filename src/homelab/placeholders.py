"""Placeholders in release values and manifests: ``${secret:NAME}``, ``${ref:RELEASE.EXPORT}``, ``${inv:a.b}``.

They keep release files data-only: a secret is named, never written; a value another release owns is
referenced, never copied; an inventory value is looked up, so one edit in hosts/<env>.yaml reaches every
consumer (and only those consumers' digests change).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from homelab.problems import dotted

PATTERN = re.compile(r"\$\{(secret|ref|inv):([^}]*)\}")
KINDS = ("secret", "ref", "inv")


@dataclass(frozen=True)
class Placeholder:
    kind: str
    target: str
    field: str  # dotted path inside the document where it was found


def walk(node: Any, path: tuple[object, ...] = ()) -> Iterator[tuple[tuple[object, ...], Any]]:
    """Every leaf of a YAML tree with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, i))
    else:
        yield path, node


def find(node: Any, prefix: tuple[object, ...] = ()) -> list[Placeholder]:
    found: list[Placeholder] = []
    for path, leaf in walk(node, prefix):
        if isinstance(leaf, str) and "${" in leaf:
            for m in PATTERN.finditer(leaf):
                found.append(Placeholder(m.group(1), m.group(2), dotted(path)))
    return found


# Anything shaped like ours (``${word:...}``): other ``${...}`` syntaxes belong to charts and pass through,
# e.g. nfs-subdir-external-provisioner's ``${.PVC.namespace}``.
_LOOKALIKE = re.compile(r"\$\{([A-Za-z_]+):([^}]*)\}")


def malformed(node: Any, prefix: tuple[object, ...] = ()) -> list[tuple[str, str]]:
    """(field, text) of strings with a ``${kind:...}`` of an unknown kind or with an empty target."""
    bad: list[tuple[str, str]] = []
    for path, leaf in walk(node, prefix):
        if isinstance(leaf, str) and "${" in leaf:
            for m in _LOOKALIKE.finditer(leaf):
                if m.group(1) not in KINDS or not m.group(2).strip():
                    bad.append((dotted(path), leaf))
                    break
    return bad


Resolver = Callable[[str, str], Any]


def substitute(node: Any, resolve: Resolver) -> Any:
    """A copy of ``node`` with every placeholder replaced by ``resolve(kind, target)``.

    A string that is exactly one placeholder becomes the resolved value itself (keeps ints as ints).
    """
    if isinstance(node, dict):
        return {k: substitute(v, resolve) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, resolve) for v in node]
    if isinstance(node, str) and "${" in node:
        whole = PATTERN.fullmatch(node)
        if whole:
            return resolve(whole.group(1), whole.group(2))
        return PATTERN.sub(lambda m: str(resolve(m.group(1), m.group(2))), node)
    return node
