"""Progress output for doit runs: one line per task that runs, with why and how long; a summary at the end.

Up-to-date tasks are counted, not listed (set HOMELAB_VERBOSE=1 to list them), so a no-op run prints one
line. Failures print the task's one-line error, never a traceback.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from homelab import redact


class HomelabReporter:
    desc = "homelab progress output"

    def __init__(self, outstream: Any, options: dict[str, Any]) -> None:
        self.outstream = outstream
        self.verbose = os.environ.get("HOMELAB_VERBOSE") == "1"
        self.started = time.monotonic()
        self.task_started: dict[str, float] = {}
        self.ran: list[str] = []
        self.uptodate: list[str] = []
        self.failed: list[str] = []
        self.skipped: list[str] = []
        self.errors: list[str] = []

    def _write(self, text: str) -> None:
        try:
            self.outstream.write(redact.redact(text))
            self.outstream.flush()
        except BrokenPipeError:
            pass  # `doit ... | head` closed the pipe: the run itself must not fail for it

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        pass

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        if task.actions and not task.name.startswith("_"):
            self.task_started[task.name] = time.monotonic()
            self._write(f"> {task.name}\n")

    def add_success(self, task: Any) -> None:
        if task.name in self.task_started:
            took = time.monotonic() - self.task_started[task.name]
            self.ran.append(task.name)
            self._write(f"  ok {task.name} ({took:.1f}s)\n")

    def add_failure(self, task: Any, fail: Any) -> None:
        if not task.actions:
            return  # a group task (converge, a stage) fails only because a member did: already reported
        if type(fail).__name__ == "UnmetDependency":
            # doit does not run a task whose upstream failed; say so instead of calling it a failure
            self.skipped.append(task.name)
            upstream = ", ".join(str(getattr(fail, "message", "")).split()) or "a dependency"
            self._write(f"  skipped {task.name}: upstream {upstream} did not converge\n")
            return
        self.failed.append(task.name)
        message = fail.get_msg() if hasattr(fail, "get_msg") else str(fail)
        lines = [ln for ln in str(message).strip().splitlines() if ln.strip()]
        # doit's own wrapper lines add nothing for the operator; keep the action's message
        lines = [ln for ln in lines if not ln.startswith(("Python Task failed", "TaskFailed", "TaskError"))]
        detail = lines[-1] if lines else "failed"
        self._write(f"  FAILED {task.name}: {detail}\n")

    def skip_uptodate(self, task: Any) -> None:
        if task.actions:
            self.uptodate.append(task.name)
            if self.verbose:
                self._write(f"  up to date: {task.name}\n")

    def skip_ignore(self, task: Any) -> None:
        self._write(f"  ignored: {task.name}\n")

    def cleanup_error(self, exception: Any) -> None:
        self.errors.append(str(exception))

    def runtime_error(self, msg: str) -> None:
        self.errors.append(msg)
        self._write(f"error: {msg.strip().splitlines()[-1] if msg.strip() else msg}\n")

    def teardown_task(self, task: Any) -> None:
        pass

    def complete_run(self) -> None:
        took = time.monotonic() - self.started
        parts = [f"{len(self.ran)} ran", f"{len(self.uptodate)} up to date"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({', '.join(self.failed)})")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped because an upstream task failed")
        if self.ran or self.failed or self.uptodate:
            self._write(f"homelab: {', '.join(parts)} in {took:.2f}s\n")
        sys.stdout.flush()
