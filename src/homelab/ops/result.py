"""The outcome of a day-2 operation.

Operations return an ``OpResult`` for every expected failure (a Job that failed, a timeout, a refusal)
instead of raising, so the doit wiring is one line: ``return None if r.ok else TaskFailed(r.message)``.
Exceptions are reserved for programming errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OpResult:
    """``ok`` and a one-line ``message``; ``seconds`` is the measured wall time of the whole operation.

    ``details`` carries secret-free, operation-specific measurements (restore seconds, overhead, row counts)
    for callers and tests; nothing in it is needed to decide success.
    """

    ok: bool
    message: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """``ok: message (12.3s)`` / ``FAILED: message (12.3s)``, the summary an operator reads last."""
        return f"{'ok' if self.ok else 'FAILED'}: {self.message} ({self.seconds:.1f}s)"
