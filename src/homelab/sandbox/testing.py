"""A pytest fixture helper for any test package that needs running sandbox hosts.

Usage in a ``conftest.py``::

    from homelab.sandbox.testing import sandbox_fixture
    sandbox = sandbox_fixture(name="sandbox", hosts=["sbx-master", "sbx-worker-01"])

The fixture skips (with the reason) when not root or a tool is missing, brings the hosts up once per scope
and always tears the whole sandbox down afterwards, whether the tests passed, failed or were interrupted.
pytest is imported only when the fixture is made, so importing this module costs nothing at run time.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homelab.sandbox import api
from homelab.sandbox.config import HostSpec, find_repo_root, load_config
from homelab.sandbox.progress import Log


@dataclass(frozen=True)
class RunningSandbox:
    repo_root: Path
    ssh_config: Path
    hosts: tuple[HostSpec, ...]

    def ssh_argv(self, name: str, command: str) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), name, command]

    def ssh(
        self, name: str, command: str, *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on a host; ``check`` raises with the command's stderr on failure."""
        proc = subprocess.run(
            self.ssh_argv(name, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{name}: {command!r} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc


@contextmanager
def running(repo_root: Path, hosts: list[str] | None = None, log: Log | None = None) -> Iterator[RunningSandbox]:
    """Hosts up for the duration of the block; the sandbox is torn down on the way out, always."""
    try:
        api.ensure_up(repo_root, hosts, log=log)
        config = load_config(repo_root)
        selected = tuple(config.select(hosts))
        yield RunningSandbox(repo_root=repo_root, ssh_config=api.ssh_config_path(repo_root), hosts=selected)
    finally:
        api.down(repo_root, log=log)


def sandbox_fixture(
    name: str = "sandbox", hosts: list[str] | None = None, scope: Any = "session"
) -> Callable[..., Iterator[RunningSandbox]]:
    import pytest

    @pytest.fixture(name=name, scope=scope)
    def _sandbox() -> Iterator[RunningSandbox]:
        reason = api.unavailable_reason()
        if reason:
            pytest.skip(reason)
        with running(find_repo_root(), hosts) as sandbox:
            yield sandbox

    return _sandbox
