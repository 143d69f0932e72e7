"""vm stage: base packages, security-only unattended upgrades, NO_PROXY, sysctls, firewall."""

from __future__ import annotations

from typing import Any

import pytest

from tests.live.conftest import hosts, inventory


@pytest.mark.parametrize("entry", hosts())
def test_os_release_matches_inventory(entry: dict[str, Any], target: Any) -> None:
    release = target.system_info
    assert (release.distribution, release.release) == (entry["os"]["id"], entry["os"]["version_id"])


@pytest.mark.parametrize("entry", hosts())
def test_base_packages(entry: dict[str, Any], target: Any) -> None:
    for name in ("unattended-upgrades", "nfs-common", "ca-certificates", "curl"):
        assert target.package(name).is_installed, name


@pytest.mark.parametrize("entry", hosts())
def test_unattended_upgrades_security_only_no_reboot(entry: dict[str, Any], target: Any) -> None:
    conf = target.file("/etc/apt/apt.conf.d/50unattended-upgrades")
    assert conf.is_file and conf.user == "root" and conf.mode == 0o644
    text = conf.content_string
    assert '"origin=${distro_id},archive=${distro_codename}-security";' in text
    assert '"origin=${distro_id},codename=${distro_codename}-security";' in text
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in text
    assert "-updates" not in text
    periodic = target.file("/etc/apt/apt.conf.d/20auto-upgrades").content_string
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    assert 'APT::Periodic::Update-Package-Lists "1";' in periodic
    timer = target.service("apt-daily-upgrade.timer")
    assert timer.is_enabled and timer.is_running


@pytest.mark.parametrize("entry", hosts())
def test_no_proxy_line(entry: dict[str, Any], target: Any) -> None:
    lines = target.file("/etc/environment").content_string.splitlines()
    no_proxy = [line for line in lines if line.startswith("NO_PROXY=")]
    assert len(no_proxy) == 1
    parts = no_proxy[0].split("=", 1)[1].split(",")
    net = inventory()["network"]
    for cidr in ["127.0.0.0/8", net["cluster_cidr"], net["service_cidr"], net["tailscale"]["cidr"],
                 *net["lan_cidrs"]]:
        assert cidr in parts
    assert any(line.startswith("no_proxy=") for line in lines)


@pytest.mark.parametrize("entry", hosts())
def test_kubernetes_sysctls(entry: dict[str, Any], target: Any) -> None:
    conf = target.file("/etc/sysctl.d/90-homelab-k8s.conf")
    assert conf.contains("net.ipv4.ip_forward = 1") and conf.contains("vm.overcommit_memory = 1")
    # net.* is writable everywhere we run, containers included
    assert target.sysctl("net.ipv4.ip_forward") == 1
    assert target.file("/etc/modules-load.d/homelab-k8s.conf").contains("br_netfilter")


@pytest.mark.parametrize("entry", hosts())
def test_firewall(entry: dict[str, Any], target: Any) -> None:
    if not inventory()["network"]["firewall"]:
        pytest.skip("network.firewall is false in this inventory: ufw is not managed")
    assert target.package("ufw").is_installed
    status = target.run("ufw status").stdout
    assert "Status: active" in status
    added = target.run("ufw show added").stdout
    for rule in ("allow 22/tcp", "allow 6443/tcp", "allow 10250/tcp", "allow 8472/udp", "allow 41641/udp"):
        assert f"ufw {rule}" in added
