"""Processes the sandbox started: identity (pid + start time), liveness, signals and waiting.

A pid alone is not an identity: after a reboot or a long time the number may belong to someone else.
Every recorded process carries its kernel start time, and nothing is signalled unless both still match.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    start_time: int  # clock ticks since boot, field 22 of /proc/PID/stat
    state: str
    argv: tuple[str, ...]


def parse_stat(text: str) -> tuple[str, int]:
    """(state, start_time) from /proc/PID/stat; the command name may contain spaces and parentheses."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); start time is field 22.
    return rest[0], int(rest[19])


def info(pid: int) -> ProcInfo | None:
    try:
        state, start = parse_stat((PROC / str(pid) / "stat").read_text())
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    argv = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return ProcInfo(pid=pid, start_time=start, state=state, argv=argv)


def _reap(pid: int) -> None:
    # When the API runs in-process (tests, the engine) the process may be our own child: collect its exit
    # status so it does not linger as a zombie that looks alive.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int, start_time: int | None) -> bool:
    _reap(pid)
    current = info(pid)
    if current is None or current.state in ("Z", "X"):
        return False
    return start_time is None or current.start_time == start_time


def start_time_of(pid: int) -> int | None:
    current = info(pid)
    return current.start_time if current else None


def children(pid: int) -> list[int]:
    try:
        text = (PROC / str(pid) / "task" / str(pid) / "children").read_text()
    except OSError:
        return []
    return [int(word) for word in text.split()]


def send(pid: int, start_time: int | None, sig: signal.Signals) -> bool:
    """Signal the process only if it is still the one recorded; False when it is already gone."""
    if not alive(pid, start_time):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, start_time: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid, start_time):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def find(match: Callable[[ProcInfo], bool]) -> list[ProcInfo]:
    """Every live process whose info satisfies ``match`` (used by ``down`` to find what a lost state left)."""
    found: list[ProcInfo] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        current = info(int(entry.name))
        if current is not None and current.state not in ("Z", "X") and match(current):
            found.append(current)
    return found
