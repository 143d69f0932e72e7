"""Test fake: pytest fixtures for the FAKE Kubernetes API server, usable from any test directory.

Register once in the top-level ``tests/conftest.py`` (pytest accepts ``pytest_plugins`` only there)::

    pytest_plugins = ["tests.fakeapi.plugin"]

Fixtures:

- ``fake_api``: a started :class:`~fakeapi.server.FakeApiServer` (stopped afterwards; the test fails if the fake
  itself recorded internal errors).
- ``fake_kubeconfig``: a kubeconfig file for it (token auth, plain http).
- ``fake_kube_env``: an environment for subprocesses: ``KUBECONFIG`` set, helm's cache/config/data homes in the
  test's tmp dir, the venv's ``bin`` (helm, kubectl) first on ``PATH``.
- ``fake_cli``: :class:`KubeCli`, runs the real ``kubectl``/``helm`` against the fake (skips the test when the
  binaries are missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import FakeApiServer


class KubeCli:
    """Runs the real ``kubectl`` and ``helm`` binaries against a fake API server."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command; with ``check`` a non-zero exit fails the test showing stdout and stderr."""
        proc = subprocess.run(list(args), env=self.env, cwd=self.cwd, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``kubectl ARGS``."""
        return self.run("kubectl", *args, check=check, timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``helm ARGS``."""
        return self.run("helm", *args, check=check, timeout=timeout)


def _bin_dir() -> Path:
    return Path(sys.executable).parent


@pytest.fixture
def fake_api() -> Iterator[FakeApiServer]:
    """A started FAKE Kubernetes API server (no nodes; add them with ``fake_api.add_node``)."""
    server = FakeApiServer().start()
    try:
        yield server
    finally:
        server.stop()
    if server.errors:
        pytest.fail("the fake API server recorded internal errors:\n" + "\n".join(server.errors))


@pytest.fixture
def fake_kubeconfig(fake_api: FakeApiServer, tmp_path: Path) -> Path:
    """A kubeconfig file pointing at ``fake_api``."""
    return fake_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def fake_kube_env(fake_kubeconfig: Path, tmp_path: Path) -> dict[str, str]:
    """Subprocess environment for kubectl/helm against ``fake_api``."""
    env = dict(os.environ)
    env.update(
        KUBECONFIG=str(fake_kubeconfig),
        HELM_CACHE_HOME=str(tmp_path / "helm-cache"),
        HELM_CONFIG_HOME=str(tmp_path / "helm-config"),
        HELM_DATA_HOME=str(tmp_path / "helm-data"),
        PATH=f"{_bin_dir()}{os.pathsep}{env.get('PATH', '')}",
    )
    env.pop("HELM_DRIVER", None)
    env.pop("HELM_NAMESPACE", None)
    return env


@pytest.fixture
def fake_cli(fake_kube_env: dict[str, str], tmp_path: Path) -> KubeCli:
    """Run the real kubectl and helm against ``fake_api``; skips when they are not installed."""
    for tool in ("kubectl", "helm"):
        if shutil.which(tool, path=fake_kube_env["PATH"]) is None:
            pytest.skip(f"{tool} not installed (make kube-binaries)")
    return KubeCli(fake_kube_env, tmp_path)
