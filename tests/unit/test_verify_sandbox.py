"""``doit verify``'s testinfra part against real sandbox hosts over SSH (needs root and the sandbox tools).

Uses the shared session fixture of tests/sandbox/conftest.py: it brings the hosts up once and tears the sandbox
down at the end of the session; this test never does. tests/sandbox has no fixture for *converged* hosts to
share (test_host_converge.py converges inside its own module), so the checks run here are a small synthetic
testinfra file on the ``ssh://`` backend: what is tested is verify's plumbing (``live_env`` finds the sandbox's
ssh config and sets HOMELAB_LIVE, pytest runs in a subprocess, JUnit outcomes map to requirement ids), against
hosts reached the way tests/live reaches them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from homelab import paths, verify
from homelab.sandbox.testing import RunningSandbox
from tests.sandbox.conftest import sandbox

__all__ = ["sandbox"]  # the shared fixture, imported so pytest finds it here

pytestmark = pytest.mark.sandbox

SYNTHETIC = '''
import os

import pytest
import testinfra

HOSTS = ["sbx-master", "sbx-worker-01"]


def target(name):
    return testinfra.get_host(f"ssh://{name}", ssh_config=os.environ["HOMELAB_SSH_CONFIG"])


@pytest.mark.parametrize("entry", HOSTS)
def test_os_release_matches_inventory(entry):
    assert target(entry).system_info.distribution == "debian"


@pytest.mark.parametrize("entry", ["sbx-master"])
def test_no_proxy_line(entry):
    lines = target(entry).file("/etc/environment").content_string.splitlines()
    assert [line for line in lines if line.startswith("NO_PROXY=homelab-verify-canary")], "no canary NO_PROXY line"
'''


def test_live_checks_reach_the_sandbox_hosts_over_ssh(sandbox: RunningSandbox, tmp_path: Path) -> None:
    env, why = verify.live_env(paths.layout("sandbox", sandbox.repo_root))
    assert env is not None, why
    assert env["HOMELAB_LIVE"] == "1" and env["HOMELAB_SSH_CONFIG"] == str(sandbox.ssh_config)
    live = tmp_path / "tests" / "live"
    live.mkdir(parents=True)
    (live / "test_vm.py").write_text(SYNTHETIC)
    outcomes = verify.run_live_checks(live, env, timeout=300)
    rows = {r.id: r for r in verify.table(verify.host_checks_from(outcomes, verify.HOST_CHECKS))}
    assert rows["FR1"].status == verify.PASS, rows["FR1"].reason
    assert rows["FR1"].reason == "host test_vm.py::test_os_release_matches_inventory: 2 host(s) passed"
    assert rows["FR103"].status == verify.FAIL
    assert rows["FR103"].reason.startswith("host test_vm.py::test_no_proxy_line: sbx-master: AssertionError: "
                                           "no canary NO_PROXY line")
