"""The sandbox network: one bridge on the build machine, one network namespace per host, a veth between.

Safety by construction: the bridge carries only the bridge address; each namespace gets the host's address
on its veth and NO default route, and the machine's ip_forward is never touched. So a sandbox host can reach
the other hosts and the bridge address (the apt repo) and nothing else. No iptables rules are involved.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from homelab.sandbox.system import run

NETNS_DIR = Path("/run/netns")
INNER_IFNAME = "eth0"


def veth_name(host: str) -> str:
    """The build-machine end of a host's veth: stable, unique per host name, within IFNAMSIZ (15)."""
    return "hlv" + hashlib.sha1(host.encode()).hexdigest()[:10]


def _peer_name(host: str) -> str:
    # Temporary name of the namespace end until it is renamed to eth0 inside the namespace.
    return "hlp" + hashlib.sha1(host.encode()).hexdigest()[:10]


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def link_exists(name: str, netns: str | None = None) -> bool:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    return run([*prefix, "link", "show", "dev", name], check=False).returncode == 0


def _addresses(name: str, netns: str | None = None) -> list[str]:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    proc = run([*prefix, "-j", "addr", "show", "dev", name], check=False)
    if proc.returncode != 0:
        return []
    found: list[str] = []
    for link in json.loads(proc.stdout or "[]"):
        for addr in link.get("addr_info", []):
            found.append(f"{addr['local']}/{addr['prefixlen']}")
    return found


def bridge_commands(name: str, cidr: str) -> list[list[str]]:
    return [
        ["ip", "link", "add", name, "type", "bridge"],
        ["ip", "addr", "add", cidr, "dev", name],
        ["ip", "link", "set", name, "up"],
    ]


def host_link_commands(host: str, netns: str, bridge: str, cidr: str) -> list[list[str]]:
    """Create the veth pair with its far end already inside the namespace, address it, and plug it in."""
    veth, peer = veth_name(host), _peer_name(host)
    return [
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", peer, "netns", netns],
        ["ip", "-n", netns, "link", "set", peer, "name", INNER_IFNAME],
        ["ip", "-n", netns, "addr", "add", cidr, "dev", INNER_IFNAME],
        ["ip", "-n", netns, "link", "set", INNER_IFNAME, "up"],
        ["ip", "-n", netns, "link", "set", "lo", "up"],
        ["ip", "link", "set", veth, "master", bridge, "up"],
    ]


def ensure_bridge(name: str, cidr: str) -> bool:
    """Create the bridge with its address; True when it was created now."""
    if not link_exists(name):
        for argv in bridge_commands(name, cidr):
            run(argv)
        return True
    if cidr not in _addresses(name):
        run(["ip", "addr", "add", cidr, "dev", name])
    run(["ip", "link", "set", name, "up"])
    return False


def ensure_netns(name: str) -> bool:
    if netns_exists(name):
        return False
    run(["ip", "netns", "add", name])
    return True


def ensure_host_link(host: str, netns: str, bridge: str, cidr: str) -> bool:
    """The host's veth and address; True when the veth was created now."""
    veth = veth_name(host)
    if not link_exists(veth):
        if link_exists(INNER_IFNAME, netns):
            # A half-made link from an interrupted run: start that namespace's end over.
            run(["ip", "-n", netns, "link", "del", INNER_IFNAME])
        for argv in host_link_commands(host, netns, bridge, cidr):
            run(argv)
        return True
    if cidr not in _addresses(INNER_IFNAME, netns):
        run(["ip", "-n", netns, "addr", "add", cidr, "dev", INNER_IFNAME])
    run(["ip", "-n", netns, "link", "set", INNER_IFNAME, "up"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "link", "set", veth, "master", bridge, "up"])
    return False


def default_routes(netns: str) -> list[str]:
    proc = run(["ip", "-n", netns, "route", "show", "default"], check=False)
    return [line for line in proc.stdout.splitlines() if line.strip()]


def delete_link(name: str) -> bool:
    if not link_exists(name):
        return False
    run(["ip", "link", "del", name])
    return True


def delete_netns(name: str) -> bool:
    if not netns_exists(name):
        return False
    run(["ip", "netns", "del", name])
    return True
