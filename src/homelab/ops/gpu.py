"""The GPU mode switch run by the engine: ``doit gpu_gaming``, ``doit gpu_ml``, ``doit gpu_status``.

The switch itself is ``homelab.ops.gpu_mode`` (stdlib-only, shared with the GPU host's ``gpu-mode``
command). Here it gets the engine's view of the lab: the kubeconfig the k3s stage fetched, the vllm
release's namespace and replica counts (the fallback when nothing was recorded before gaming), the
inference gateway's public URL and master key, and an SSH runner that reaches the GPU host with the
environment's ssh settings (the sandbox's ssh config, or the inventory's user/port/key in the lab).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, TextIO

from homelab.ops import gpu_mode, gpu_state
from homelab.ops.result import OpResult
from homelab.project import Project

GATEWAY_RELEASE = "inference-gateway"
GATEWAY_KEY_SECRET = "inference.litellm_master_key"
ENDPOINT_ENV = "HOMELAB_INFERENCE_URL"  # override the gateway URL (e.g. a port-forward)


def _release_replicas(values: dict[str, Any]) -> dict[str, int]:
    """Deployment name -> replicas as the vllm chart renders them (vllm-<model>, defaults.replicas else 1)."""
    default = int((values.get("defaults") or {}).get("replicas", 1))
    return {f"vllm-{m['name']}": int(m.get("replicas", default))
            for m in values.get("models") or [] if isinstance(m, dict) and m.get("name")}


def gpu_host_runner(project: Project) -> gpu_mode.Runner:
    """An SshRunner for the inventory's GPU host (the first host with role gpu)."""
    from homelab import runstage

    assert project.inventory is not None
    hosts = project.inventory.hosts_with_role("gpu")
    if not hosts:
        raise ValueError("no host with role gpu in the inventory")
    host = hosts[0]
    ssh_config = runstage.ssh_config(project)
    if ssh_config is not None:
        return gpu_mode.SshRunner(host.name, ["-F", str(ssh_config)])
    ssh = project.inventory.data.get("ssh") or {}
    options = ["-p", str(ssh.get("port", 22))]
    if ssh.get("identity_file"):
        options += ["-i", os.path.expanduser(str(ssh["identity_file"]))]
    user = ssh.get("user")
    return gpu_mode.SshRunner(f"{user}@{host.address}" if user else host.address, options)


def settings_for(project: Project) -> tuple[gpu_mode.Settings, list[str]]:
    """The switch's settings from the project, and notes to print (what was left out and why)."""
    from homelab import binaries, runstage
    from homelab.inputs import export_value
    from homelab.secrets import SecretsError

    assert project.inventory is not None
    notes: list[str] = []
    vllm = project.release(gpu_state.GPU_RELEASE)
    settings = gpu_mode.Settings(
        kubeconfig=str(runstage.kubeconfig_path(project)),
        kubectl=binaries.kubectl(),
        namespace=vllm.namespace,
        state_file=str(gpu_state.state_path(project.layout)),
        default_replicas=_release_replicas(vllm.values),
        actor=f"engine@{socket.gethostname()}",
    )
    standin = project.inventory.standins.get("nvidia")
    if standin:
        settings.vram_check = False
        notes.append(f"GPU check: stand-in ({standin})")
    endpoint = os.environ.get(ENDPOINT_ENV)
    if not endpoint and any(r.name == GATEWAY_RELEASE for r in project.releases):
        endpoint = str(export_value(project, f"{GATEWAY_RELEASE}.public_url"))
    settings.endpoint = endpoint or ""
    if settings.endpoint and project.secrets is not None:
        try:
            settings.api_key = project.secrets.value(GATEWAY_KEY_SECRET)  # registered with homelab.redact
        except SecretsError as exc:
            notes.append(f"gateway key unavailable ({exc}); requests go unauthenticated")
    return settings, notes


def _run(project: Project, mode: str, out: TextIO | None) -> OpResult:
    from homelab import binaries

    try:
        settings, notes = settings_for(project)
        runner = gpu_host_runner(project)
    except (ValueError, KeyError, StopIteration, binaries.BinaryNotFound) as exc:
        detail = str(exc) or "the vllm and inference-gateway releases are missing"
        return OpResult(False, f"gpu {mode}: cannot work out the GPU settings: {detail}", 0.0)
    if not os.path.exists(settings.kubeconfig):
        where = project.layout.rel(Path(settings.kubeconfig))
        return OpResult(False, f"gpu {mode}: no kubeconfig at {where} (converge the k3s stage first or set "
                        "HOMELAB_KUBECONFIG)", 0.0)
    switch = gpu_mode.GpuMode(settings, runner, out=out)
    for note in notes:
        switch.steps.say(note)
    result = {"gaming": switch.gaming, "ml": switch.ml, "status": switch.status}[mode]()
    return OpResult(result.ok, result.message, result.seconds,
                    {"mode": result.mode, "noop": result.noop, "waited": result.waited,
                     "overhead": round(result.overhead, 3), **result.details})


def run_gpu_gaming(project: Project, out: TextIO | None = None) -> OpResult:
    """``doit gpu_gaming``: vLLM to 0, GPU free for Steam, gateway on Ollama (NFR51: 30 s)."""
    return _run(project, "gaming", out)


def run_gpu_ml(project: Project, out: TextIO | None = None) -> OpResult:
    """``doit gpu_ml``: vLLM back to the recorded counts (else the release's), ready, gateway on vLLM (NFR52)."""
    return _run(project, "ml", out)


def run_gpu_status(project: Project, out: TextIO | None = None) -> OpResult:
    """``doit gpu_status``: the recorded mode, the vLLM Deployments and pods; changes nothing."""
    return _run(project, "status", out)
