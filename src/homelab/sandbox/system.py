"""Running external commands, checking the tools the sandbox needs, and the root check.

Every command goes through ``run`` so a failure becomes a one-line ``SandboxError`` naming the command and
its last line of error output, instead of a ``CalledProcessError`` traceback.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from homelab.sandbox.errors import SandboxError

NOT_ROOT = "sandbox: needs root (systemd-nspawn, network namespaces); run as root or use HOMELAB_ENV=lab"

# Which Debian package brings each tool, so a missing tool names what to install.
TOOL_PACKAGES: dict[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "systemd-nspawn": "systemd-container",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "dpkg-scanpackages": "dpkg-dev",
    "mount": "mount",
    "umount": "mount",
}

IMAGE_TOOLS = ("mmdebstrap", "systemd-nspawn", "dpkg-scanpackages")
UP_TOOLS = (*IMAGE_TOOLS, "ip", "ssh", "ssh-keygen", "mount", "umount")
DOWN_TOOLS = ("ip", "umount")


def is_root() -> bool:
    return os.geteuid() == 0


def missing_tools(tools: Sequence[str]) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


def require_tools(tools: Sequence[str]) -> None:
    missing = missing_tools(tools)
    if missing:
        packages = sorted({TOOL_PACKAGES.get(tool, tool) for tool in missing})
        raise SandboxError(f"{', '.join(missing)} not found; install with: apt-get install -y {' '.join(packages)}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = 120,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout_path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with captured output (or stdout to a file); ``check`` turns failure into SandboxError."""
    full_env = {**os.environ, **env} if env else None
    try:
        if stdout_path is not None:
            with stdout_path.open("w", encoding="utf-8") as out:
                proc = subprocess.run(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.PIPE,
                    text=True,
                    timeout=timeout,
                    cwd=cwd,
                    env=full_env,
                    check=False,
                )
        else:
            proc = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=cwd,
                env=full_env,
                check=False,
            )
    except FileNotFoundError as exc:
        require_tools([argv[0]])
        raise SandboxError(f"cannot run {argv[0]}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"timed out after {timeout}s: {shlex.join(argv)}") from exc
    if check and proc.returncode != 0:
        detail = _last_line(proc.stderr or "") or _last_line(proc.stdout or "") or f"exit {proc.returncode}"
        raise SandboxError(f"{shlex.join(argv)} failed: {detail}")
    return proc


@contextmanager
def file_lock(path: Path, what: str, wait: float = 0, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """An exclusive flock so two sandbox commands never change the same things at once.

    With ``wait`` the caller queues behind the other command (up to that many seconds) instead of failing:
    several test runs on one machine share the one sandbox.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SandboxError(f"another sandbox command is using {what} ({path} is locked)") from None
                if on_wait is not None:
                    on_wait(f"waiting for another sandbox command to finish with {what}")
                    on_wait = None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
