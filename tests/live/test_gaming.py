"""gaming stage (role gaming): Steam (real hosts), the gpu-mode wrapper, its module and configuration."""

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
    assert (config["namespace"], config["selector"]) == ("ml", "app=vllm")
    assert config["modes"]["gaming"]["timeout_seconds"] == 30 and config["modes"]["ml"]["timeout_seconds"] == 120
    # where the GPU is a stand-in the switch is told so, instead of failing on a missing nvidia-smi
    assert config.get("vram_check", True) is (standin("nvidia") is None)
    module = target.file("/usr/local/lib/homelab/gpu_mode.py")
    assert module.is_file and module.contains("def parse_config_text")
    usage = target.run("/usr/local/bin/gpu-mode")  # the wrapper runs the module: no mode -> usage, exit 2
    assert usage.rc == 2 and "usage: gpu-mode" in usage.stderr


@pytest.mark.parametrize("entry", hosts("gaming"))
def test_steam(entry: dict[str, Any], target: Any) -> None:
    if standin("nvidia"):
        pytest.skip(f"stand-in nvidia (no GPU, Steam is a planned operation): {standin('nvidia')}")
    assert target.package("steam-installer").is_installed
    assert "i386" in target.check_output("dpkg --print-foreign-architectures")
