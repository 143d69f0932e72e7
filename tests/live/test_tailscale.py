"""tailscale stage: the node has a Tailscale IPv4 in the tailnet range; the auth key file is 0600."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.live.conftest import hosts, inventory, standin


@pytest.mark.parametrize("entry", hosts())
def test_tailscale_ipv4_in_tailnet(entry: dict[str, Any], target: Any) -> None:
    out = target.check_output("tailscale ip -4").strip()
    ip = ipaddress.ip_address(out)
    assert ip in ipaddress.ip_network(inventory()["network"]["tailscale"]["cidr"])
    if entry.get("tailscale_ip"):
        assert out == entry["tailscale_ip"]


@pytest.mark.parametrize("entry", hosts())
def test_tailscale_daemon_or_standin(entry: dict[str, Any], target: Any) -> None:
    unit = "homelab-tailscale-standin.service" if standin("tailscale") else "tailscaled.service"
    service = target.service(unit)
    assert service.is_enabled and service.is_running
    iface = target.interface("tailscale0")
    assert iface.exists
    assert target.check_output("cat /sys/class/net/tailscale0/mtu").strip() == str(
        inventory()["network"]["tailscale"]["mtu"])


@pytest.mark.parametrize("entry", hosts())
def test_auth_key_file_private(entry: dict[str, Any], target: Any) -> None:
    key = target.file("/etc/homelab/tailscale-authkey")
    assert key.is_file and key.user == "root" and key.mode == 0o600 and key.size > 0


@pytest.mark.parametrize("entry", hosts())
def test_tailscale_package_unless_standin(entry: dict[str, Any], target: Any) -> None:
    if standin("tailscale"):
        pytest.skip(f"stand-in tailscale: {standin('tailscale')}")
    assert target.package("tailscale").is_installed
    assert target.file("/usr/share/keyrings/tailscale-archive-keyring.gpg").exists
