"""gpu stage (role gpu): driver and toolkit (real hosts), modeset, containerd nvidia runtime, eGPU rule."""

from __future__ import annotations

from typing import Any

import pytest

from tests.live.conftest import hosts, standin


@pytest.mark.parametrize("entry", hosts("gpu"))
def test_gpu_config_files(entry: dict[str, Any], target: Any) -> None:
    assert target.file("/etc/modprobe.d/nvidia-drm.conf").contains("^options nvidia-drm modeset=1$")
    tmpl = target.file("/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl")
    assert tmpl.contains('default_runtime_name = "nvidia"') and tmpl.contains('{{ template "base" . }}')
    rule = target.file("/etc/udev/rules.d/99-homelab-egpu.rules")
    assert rule.exists == bool(entry.get("gpu", {}).get("egpu"))


@pytest.mark.parametrize("entry", hosts("gpu"))
def test_nvidia_packages_and_persistenced(entry: dict[str, Any], target: Any) -> None:
    if standin("nvidia"):
        pytest.skip(f"stand-in nvidia: {standin('nvidia')}")
    driver = entry.get("gpu", {}).get("driver", "535")
    assert target.package(f"nvidia-driver-{driver}").is_installed
    assert target.package("nvidia-container-toolkit").is_installed
    assert target.service("nvidia-persistenced").is_enabled
    assert "RTX" in target.check_output("nvidia-smi --query-gpu=name --format=csv,noheader")
