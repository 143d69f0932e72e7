"""Problems found in the operator's input, reported one line each: ``file: dotted.field: message (hint)``.

Every loader and rule returns problems instead of raising, so ``doit check`` can print all of them at once
and nothing is applied while any exists.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# every character str.splitlines() breaks at: a problem is one line, whatever the input file held
_LINE_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)


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
        text = f"{self.path}: {_one_line(field)}: {_one_line(self.message)}"
        if self.hint:
            text += f" ({_one_line(self.hint)})"
        if self.severity == "warning":
            text = "warning: " + text
        return text


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def _plain_key(key: str) -> bool:
    return bool(key) and ":" not in key and not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
                                                    for c in key)


def dotted(parts: Iterable[object]) -> str:
    """Render a JSON path (keys and list indices) as ``a.b[2].c``.

    A key that is empty or holds a colon or an invisible/control character is shown quoted and escaped,
    ``a["x\\u003ay"]``, so a problem line stays one ``file: field: message`` line whatever the file held.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _plain_key(str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += "[" + json.dumps(str(part)).replace(":", "\\u003a") + "]"
    return out


class InputError(Exception):
    """Raised only at the boundary (CLI/doit) to stop with the collected problems."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(p.line() for p in problems))
        self.problems = problems
