"""gaming stage (role gaming): Steam (real hosts), the gpu-mode wrapper and its configuration."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.live.conftest import hosts, standin


@pytest.mark.parametrize("entry", hosts("gaming"))
def test_gpu_mode_wrapper_and_config(entry: dict[str, Any], target: Any) -> None:
    wrapper = target.file("/usr/local/bin/gpu-mode")
    assert wrapper.is_file and wrapper.mode == 0o755
    assert wrapper.contains("python3 \"$MODULE\"")
    config = yaml.safe_load(target.file("/etc/homelab/gpu-mode.yaml").content_string)
    assert config["modes"]["gaming"]["replicas"] == 0 and config["modes"]["ml"]["replicas"] == 1
    assert (config["namespace"], config["deployment"]) == ("ml", "vllm")


@pytest.mark.parametrize("entry", hosts("gaming"))
def test_steam(entry: dict[str, Any], target: Any) -> None:
    if standin("nvidia"):
        pytest.skip(f"stand-in nvidia (no GPU, Steam is a planned operation): {standin('nvidia')}")
    assert target.package("steam-installer").is_installed
    assert "i386" in target.check_output("dpkg --print-foreign-architectures")
