"""Live checks (testinfra) of converged hosts, one file per host stage.

Which hosts: the inventory named by HOMELAB_ENV (default sandbox), selected per test by role. How to reach
them: the ssh config in HOMELAB_SSH_CONFIG (the sandbox's build/sandbox/ssh/config), or, without one, the
inventory's address, ssh user and identity file. They contact hosts only when HOMELAB_LIVE=1: the sandbox
test ``tests/sandbox/test_host_converge.py`` runs them that way against the sandbox; for the lab an operator
sets HOMELAB_ENV=lab HOMELAB_LIVE=1 explicitly. Otherwise every test here is skipped with that reason.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = os.environ.get("HOMELAB_ENV", "sandbox")
LIVE = os.environ.get("HOMELAB_LIVE") == "1"
SKIP_REASON = f"live checks contact the hosts of HOMELAB_ENV={ENV}; set HOMELAB_LIVE=1 to run them"


@cache
def inventory() -> dict[str, Any]:
    path = ROOT / "hosts" / f"{ENV}.yaml"
    if not path.is_file():
        return {"hosts": [], "network": {}, "k3s": {}, "nfs": {}}
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def hosts(role: str | None = None) -> list[Any]:
    """pytest params for the inventory's hosts (with ``role``), by name."""
    return [pytest.param(h, id=h["name"]) for h in inventory()["hosts"] if role is None or role in h["roles"]]


def standin(name: str) -> str | None:
    value = (inventory().get("standins") or {}).get(name)
    return str(value) if value else None


@cache
def _testinfra_host(name: str) -> Any:
    import testinfra

    ssh_config = os.environ.get("HOMELAB_SSH_CONFIG")
    entry = next(h for h in inventory()["hosts"] if h["name"] == name)
    ssh = inventory().get("ssh", {})
    sudo = ssh.get("user", "root") != "root"
    if ssh_config:
        return testinfra.get_host(f"ssh://{name}", ssh_config=ssh_config, sudo=sudo)
    key = ssh.get("identity_file")
    return testinfra.get_host(
        f"ssh://{ssh.get('user', 'root')}@{entry['address']}:{ssh.get('port', 22)}",
        ssh_identity_file=os.path.expanduser(key) if key else None,
        sudo=sudo,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.live)
            if not LIVE:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Any:
    """The testinfra host for the test's ``entry`` parameter (an inventory host entry)."""
    entry = request.getfixturevalue("entry")
    return _testinfra_host(entry["name"])
