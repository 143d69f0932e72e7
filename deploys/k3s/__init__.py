"""k3s stage: k3s server or agent at the pinned version, flannel over tailscale0 (Stories 12.2, 8.2).

Manages: the k3s binary (install script or a binary on the host, sha256-verified when the inventory pins
one), the cluster token as a 0600 ``token-file``, /etc/rancher/k3s/config.yaml (Tailscale node IP, tls-san,
etcd snapshots to the NFS mount, secrets encryption, labels and taints; cluster-init only for a new cluster),
our own k3s.service / k3s-agent.service (the token never appears in a unit), restarts when any of those
change, and the server kubeconfig's mode 0600. Where ``standins.k3s`` applies, the binary is the stand-in
executable shipped in files/k3s-standin.
"""

from __future__ import annotations

from pathlib import Path

from pyinfra.api.deploy import deploy
from pyinfra.context import host

from homelab.hostops import hostdata
from homelab.hostops import operations as hl

FILES = Path(__file__).parent / "files"


def unit_text(role: str) -> str:
    """The unit the k3s install script would write, minus anything secret (config.yaml carries the rest)."""
    return (
        f"# Managed by homelab (deploys/k3s): k3s {role}; settings live in {hostdata.K3S_CONFIG}.\n"
        "[Unit]\n"
        f"Description=Lightweight Kubernetes ({role})\n"
        "Documentation=https://k3s.io\n"
        "Wants=network-online.target\n"
        "After=network-online.target tailscaled.service homelab-tailscale-standin.service\n\n"
        "[Service]\n"
        "Type=notify\n"
        "EnvironmentFile=-/etc/default/%N\n"
        "KillMode=process\n"
        "Delegate=yes\n"
        "LimitNOFILE=1048576\n"
        "LimitNPROC=infinity\n"
        "LimitCORE=infinity\n"
        "TasksMax=infinity\n"
        "TimeoutStartSec=0\n"
        "Restart=always\n"
        "RestartSec=5s\n"
        "ExecStartPre=-/sbin/modprobe br_netfilter\n"
        "ExecStartPre=-/sbin/modprobe overlay\n"
        f"ExecStart=/usr/local/bin/k3s {role}\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


@deploy("k3s")
def apply() -> None:
    role = host.data.get("k3s_role")
    k3s = host.data.get("k3s")
    install = k3s["install"]
    unit = "k3s.service" if role == "server" else "k3s-agent.service"
    binary = hl.k3s_install(
        name=f"k3s {k3s['version']} binary", version=k3s["version"], role=role, source=install["source"],
        script_url=install.get("script_url"), binary_path=install.get("binary_path"),
        sha256=install.get("sha256"),
        standin_text=(FILES / "k3s-standin").read_text(encoding="utf-8").replace("@K3S_VERSION@", k3s["version"]),
    )
    token = hl.secret_file(name="k3s token file (0600)", path=hostdata.K3S_TOKEN_FILE, secret="k3s.token")
    config = hl.k3s_config(
        name="k3s config.yaml", role=role, settings=host.data.get("k3s_settings"),
        lan_ip=host.data.get("lan_ip"), api_port=k3s["api_port"],
        server_tailscale_ip=host.data.get("server_tailscale_ip"),
        fallback_tailscale_ip=host.data.get("tailscale_ip_hint"),
    )
    unit_file = hl.content(name=f"{unit} unit file", path=f"/etc/systemd/system/{unit}", text=unit_text(role))
    hl.service(name=f"{unit} running (restarted on change)", unit=unit,
               restart_on=[binary, token, config, unit_file])
    hl.file_mode(name="Server kubeconfig 0600", path=hostdata.K3S_KUBECONFIG, mode="600",
                 missing_reason="only a server has one; k3s writes it at start with write-kubeconfig-mode")
