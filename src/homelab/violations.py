"""Findings about rendered Kubernetes objects, shared by schema validation and policy checks.

One line each: ``release: Kind/name: field.path: message``, so a finding names the release to edit, the
object it rendered and the field at fault. Warnings are printed with a ``warning: `` prefix (as
``homelab.problems.Problem`` does) and never block an apply; errors do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Violation:
    """One thing wrong with one field of one rendered object."""

    release: str
    kind: str
    name: str
    field: str  # dotted path inside the object (``spec.template.spec.containers[0].image``), "" for the whole
    message: str
    severity: str = "error"  # "error" blocks the release; "warning" is printed and allowed

    def line(self) -> str:
        text = f"{self.release}: {self.kind}/{self.name}: {self.field or '(object)'}: {self.message}"
        return "warning: " + text if self.severity == "warning" else text


def errors(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "error"]


def warnings(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "warning"]


def identity(obj: dict[str, Any]) -> tuple[str, str]:
    """(kind, name) of an object as printed in a violation; tolerant of objects missing either."""
    kind = obj.get("kind")
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return (str(kind) if kind else "<no kind>", str(name) if name else "<no name>")


def for_object(release: str, obj: dict[str, Any], field: str, message: str, severity: str = "error") -> Violation:
    kind, name = identity(obj)
    return Violation(release, kind, name, field, message, severity)
