"""Atomic file writes: a crash leaves either the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    write_bytes_atomic(path, text.encode(), mode)


def write_json_atomic(path: Path, data: Any, mode: int = 0o644) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def replace_dir(new: Path, target: Path, parked: Path) -> None:
    """Put directory ``new`` in place of ``target``: two renames, the old tree parked at ``parked`` and removed.

    Without an atomic exchange a crash between the renames leaves no ``target`` at all, never half of one,
    so a reader sees the old tree, the new tree, or nothing (and rebuilds).
    """
    import shutil

    if target.exists():
        os.rename(target, parked)
        os.rename(new, target)
        shutil.rmtree(parked)
    else:
        os.rename(new, target)
