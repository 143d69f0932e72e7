"""The environment's inventory (hosts/<env>.yaml): loading, schema check and the cross-field rules.

Cross-field rules are the ones JSON Schema cannot express: unique host names and addresses, the MetalLB
pool inside a LAN, exactly the roles the graph needs, GPU hosts declaring their GPU.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homelab import schema
from homelab.problems import Problem

SCHEMA = "inventory.schema.json"


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    roles: tuple[str, ...]
    data: dict[str, Any]

    @property
    def is_server(self) -> bool:
        return "server" in self.roles


@dataclass
class Inventory:
    """A validated inventory. ``data`` is the parsed document; accessors cover what the engine reads."""

    env: str
    rel: str
    data: dict[str, Any]

    @property
    def hosts(self) -> list[Host]:
        return [Host(h["name"], h["address"], tuple(h["roles"]), h) for h in self.data["hosts"]]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def hosts_with_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    @property
    def server(self) -> Host:
        return self.hosts_with_role("server")[0]

    @property
    def namespaces(self) -> dict[str, str]:
        ns: dict[str, str] = self.data["namespaces"]
        return ns

    @property
    def standins(self) -> dict[str, str]:
        s: dict[str, str] = self.data.get("standins", {})
        return s

    def lookup(self, dotted_path: str) -> Any:
        """Value at ``a.b.c`` (used by ${inv:...} placeholders); KeyError when absent."""
        node: Any = self.data
        for part in dotted_path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise KeyError(dotted_path)
        return node


def load(path: Path, rel: str, schema_dir: Path) -> tuple[Inventory | None, list[Problem]]:
    from homelab.yamlio import load_yaml_file

    data, problems = load_yaml_file(path, rel)
    if problems:
        return None, problems
    problems = schema.validate(data, schema_dir, SCHEMA, rel)
    if problems:
        return None, problems
    inv = Inventory(env=data["environment"], rel=rel, data=data)
    problems = cross_field_problems(inv)
    expected_env = path.stem
    if inv.env != expected_env:
        problems.append(Problem(rel, "environment", f"says {inv.env!r} but the file is for {expected_env!r}",
                                f"set environment: {expected_env}"))
    return (inv if not [p for p in problems if p.severity == "error"] else None), problems


def _ip(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


def cross_field_problems(inv: Inventory) -> list[Problem]:
    rel = inv.rel
    d = inv.data
    problems: list[Problem] = []

    def add(field: str, message: str, hint: str = "", severity: str = "error") -> None:
        problems.append(Problem(rel, field, message, hint, severity))

    # CIDRs must be real networks (the schema only checks the shape)
    nets: list[ipaddress.IPv4Network] = []
    for i, cidr in enumerate(d["network"]["lan_cidrs"]):
        try:
            nets.append(ipaddress.IPv4Network(cidr))
        except ValueError as exc:
            add(f"network.lan_cidrs[{i}]", f"{cidr!r} is not a network: {exc}",
                "host bits must be zero, e.g. 192.168.2.0/24")
    for key in ("cluster_cidr", "service_cidr"):
        try:
            ipaddress.IPv4Network(d["network"][key])
        except ValueError as exc:
            add(f"network.{key}", f"not a network: {exc}", "host bits must be zero")

    seen_names: dict[str, int] = {}
    seen_addrs: dict[str, int] = {}
    for i, h in enumerate(d["hosts"]):
        field = f"hosts[{i}]"
        if h["name"] in seen_names:
            add(f"{field}.name", f"duplicate host name {h['name']!r} (also hosts[{seen_names[h['name']]}])",
                "every host needs its own name")
        seen_names.setdefault(h["name"], i)
        if h["address"] in seen_addrs:
            add(f"{field}.address", f"duplicate address {h['address']} (also hosts[{seen_addrs[h['address']]}])",
                "every host needs its own address")
        seen_addrs.setdefault(h["address"], i)
        roles = set(h["roles"])
        if "server" in roles and "agent" in roles:
            add(f"{field}.roles", "a host is either server or agent, not both", "keep one of them")
        if not roles & {"server", "agent"}:
            add(f"{field}.roles", "every host must be a k3s server or agent", "add server or agent")
        if "gpu" in roles and "gpu" not in h:
            add(f"{field}.gpu", "host has role gpu but declares no GPU", "add gpu: {vendor, model, vram_gib}")
        if "gpu" in h and "gpu" not in roles:
            add(f"{field}.roles", "host declares a GPU but lacks role gpu", "add gpu to roles")
        if "gaming" in roles and "gpu" not in roles:
            add(f"{field}.roles", "role gaming needs role gpu on the same host", "add gpu to roles")
        if "gpu" in h and h["gpu"].get("reserved_gib", 0) >= h["gpu"]["vram_gib"]:
            add(f"{field}.gpu.reserved_gib", "reserves all of the card's VRAM", "reserve less than vram_gib")
        if nets and not any(_ip(h["address"]) in n for n in nets):
            add(f"{field}.address", f"{h['address']} is in none of network.lan_cidrs", "add its subnet to lan_cidrs")
        tsip = h.get("tailscale_ip")
        if tsip:
            try:
                if _ip(tsip) not in ipaddress.IPv4Network(d["network"]["tailscale"]["cidr"]):
                    add(f"{field}.tailscale_ip", f"{tsip} is outside network.tailscale.cidr",
                        "use an address in 100.64.0.0/10")
            except ValueError:
                pass

    servers = [h for h in d["hosts"] if "server" in h["roles"]]
    if len(servers) != 1:
        add("hosts", f"exactly one host with role server is required, found {len(servers)}",
            "the graph runs one k3s server (cluster-init) and joins everything else as agents")
    if not any("agent" in h["roles"] for h in d["hosts"]):
        add("hosts", "no host with role agent", "workloads do not schedule on the server; add an agent")

    pool = d["network"]["metallb_pool"]
    try:
        start, end = _ip(pool["start"]), _ip(pool["end"])
        if start > end:
            add("network.metallb_pool", f"start {start} is after end {end}", "swap them")
        if nets and not any(start in n and end in n for n in nets):
            add("network.metallb_pool", f"{start}-{end} is not inside any of network.lan_cidrs",
                "MetalLB answers ARP only on the LAN: pick addresses of a LAN subnet")
        for i, h in enumerate(d["hosts"]):
            if start <= _ip(h["address"]) <= end:
                add(f"hosts[{i}].address", f"{h['address']} lies inside the MetalLB pool",
                    "move the host or shrink the pool")
        ingress = _ip(d["network"]["ingress_ip"])
        if not start <= ingress <= end:
            add("network.ingress_ip", f"{ingress} is outside the MetalLB pool {start}-{end}",
                "Traefik's LoadBalancer IP must come from the pool")
    except ValueError:
        pass

    for required_ns in ("kube-system",):
        if required_ns not in d["namespaces"]:
            add("namespaces", f"namespace table lacks {required_ns}", "K3s core and Traefik live there")

    k3s = d["k3s"]
    install = k3s["install"]
    if install["source"] == "script" and "script_url" not in install:
        add("k3s.install.script_url", "source is script but no script_url is given", "e.g. https://get.k3s.io")
    if install["source"] == "binary" and "binary_path" not in install:
        add("k3s.install.binary_path", "source is binary but no binary_path is given",
            "an absolute path on the hosts")

    tls = d["tls"]
    if tls["challenge"] == "dns01" and "dns01_provider" not in tls:
        add("tls.dns01_provider", "DNS-01 needs a provider",
            "e.g. cloudflare; its API token goes into the secrets file")
    if tls["challenge"] == "http01" and _resolves_privately(d):
        add("tls.challenge", "HTTP-01 cannot succeed: the ingress IP is a private address Let's Encrypt cannot reach",
            "use challenge: dns01", severity="warning")

    if d["environment"] != "sandbox" and "standins" in d:
        add("standins", "stand-ins are for the sandbox only", "remove standins from a real lab inventory")
    if "sandbox" in d and d["environment"] != "sandbox":
        add("sandbox", "sandbox settings only belong to the sandbox inventory", "remove the sandbox key")
    return problems


def _resolves_privately(d: dict[str, Any]) -> bool:
    try:
        return _ip(d["network"]["ingress_ip"]).is_private
    except ValueError:
        return False
