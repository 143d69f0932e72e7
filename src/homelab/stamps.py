"""Stamps: what each task last applied, in build/<env>/stamps/<task>.json.

A stamp records the input digest, the result digest, the secret-free inputs themselves (so ``doit plan``
can name the key that changed) and a small result summary. It is written atomically and only after the
task succeeded: a crash leaves the previous stamp, so the unfinished work runs again next time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from homelab import redact
from homelab.atomic import write_text_atomic
from homelab.digest import canonical

STAMP_VERSION = 1


def stamp_path(stamp_dir: Path, task: str) -> Path:
    return stamp_dir / (task.replace("/", "_") + ".json")


# Stamps read in this process, kept in step by write() and remove(): one run asks for the same upstream
# stamp once per downstream task.
_READ: dict[Path, dict[str, Any] | None] = {}


def read(stamp_dir: Path, task: str) -> dict[str, Any] | None:
    path = stamp_path(stamp_dir, task)
    if path not in _READ:
        _READ[path] = _read_file(path)
    return _READ[path]


def _read_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable stamp = never applied: the task runs again (safe direction)
    if not isinstance(data, dict) or data.get("version") != STAMP_VERSION:
        return None
    return data


def result_digest(stamp_dir: Path, task: str) -> str:
    stamp = read(stamp_dir, task)
    return str(stamp["result_digest"]) if stamp else "never-applied"


def chart_digest(stamp_dir: Path, task: str) -> str:
    """The part of an upstream release's result that every consumer depends on: its chart identity.

    A consumer reads an upstream release's exports only through ${ref:} placeholders, whose values are
    already among the consumer's own inputs; what it depends on beyond those is the API surface the
    upstream chart installs (CRDs, webhooks), which changes with the chart, not with its values.
    """
    from homelab.digest import digest

    stamp = read(stamp_dir, task)
    return digest(stamp["result"].get("chart", {})) if stamp else "never-applied"


def write(stamp_dir: Path, task: str, *, kind: str, input_digest: str, result_digest: str,
          inputs: dict[str, Any], result: dict[str, Any], applied: bool) -> Path:
    data = {
        "version": STAMP_VERSION,
        "task": task,
        "kind": kind,
        "input_digest": input_digest,
        "result_digest": result_digest,
        "applied": applied,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": inputs,
        "result": result,
    }
    text = json.dumps(json.loads(canonical(data)), indent=1, sort_keys=True) + "\n"
    path = stamp_path(stamp_dir, task)
    write_text_atomic(path, redact.redact(text), mode=0o600)
    _READ.pop(path, None)
    return path


def remove(stamp_dir: Path, tasks: list[str]) -> list[str]:
    removed = []
    for task in tasks:
        path = stamp_path(stamp_dir, task)
        _READ.pop(path, None)
        if path.exists():
            path.unlink()
            removed.append(task)
    return removed
