"""gpu stage (role gpu): NVIDIA driver and container runtime for k3s on the GPU worker (Stories 12.1, 12.3).

Manages: the NVIDIA driver package (535+ as the inventory's gpu.driver says), nvidia-container-toolkit from
NVIDIA's apt repository with its signing key, ``options nvidia-drm modeset=1``, nvidia-persistenced enabled,
the k3s containerd config template that makes nvidia the default runtime (k3s restarted when it changes)
and, for an eGPU, a udev rule that authorizes Thunderbolt devices at boot. Where ``standins.nvidia`` applies
(no driver or kernel modules in the sandbox) packages and the persistence daemon are planned operations only;
the configuration files are written for real.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.context import host

from homelab.hostops import operations as hl

KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
TOOLKIT_REPO = {
    "name": "nvidia-container-toolkit",
    "key_url": "https://nvidia.github.io/libnvidia-container/gpgkey",
    "keyring": KEYRING,
    "dearmor": "yes",
    "line": f"deb [signed-by={KEYRING}] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /",
}
CONTAINERD_TEMPLATE = "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl"

# k3s renders this Go template instead of its own config.toml; "base" keeps everything k3s generates and the
# lines after it only switch the default runtime to nvidia (GPU pods then need no runtimeClassName).
CONTAINERD_TMPL = """\
# Managed by homelab (deploys/gpu): k3s base containerd config with nvidia as the default runtime.
{{ template "base" . }}

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "nvidia"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
  privileged_without_host_devices = false
  runtime_engine = ""
  runtime_root = ""
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
  BinaryName = "/usr/bin/nvidia-container-runtime"
  SystemdCgroup = true
"""

# Thunderbolt enclosures come up unauthorized; authorizing at add time makes the eGPU reconnect on boot
# (Story 12.1 "eGPU auto-connects on boot"). udevd rereads changed rule files itself.
EGPU_RULE = """\
# Managed by homelab (deploys/gpu): authorize Thunderbolt devices (the eGPU enclosure) when they appear.
ACTION=="add", SUBSYSTEM=="thunderbolt", ATTR{authorized}=="0", ATTR{authorized}="1"
"""


@deploy("gpu")
def apply() -> None:
    gpu = host.data.get("gpu")
    driver = gpu.get("driver") or "535"
    hl.apt_packages(name=f"NVIDIA driver {driver}", packages=[f"nvidia-driver-{driver}"], unless_standin="nvidia")
    hl.apt_packages(name="NVIDIA container toolkit", packages=["nvidia-container-toolkit"], repo=TOOLKIT_REPO,
                    unless_standin="nvidia")
    hl.content(name="nvidia-drm modeset=1", path="/etc/modprobe.d/nvidia-drm.conf",
               text="# Managed by homelab (deploys/gpu)\noptions nvidia-drm modeset=1\n")
    hl.service(name="nvidia-persistenced enabled", unit="nvidia-persistenced.service", unless_standin="nvidia")
    template = hl.content(name="containerd: nvidia default runtime", path=CONTAINERD_TEMPLATE,
                          text=CONTAINERD_TMPL)
    hl.content(name="eGPU Thunderbolt auto-authorize rule", path="/etc/udev/rules.d/99-homelab-egpu.rules",
               text=EGPU_RULE, present=bool(gpu.get("egpu")))
    unit = "k3s.service" if host.data.get("k3s_role") == "server" else "k3s-agent.service"
    hl.service(name=f"{unit} running with the nvidia runtime", unit=unit, restart_on=[template])
