"""Problems found in the operator's input, reported one line each: ``file: dotted.field: message (hint)``.

Every loader and rule returns problems instead of raising, so ``doit check`` can print all of them at once
and nothing is applied while any exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one field of one input file."""

    path: str
    field: str
    message: str
    hint: str = ""
    severity: str = "error"  # "error" blocks every action; "warning" is printed and allowed

    def line(self) -> str:
        field = self.field or "(file)"
        text = f"{self.path}: {field}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        if self.severity == "warning":
            text = "warning: " + text
        return text


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def dotted(parts: Iterable[object]) -> str:
    """Render a JSON path (keys and list indices) as ``a.b[2].c``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class InputError(Exception):
    """Raised only at the boundary (CLI/doit) to stop with the collected problems."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(p.line() for p in problems))
        self.problems = problems
