"""What a deploy sees of the inventory: the pyinfra host data for one (stage, host), built without pyinfra.

Pure functions, so the engine, the runner and the tests agree on stage selection and on every derived value
(NO_PROXY, firewall rules, k3s settings) without importing pyinfra or contacting a host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homelab.hostops.secretvalue import Secret

STAGES = ("vm", "tailscale", "k3s", "nfs", "gpu", "gaming")
# Secrets each stage hands to the host (names in secrets/<env>.age); nothing else leaves the controller.
STAGE_SECRETS: dict[str, tuple[str, ...]] = {"tailscale": ("tailscale.auth_key",), "k3s": ("k3s.token",)}

NFS_MOUNT = "/mnt/nfs"
K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_TOKEN_FILE = "/etc/rancher/k3s/token"
K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
TAILSCALE_AUTHKEY_FILE = "/etc/homelab/tailscale-authkey"

# SSH, the k3s API and kubelet, flannel VXLAN and Tailscale's direct UDP port (Story 12.1 hardening), plus
# the pod/service ranges and the tailnet interface that flannel runs over.
BASE_FIREWALL_RULES = ("allow 22/tcp", "allow 6443/tcp", "allow 10250/tcp", "allow 8472/udp", "allow 41641/udp")


def find_host(inventory: Mapping[str, Any], host_name: str) -> dict[str, Any]:
    for entry in inventory.get("hosts", []):
        if entry.get("name") == host_name:
            return dict(entry)
    raise KeyError(f"{host_name} is not a host of inventory {inventory.get('environment', '?')}")


def stages_for_host(inventory: Mapping[str, Any], host: str | Mapping[str, Any]) -> list[str]:
    """vm, tailscale, k3s, nfs for every host; gpu for role gpu; gaming for role gaming (in graph order)."""
    entry = find_host(inventory, host) if isinstance(host, str) else dict(host)
    roles = set(entry.get("roles", []))
    stages = ["vm", "tailscale", "k3s", "nfs"]
    if "gpu" in roles:
        stages.append("gpu")
    if "gaming" in roles:
        stages.append("gaming")
    return stages


def server_host(inventory: Mapping[str, Any]) -> dict[str, Any]:
    servers = [h for h in inventory.get("hosts", []) if "server" in h.get("roles", [])]
    if len(servers) != 1:
        raise ValueError(f"inventory needs exactly one host with role server, found {len(servers)}")
    return dict(servers[0])


def k3s_role(entry: Mapping[str, Any]) -> str:
    return "server" if "server" in entry.get("roles", []) else "agent"


def no_proxy(inventory: Mapping[str, Any]) -> str:
    """NO_PROXY for /etc/environment: loopback, pod and service CIDRs, the tailnet, the LANs, local names."""
    net = inventory["network"]
    parts = ["127.0.0.0/8", net["cluster_cidr"], net["service_cidr"], net["tailscale"]["cidr"]]
    parts += list(net["lan_cidrs"])
    parts += ["localhost", ".local", ".svc", ".cluster.local"]
    return ",".join(dict.fromkeys(parts))


def firewall_rules(inventory: Mapping[str, Any]) -> list[str]:
    net = inventory["network"]
    return [*BASE_FIREWALL_RULES, f"allow from {net['cluster_cidr']}", f"allow from {net['service_cidr']}",
            "allow in on tailscale0"]


def snapshot_dir(inventory: Mapping[str, Any]) -> str:
    return f"{NFS_MOUNT}/{inventory['nfs']['snapshot_subdir']}"


def k3s_settings(inventory: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The static part of config.yaml; k3s_config adds node-external-ip, tls-san, server and cluster-init."""
    settings: dict[str, Any] = {"flannel-iface": "tailscale0", "token-file": K3S_TOKEN_FILE}
    if k3s_role(entry) == "server":
        snap = inventory["k3s"]["etcd_snapshot"]
        settings.update({
            "write-kubeconfig-mode": "0600",
            "secrets-encryption": True,
            "etcd-snapshot-schedule-cron": snap["schedule"],
            "etcd-snapshot-retention": snap["retention"],
            "etcd-snapshot-dir": snapshot_dir(inventory),
        })
    labels = entry.get("labels") or {}
    if labels:
        settings["node-label"] = [f"{key}={value}" for key, value in sorted(labels.items())]
    taints = entry.get("taints") or []
    if taints:
        settings["node-taint"] = list(taints)
    return settings


def ssh_data(inventory: Mapping[str, Any], entry: Mapping[str, Any], ssh_config: str | None) -> dict[str, Any]:
    """pyinfra connector data: the sandbox's ssh config by host name, or the inventory's address/user/key."""
    ssh = inventory.get("ssh", {})
    data: dict[str, Any] = {"ssh_connect_retries": 1}
    if ssh_config:
        data.update({"ssh_hostname": entry["name"], "ssh_config_file": ssh_config})
    else:
        data.update({"ssh_hostname": entry["address"], "ssh_user": ssh.get("user"), "ssh_port": ssh.get("port", 22)})
        if ssh.get("identity_file"):
            data["ssh_key"] = ssh["identity_file"]
    if ssh.get("user", "root") != "root":
        data["_sudo"] = True  # the lab logs in as an operator account; every command runs through sudo
    return data


def host_data(
    inventory: Mapping[str, Any],
    host_name: str,
    stage: str,
    *,
    upstream: Mapping[str, object],
    secrets: Mapping[str, str],
    ssh_config: str | None = None,
) -> dict[str, Any]:
    """Everything the deploy of ``stage`` reads from ``host.data``; secrets only as ``Secret`` wrappers."""
    entry = find_host(inventory, host_name)
    needed = STAGE_SECRETS.get(stage, ())
    missing = [name for name in needed if not secrets.get(name)]
    if missing:
        raise KeyError(f"stage {stage} needs secret {', '.join(missing)}")
    server = server_host(inventory)
    data: dict[str, Any] = {
        "homelab_env": inventory["environment"],
        "roles": list(entry["roles"]),
        "k3s_role": k3s_role(entry),
        "lan_ip": entry["address"],
        "os": dict(entry["os"]),
        "hardware": dict(entry["hardware"]),
        "gpu": dict(entry.get("gpu") or {}),
        "tailscale_ip": entry.get("tailscale_ip"),
        "tailscale_mtu": inventory["network"]["tailscale"]["mtu"],
        "no_proxy": no_proxy(inventory),
        "firewall": bool(inventory["network"]["firewall"]),
        "firewall_rules": firewall_rules(inventory),
        "k3s": dict(inventory["k3s"]),
        "k3s_settings": k3s_settings(inventory, entry),
        "nfs": dict(inventory["nfs"]),
        "server_name": server["name"],
        "server_address": server["address"],
        "upstream": dict(upstream),
        "server_tailscale_ip": server_tailscale_ip(inventory, upstream),
        # this node's address as the tailscale stage recorded it; the live fact wins when present
        "tailscale_ip_hint": upstream.get("tailscale_ip") or entry.get("tailscale_ip"),
        "standins": dict(inventory.get("standins") or {}),
        "homelab_secrets": {name: Secret(secrets[name]) for name in needed},
    }
    data.update(ssh_data(inventory, entry, ssh_config))
    return data


def server_tailscale_ip(inventory: Mapping[str, Any], upstream: Mapping[str, object]) -> str | None:
    """The server's Tailscale IPv4: from its tailscale stamp (upstream), else the inventory (sandbox)."""
    value = upstream.get("server_tailscale_ip")
    if isinstance(value, str) and value:
        return value
    ip = server_host(inventory).get("tailscale_ip")
    return str(ip) if ip else None
