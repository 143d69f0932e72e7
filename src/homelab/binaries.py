"""Locating the helm and kubectl binaries the cluster drivers run.

Order: the environment override (``HOMELAB_HELM`` / ``HOMELAB_KUBECTL``), then ``<repo>/.venv/bin`` (where
``make setup`` installs the pinned static binaries), then the bin directory of the Python running the
engine (the same venv when the repository is a test copy), then ``PATH``. A missing binary is one clear
line, never a traceback.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from homelab.paths import repo_root

ENV_VARS = {"helm": "HOMELAB_HELM", "kubectl": "HOMELAB_KUBECTL"}


class BinaryNotFound(Exception):
    """A tool the drivers need is not installed; the message says how to get it."""


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find(tool: str) -> str:
    """Absolute path of ``tool`` (``helm`` or ``kubectl``); raises BinaryNotFound with one line."""
    var = ENV_VARS.get(tool, f"HOMELAB_{tool.upper()}")
    override = os.environ.get(var)
    if override:
        found = shutil.which(override)
        if found is None:
            raise BinaryNotFound(f"{tool} not found: {var}={override} is not an executable file")
        return found
    for directory in (repo_root() / ".venv" / "bin", Path(sys.executable).parent):
        candidate = directory / tool
        if _executable(candidate):
            return str(candidate)
    on_path = shutil.which(tool)
    if on_path is None:
        raise BinaryNotFound(f"{tool} not found: run `make setup` (or set {var})")
    return on_path


def helm() -> str:
    """The helm binary (v4)."""
    return find("helm")


def kubectl() -> str:
    """The kubectl binary."""
    return find("kubectl")
