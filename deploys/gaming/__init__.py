"""gaming stage (role gaming): Steam with Proton and the gpu-mode switch (Stories 13.1, 13.2).

Manages: Steam from the distribution (Ubuntu multiverse ``steam-installer`` with the i386 architecture;
Proton comes with the Steam client), the ``/usr/local/bin/gpu-mode gaming|ml`` wrapper, its configuration
/etc/homelab/gpu-mode.yaml, and the switch module itself when this repository has it
(src/homelab/ops/gpu_mode.py). Where ``standins.nvidia`` applies, Steam is a planned operation only.
"""

from __future__ import annotations

from pathlib import Path

from pyinfra.api.deploy import deploy

from homelab.hostops import operations as hl

REPO_ROOT = Path(__file__).resolve().parents[2]
GPU_MODE_MODULE = REPO_ROOT / "src" / "homelab" / "ops" / "gpu_mode.py"

WRAPPER = """\
#!/bin/sh
# Managed by homelab (deploys/gaming): switch the GPU between Steam (gaming) and vLLM (ml).
# Usage: gpu-mode gaming|ml     Configuration: /etc/homelab/gpu-mode.yaml
MODULE=/usr/local/lib/homelab/gpu_mode.py
if [ ! -f "$MODULE" ]; then
    echo "gpu-mode: $MODULE is not installed yet (converge the gaming stage)" >&2
    exit 3
fi
exec python3 "$MODULE" "$@"
"""

# Settings for src/homelab/ops/gpu_mode.py (it parses this YAML subset without PyYAML). The timeouts are
# Story 13.2's limits: gaming within 30 s (NFR51), ml within 2 min (NFR52).
# /etc/homelab/gpu-mode.kubeconfig is the NUC's credential for scaling vLLM (not provisioned by this stage).
GPU_MODE_CONFIG = """\
# Managed by homelab (deploys/gaming); read by /usr/local/bin/gpu-mode.
kubeconfig: /etc/homelab/gpu-mode.kubeconfig
namespace: ml
selector: app=vllm
modes:
  gaming:
    timeout_seconds: 30
    message: "Gaming Mode: vLLM scaled to 0, GPU available for Steam"
  ml:
    timeout_seconds: 120
    message: "ML Mode: vLLM restored, GPU dedicated to inference"
"""
# Where standins.nvidia applies there is no nvidia-smi: the switch says it skipped the VRAM check.
GPU_MODE_CONFIG_STANDIN = GPU_MODE_CONFIG + "vram_check: false  # stand-in nvidia: no GPU on this host\n"


@deploy("gaming")
def apply() -> None:
    hl.apt_packages(name="Steam (with Proton) from the distribution", packages=["steam-installer"],
                    require_components={"ubuntu": ["multiverse"], "debian": ["contrib"]},
                    foreign_architectures=["i386"], unless_standin="nvidia")
    hl.content(name="gpu-mode wrapper", path="/usr/local/bin/gpu-mode", text=WRAPPER, mode="755")
    hl.content(name="gpu-mode configuration", path="/etc/homelab/gpu-mode.yaml", text=GPU_MODE_CONFIG,
               standin_variants={"nvidia": GPU_MODE_CONFIG_STANDIN})
    hl.file_from_repo(name="gpu-mode switch module", src=str(GPU_MODE_MODULE),
                      path="/usr/local/lib/homelab/gpu_mode.py",
                      missing_reason="the gpu-mode switch (Story 13.2) is not written yet")
