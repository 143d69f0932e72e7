"""vm stage: the base OS of every host.

Manages: the inventory check (OS release; CPUs and memory outside containers), base packages, security-only
unattended upgrades without automatic reboot (Story 8.4), the NFS client, the sysctls and kernel modules
Kubernetes needs, NO_PROXY in /etc/environment (Story 12.2) and, where network.firewall is true, ufw with
SSH and the k3s/Tailscale ports (Story 12.1).
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.context import host

from homelab.hostops import operations as hl

BASE_PACKAGES = ["unattended-upgrades", "nfs-common", "ca-certificates", "curl", "gnupg"]

# Two patterns because the distributions label their security pocket differently: Ubuntu's is the suite
# (archive) jammy-security, Debian's the codename bookworm-security. Neither matches anything else.
UNATTENDED_UPGRADES = """\
// Managed by homelab (deploys/vm): security updates only, never an automatic reboot.
Unattended-Upgrade::Origins-Pattern {
        "origin=${distro_id},archive=${distro_codename}-security";
        "origin=${distro_id},codename=${distro_codename}-security";
};
Unattended-Upgrade::Package-Blacklist {
};
Unattended-Upgrade::Automatic-Reboot "false";
Unattended-Upgrade::Automatic-Reboot-WithUsers "false";
Unattended-Upgrade::Remove-Unused-Kernel-Packages "true";
Unattended-Upgrade::Remove-Unused-Dependencies "false";
Unattended-Upgrade::SyslogEnable "true";
"""

AUTO_UPGRADES = """\
// Managed by homelab (deploys/vm): refresh package lists and run unattended-upgrade daily.
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APT::Periodic::AutocleanInterval "7";
"""

# What kubelet and flannel expect. Inside a container only net.* can be written; the operation decides per
# key from the SysctlState fact, and the file below applies them all at boot on a real machine.
SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "vm.overcommit_memory": "1",
    "vm.panic_on_oom": "0",
    "fs.inotify.max_user_instances": "8192",
    "fs.inotify.max_user_watches": "524288",
}


def sysctl_conf() -> str:
    # "-" makes systemd-sysctl skip a key it cannot set (module not loaded yet, read-only /proc/sys).
    lines = ["# Managed by homelab (deploys/vm): sysctls for k3s."]
    lines += [f"-{key} = {value}" for key, value in SYSCTLS.items()]
    return "\n".join(lines) + "\n"


@deploy("vm")
def apply() -> None:
    os_release = host.data.get("os")
    hardware = host.data.get("hardware")
    hl.host_matches_inventory(
        name="Host matches the inventory (OS release, CPUs, memory)",
        os_id=os_release["id"], version_id=os_release["version_id"],
        cpus=hardware["cpus"], memory_gib=hardware["memory_gib"],
    )
    hl.apt_packages(name="Base packages (unattended-upgrades, NFS client)", packages=BASE_PACKAGES)
    hl.content(name="Security-only unattended upgrades, no automatic reboot",
               path="/etc/apt/apt.conf.d/50unattended-upgrades", text=UNATTENDED_UPGRADES)
    hl.content(name="Daily unattended-upgrades run", path="/etc/apt/apt.conf.d/20auto-upgrades",
               text=AUTO_UPGRADES)
    hl.service(name="Unattended-upgrades timer enabled", unit="apt-daily-upgrade.timer")
    no_proxy = host.data.get("no_proxy")
    hl.environment(name="NO_PROXY for loopback, cluster, service, tailnet and LAN ranges",
                   values={"NO_PROXY": no_proxy, "no_proxy": no_proxy})
    hl.content(name="Kubernetes sysctls persisted", path="/etc/sysctl.d/90-homelab-k8s.conf",
               text=sysctl_conf())
    hl.content(name="Kubernetes kernel modules loaded at boot", path="/etc/modules-load.d/homelab-k8s.conf",
               text="# Managed by homelab (deploys/vm)\noverlay\nbr_netfilter\n")
    hl.sysctl_runtime(name="Kubernetes sysctls applied now", values=SYSCTLS,
                      persisted_in="/etc/sysctl.d/90-homelab-k8s.conf")
    hl.firewall(name="Firewall: SSH, k3s and Tailscale ports", enabled=host.data.get("firewall"),
                rules=host.data.get("firewall_rules"))
