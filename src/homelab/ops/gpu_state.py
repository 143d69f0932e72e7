"""The GPU mode as the engine records it, read offline so a converge never brings vLLM back in gaming mode.

``doit gpu_gaming`` / ``doit gpu_ml`` (``homelab.ops.gpu``) record the mode in build/<env>/state/gpu-mode.json
(atomically; the format of ``homelab.ops.gpu_mode.read_state``). The engine applies ``replica_overrides`` to
the vllm release's values: in gaming mode every model's ``replicas`` becomes 0, so converging renders and
applies vLLM scaled down, and because the override is part of the release's values it is part of its input
digest: switching modes reruns the vllm release once, with the replica counts of the current mode.

When the switch ran on the GPU host (``gpu-mode gaming`` on the NUC), only the cluster knows: call
``sync_from_cluster`` before converging to copy the cluster's record (the Deployments' annotation) here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from homelab.ops import gpu_mode
from homelab.paths import Layout
from homelab.releases import Release

GPU_RELEASE = "vllm"  # the release whose Deployments gaming mode scales to 0
STATE_FILE = "gpu-mode.json"


def state_path(layout: Layout) -> Path:
    """build/<env>/state/gpu-mode.json."""
    return layout.build / "state" / STATE_FILE


def read(layout: Layout) -> dict[str, Any]:
    """The recorded state ({} when no switch was ever recorded)."""
    return gpu_mode.read_state(str(state_path(layout)))


def current_mode(layout: Layout) -> str:
    """``"gaming"`` or ``"ml"``. A gaming switch that failed half-way still counts as gaming: its intent is
    that vLLM stays off the GPU, and a converge must not undo that."""
    return "gaming" if read(layout).get("mode") == "gaming" else "ml"


def replica_overrides(layout: Layout, release: Release) -> dict[str, Any]:
    """Values to deep-merge over ``release.values`` (``releases.deep_merge(release.values, overrides)``).

    {} in ML mode and for every release but vllm. In gaming mode: ``{"models": [... every model with
    replicas: 0]}``; the whole list, because a deep merge replaces lists rather than merging them."""
    if release.name != GPU_RELEASE or current_mode(layout) != "gaming":
        return {}
    models = release.values.get("models")
    if not isinstance(models, list):
        return {}
    return {"models": [{**m, "replicas": 0} if isinstance(m, dict) else m for m in models]}


def sync_from_cluster(layout: Layout, kubeconfig: Path, kubectl: str, namespace: str = "ml",
                      selector: str = "app=vllm", timeout: float = 20.0) -> str:
    """Copy the cluster's record of the mode into the local state when they differ; returns the mode.

    One ``kubectl get``. When the cluster cannot be read the local record stands (returned unchanged):
    converging offline must still work."""
    try:
        proc = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), f"--request-timeout={int(timeout)}s",
                               "-n", namespace, "get", "deployments", "-l", selector, "-o", "json"],
                              capture_output=True, text=True, timeout=timeout + 10, check=False)
        items = json.loads(proc.stdout).get("items") or [] if proc.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        items = []
    records = []
    for item in items:
        raw = ((item.get("metadata") or {}).get("annotations") or {}).get(gpu_mode.ANNOTATION)
        try:
            record = json.loads(raw) if raw else None
        except ValueError:
            record = None
        if isinstance(record, dict) and record.get("mode") in gpu_mode.MODES:
            records.append(record)
    local = read(layout)
    if not records:
        return current_mode(layout)
    newest = max(records, key=lambda r: str(r.get("at", "")))
    if newest["mode"] != local.get("mode"):
        gpu_mode.write_state(str(state_path(layout)), {
            "mode": newest["mode"], "status": "synced", "replicas": newest.get("replicas", {}),
            "by": newest.get("by", ""), "started_at": newest.get("at", ""),
            "message": "copied from the cluster's record (the switch ran elsewhere)"})
    return "gaming" if newest["mode"] == "gaming" else "ml"
