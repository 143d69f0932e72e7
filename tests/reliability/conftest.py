"""Fixtures of the reliability suite.

``sandbox``: the running sandbox hosts, session-scoped, built on ``homelab.sandbox`` like the fixture of
tests/sandbox/conftest.py. There is one sandbox per machine, so this fixture leaves it as it found it: hosts
it had to bring up are torn down when the session ends (never earlier, so no other module loses them
mid-use); a sandbox that was already running, e.g. for another test session, is left running.
``cluster`` (the FAKE Kubernetes API with a recording helm) comes from tests/unit/test_apply_support.py;
``fake_ollama`` is the FAKE Ollama API of tests/unit/test_ollama_ops.py, for the converge's ollama_models
step (point HOMELAB_OLLAMA_URL at it: the fake cluster has no ingress to reach an Ollama through).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from homelab.sandbox.testing import RunningSandbox
from tests.unit.test_apply_support import cluster

__all__ = ["cluster", "fake_ollama", "sandbox"]

SANDBOX_HOSTS = ["sbx-master", "sbx-worker-01"]


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    from homelab.sandbox import api
    from homelab.sandbox.config import find_repo_root, load_config
    from homelab.sandbox.progress import quiet_log

    reason = api.unavailable_reason()
    if reason:
        pytest.skip(reason)
    root = find_repo_root()
    was_up = all(s.running and s.ssh == "ok" for s in api.status(root, SANDBOX_HOSTS))
    try:
        api.ensure_up(root, SANDBOX_HOSTS, log=quiet_log)
        hosts = tuple(load_config(root).select(SANDBOX_HOSTS))
        yield RunningSandbox(repo_root=root, ssh_config=api.ssh_config_path(root), hosts=hosts)
    finally:
        if not was_up:
            api.down(root, log=quiet_log)


@pytest.fixture
def fake_ollama() -> Iterator[Any]:
    from tests.fakes.fake_ollama import FakeOllama

    fake = FakeOllama()
    yield fake
    fake.server.shutdown()
