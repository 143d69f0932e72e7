"""Real sandbox hosts: ssh by name, no way out, the local apt repo, reset, and a clean down.

Needs root and the sandbox tools (skipped otherwise, with the reason). Tests run in file order and the last
one tears the sandbox down itself to check that nothing is left behind; the fixture's own teardown then
finds nothing to do.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from homelab.sandbox import api, mounts, network, processes
from homelab.sandbox.config import Paths, load_config
from homelab.sandbox.progress import quiet_log
from homelab.sandbox.testing import RunningSandbox

pytestmark = pytest.mark.sandbox


def test_ssh_by_name_reaches_the_right_host(sandbox: RunningSandbox) -> None:
    for host in sandbox.hosts:
        out = subprocess.run(
            ["ssh", "-F", str(sandbox.ssh_config), host.name, "hostname"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert out.strip() == host.name


def test_hosts_have_python_apt_for_pyinfra_and_testinfra(sandbox: RunningSandbox) -> None:
    name = sandbox.hosts[0].name
    assert sandbox.ssh(name, "python3 -c 'import apt_pkg; print(1)'").stdout.strip() == "1"


def test_hosts_cannot_reach_outside_but_reach_each_other(sandbox: RunningSandbox) -> None:
    first, second = sandbox.hosts[0], sandbox.hosts[1]
    assert sandbox.ssh(first.name, "ip route show default").stdout.strip() == ""
    # `ip route get` asks the routing table only: no packet leaves, and the answer must be "unreachable".
    lookup = sandbox.ssh(first.name, "ip route get 192.0.2.1", check=False)
    assert lookup.returncode != 0 and "unreachable" in lookup.stderr
    reach_peer = f"timeout 5 bash -c 'exec 3<>/dev/tcp/{second.address}/22 && head -c 7 <&3'"
    assert sandbox.ssh(first.name, reach_peer).stdout == "SSH-2.0"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"


def test_apt_installs_from_the_local_repo(sandbox: RunningSandbox) -> None:
    name = sandbox.hosts[1].name
    sandbox.ssh(name, "apt-get -q update", timeout=120)
    sandbox.ssh(name, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq", timeout=300)
    assert sandbox.ssh(name, "echo '{\"a\": 7}' | jq .a").stdout.strip() == "7"
    policy = sandbox.ssh(name, "apt-cache policy jq").stdout
    cfg = load_config(sandbox.repo_root)
    assert f"http://{cfg.bridge_ip}:{cfg.apt_repo_port}" in policy


def test_reset_wipes_what_a_host_wrote(sandbox: RunningSandbox) -> None:
    wiped, kept = sandbox.hosts[0].name, sandbox.hosts[1].name
    sandbox.ssh(wiped, "echo scratch > /root/scratch-file")
    sandbox.ssh(kept, "echo keep > /root/keep-file")
    api.reset(sandbox.repo_root, [wiped], log=quiet_log)
    assert sandbox.ssh(wiped, "test -e /root/scratch-file", check=False).returncode == 1
    assert sandbox.ssh(wiped, "hostname").stdout.strip() == wiped
    assert sandbox.ssh(kept, "cat /root/keep-file").stdout.strip() == "keep"


def test_down_leaves_nothing_behind(sandbox: RunningSandbox) -> None:
    paths = Paths.for_repo(sandbox.repo_root)
    cfg = load_config(sandbox.repo_root)
    removed = api.down(sandbox.repo_root, log=quiet_log)
    assert any(line.startswith("bridge ") for line in removed)
    for host in cfg.hosts:
        assert not network.netns_exists(host.name)
        assert not network.link_exists(network.veth_name(host.name))
    assert not network.link_exists(cfg.bridge_name)
    assert mounts.mounts_under(paths.build) == []
    assert not paths.hosts_dir.exists() and not paths.state_file.exists()
    leftovers = processes.find(
        lambda p: (
            bool(p.argv)
            and (p.argv[0].endswith("systemd-nspawn") or "http.server" in p.argv)
            and any(str(paths.build) in a or str(paths.cache) in a for a in p.argv)
        )
    )
    assert leftovers == []
    assert api.down(sandbox.repo_root, log=quiet_log) == []  # idempotent
