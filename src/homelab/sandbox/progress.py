"""Step lines: one line per step with its own duration and the time since the command started."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

Log = Callable[[str], None]


def print_log(line: str) -> None:
    print(line, flush=True)


def quiet_log(line: str) -> None:
    del line


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Step:
    label: str
    result: str = "done"


class Progress:
    def __init__(self, log: Log | None = None) -> None:
        self.log = log or print_log
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str) -> None:
        self.log(f"sandbox: {text}")

    @contextmanager
    def step(self, label: str) -> Iterator[Step]:
        step = Step(label)
        begun = time.monotonic()
        try:
            yield step
        except BaseException:
            self.log(f"sandbox: {label}: FAILED ({time.monotonic() - begun:.1f}s)")
            raise
        self.log(f"sandbox: {label}: {step.result} ({time.monotonic() - begun:.1f}s, at {self.elapsed():.1f}s)")
