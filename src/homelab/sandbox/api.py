"""The sandbox functions the engine (and test fixtures) call; the CLI is a thin layer over the same code.

Every function raises ``SandboxError`` (one-line message) for expected failures, including not being root.
``log`` receives one line per step; the default prints to stdout, ``progress.quiet_log`` silences it.
"""

from __future__ import annotations

from pathlib import Path

from homelab.sandbox import lifecycle, system
from homelab.sandbox.config import Paths
from homelab.sandbox.lifecycle import HostStatus
from homelab.sandbox.progress import Log


def is_root() -> bool:
    return system.is_root()


def ensure_up(repo_root: Path, hosts: list[str] | None = None, *, log: Log | None = None) -> None:
    """Bring the named hosts (default: all in hosts/sandbox.yaml) up; running hosts are left alone."""
    lifecycle.up(lifecycle.Context.create(Path(repo_root), log), hosts)


def down(repo_root: Path, *, log: Log | None = None) -> list[str]:
    """Tear the whole sandbox down; returns one line per thing removed (empty when nothing was up)."""
    return lifecycle.down(lifecycle.Context.create(Path(repo_root), log))


def reset(repo_root: Path, hosts: list[str] | None = None, *, log: Log | None = None) -> None:
    """Wipe the named hosts (default: all) back to the base image and boot them again."""
    lifecycle.reset(lifecycle.Context.create(Path(repo_root), log), hosts)


def status(repo_root: Path, hosts: list[str] | None = None) -> list[HostStatus]:
    return lifecycle.status(lifecycle.Context.create(Path(repo_root)), hosts)


def ssh_config_path(repo_root: Path) -> Path:
    """``ssh -F`` this file to reach a sandbox host by name (pyinfra, testinfra, operators)."""
    return Paths.for_repo(Path(repo_root).resolve()).ssh_config


def unavailable_reason() -> str | None:
    """Why the sandbox cannot run on this machine (for skipping tests), or None when it can."""
    if not system.is_root():
        return system.NOT_ROOT
    missing = system.missing_tools(system.UP_TOOLS)
    if missing:
        packages = sorted({system.TOOL_PACKAGES.get(t, t) for t in missing})
        return f"sandbox: {', '.join(missing)} not found (apt-get install -y {' '.join(packages)})"
    return None
