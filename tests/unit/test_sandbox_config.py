"""Sandbox configuration: inventory keys, host selection, package list, paths (no root needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.sandbox.config import Paths, load_config, parse_config, parse_package_list
from homelab.sandbox.errors import SandboxError

REPO = Path(__file__).resolve().parents[2]


def inventory(**sandbox: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sandbox": {
            "bridge": {"name": "hlbr0", "address": "10.77.0.1/24"},
            "apt_repo_port": 8477,
            "release": "bookworm",
        },
        "hosts": [{"name": "a", "address": "10.77.0.10"}, {"name": "b", "address": "10.77.0.11"}],
    }
    data["sandbox"].update(sandbox)
    return data


def test_repo_inventory_loads() -> None:
    cfg = load_config(REPO)
    assert cfg.bridge_name == "hlbr0"
    assert cfg.bridge_ip == "10.77.0.1"
    assert cfg.prefixlen == 24
    assert cfg.names() == ["sbx-master", "sbx-worker-01", "sbx-worker-02", "sbx-gpu-worker"]
    assert cfg.apt_source_line == "deb [trusted=yes] http://10.77.0.1:8477/ ./"


def test_select_keeps_inventory_order_and_rejects_unknown() -> None:
    cfg = parse_config(inventory())
    assert [h.name for h in cfg.select(["b", "a"])] == ["a", "b"]
    assert [h.name for h in cfg.select(None)] == ["a", "b"]
    with pytest.raises(SandboxError, match="unknown host"):
        cfg.select(["a", "nope"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["hosts"].append({"name": "c", "address": "192.168.1.5"}), "not a host address"),
        (lambda d: d["hosts"].append({"name": "c", "address": "10.77.0.1"}), "not a host address"),
        (lambda d: d["hosts"].append({"name": "Bad Name", "address": "10.77.0.20"}), "simple lower-case"),
        (lambda d: d["hosts"].append({"name": "a", "address": "10.77.0.20"}), "unique"),
        (lambda d: d["sandbox"].pop("release"), "sandbox.release"),
        (lambda d: d["sandbox"]["bridge"].update(address="10.77.0.1"), "needs a prefix"),
        (lambda d: d["sandbox"].update(apt_repo_port="x"), "port number"),
        (lambda d: d["sandbox"]["bridge"].update(name="a-very-long-bridge-name"), "interface name"),
    ],
)
def test_bad_inventory_is_one_clear_error(mutate: Any, message: str) -> None:
    data = inventory()
    mutate(data)
    with pytest.raises(SandboxError, match=message):
        parse_config(data)


def test_package_list_comments_duplicates_and_order() -> None:
    text = "# header\njq\ncurl  # for probes\n\njq\nca-certificates\n"
    assert parse_package_list(text) == ["ca-certificates", "curl", "jq"]


def test_package_list_rejects_non_names() -> None:
    with pytest.raises(SandboxError, match=r":2: '\$\(reboot\)'"):
        parse_package_list("jq\n$(reboot)\n", "list.txt")


def test_repo_package_list_has_the_basics() -> None:
    names = parse_package_list((REPO / "deploys" / "sandbox-packages.txt").read_text())
    assert {"python3-apt", "openssh-server", "sudo", "unattended-upgrades", "jq"} <= set(names)


def test_paths_defaults_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOMELAB_BUILD_DIR", raising=False)
    monkeypatch.delenv("HOMELAB_SANDBOX_CACHE", raising=False)
    paths = Paths.for_repo(tmp_path)
    assert paths.build == tmp_path / "build" / "sandbox"
    assert paths.ssh_key == tmp_path / "build" / "sandbox" / "ssh" / "id_ed25519"
    assert paths.image_dir("bookworm") == Path("/var/cache/homelab/sandbox/bookworm-base")
    monkeypatch.setenv("HOMELAB_BUILD_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("HOMELAB_SANDBOX_CACHE", str(tmp_path / "cache"))
    paths = Paths.for_repo(tmp_path)
    assert paths.state_file == tmp_path / "out" / "sandbox" / "state.json"
    assert paths.apt_dir("bookworm") == tmp_path / "cache" / "bookworm-apt"


def test_inventory_yaml_is_plain_safe_load() -> None:
    # The sandbox reads the inventory with yaml.safe_load only; the file must stay plain YAML.
    assert isinstance(yaml.safe_load((REPO / "hosts" / "sandbox.yaml").read_text()), dict)
