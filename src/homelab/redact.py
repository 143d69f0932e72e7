"""The redaction layer: no secret value reaches stdout, stderr, plans, stamps, logs or build/.

Every secret value loaded from the secrets file is registered here. ``install()`` wraps sys.stdout and
sys.stderr so anything printed (our own lines, captured subprocess output, doit's reporter) passes
through ``redact()``. Files the engine writes under build/ go through ``redact()`` as well.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

_VALUES: dict[str, str] = {}  # value -> secret name
_MIN_LEN = 4  # shorter "secrets" would redact ordinary words; the secrets schema requires longer ones in practice


def register(name: str, value: str) -> None:
    if len(value) >= _MIN_LEN:
        _VALUES[value] = name


def registered() -> int:
    return len(_VALUES)


def clear() -> None:
    _VALUES.clear()


def redact(text: str) -> str:
    if not _VALUES or not text:
        return text
    # longest first, so a secret containing another is replaced whole
    for value in sorted(_VALUES, key=len, reverse=True):
        if value in text:
            text = text.replace(value, f"<redacted:{_VALUES[value]}>")
    return text


class RedactingStream:
    """A text stream that redacts before writing to the wrapped stream."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install() -> None:
    """Wrap the process's stdout and stderr (idempotent)."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
