"""Canonical digests: the same data always hashes the same, whatever key order or YAML formatting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(data: Any) -> str:
    return hashlib.sha256(canonical(data).encode()).hexdigest()


_FILE_DIGESTS: dict[Path, str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, once per process (code files do not change during a run)."""
    if path not in _FILE_DIGESTS:
        _FILE_DIGESTS[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_DIGESTS[path]
