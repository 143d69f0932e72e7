"""k3s stage: pinned version, config over tailscale0, token file 0600, units running, kubeconfig 0600."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.live.conftest import hosts, inventory


def config(target: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(target.file("/etc/rancher/k3s/config.yaml").content_string)
    return data


@pytest.mark.parametrize("entry", hosts())
def test_pinned_version(entry: dict[str, Any], target: Any) -> None:
    assert f"k3s version {inventory()['k3s']['version']}" in target.check_output("k3s --version")


@pytest.mark.parametrize("entry", hosts())
def test_config_over_tailscale(entry: dict[str, Any], target: Any) -> None:
    conf = target.file("/etc/rancher/k3s/config.yaml")
    assert conf.mode == 0o600 and conf.user == "root"
    data = config(target)
    ts_ip = target.check_output("tailscale ip -4").strip()
    assert data["flannel-iface"] == "tailscale0"
    assert data["node-external-ip"] == ts_ip
    assert data["token-file"] == "/etc/rancher/k3s/token"
    if entry.get("labels"):
        assert sorted(data["node-label"]) == sorted(f"{k}={v}" for k, v in entry["labels"].items())
    if entry.get("taints"):
        assert data["node-taint"] == entry["taints"]


@pytest.mark.parametrize("entry", hosts())
def test_token_file_private_and_not_in_units(entry: dict[str, Any], target: Any) -> None:
    token = target.file("/etc/rancher/k3s/token")
    assert token.is_file and token.mode == 0o600 and token.user == "root" and token.size > 0
    unit = "k3s" if "server" in entry["roles"] else "k3s-agent"
    exec_start = target.check_output(f"systemctl show -p ExecStart {unit}.service")
    assert "token" not in exec_start.lower()


@pytest.mark.parametrize("entry", hosts("server"))
def test_server(entry: dict[str, Any], target: Any) -> None:
    service = target.service("k3s.service")
    assert service.is_enabled and service.is_running
    data = config(target)
    assert data["tls-san"] == [target.check_output("tailscale ip -4").strip(), entry["address"]]
    assert data["write-kubeconfig-mode"] == "0600"
    assert data["secrets-encryption"] is True
    assert data["etcd-snapshot-dir"] == f"/mnt/nfs/{inventory()['nfs']['snapshot_subdir']}"
    assert data["etcd-snapshot-schedule-cron"] == inventory()["k3s"]["etcd_snapshot"]["schedule"]
    assert data["etcd-snapshot-retention"] == inventory()["k3s"]["etcd_snapshot"]["retention"]
    kubeconfig = target.file("/etc/rancher/k3s/k3s.yaml")
    assert kubeconfig.is_file and kubeconfig.mode == 0o600 and kubeconfig.user == "root"
    assert target.socket(f"tcp://0.0.0.0:{inventory()['k3s']['api_port']}").is_listening


@pytest.mark.parametrize("entry", hosts("server"))
def test_manual_etcd_snapshot(entry: dict[str, Any], target: Any) -> None:
    """Story 8.2: ``k3s etcd-snapshot save`` writes a new file into the snapshot dir, ``ls`` lists it."""
    out = target.check_output("k3s etcd-snapshot save --name live-check")
    assert "live-check" in out
    listing = target.check_output("k3s etcd-snapshot ls")
    assert f"/mnt/nfs/{inventory()['nfs']['snapshot_subdir']}/live-check-" in listing


@pytest.mark.parametrize("entry", hosts("agent"))
def test_agent(entry: dict[str, Any], target: Any) -> None:
    service = target.service("k3s-agent.service")
    assert service.is_enabled and service.is_running
    server = config(target)["server"]
    assert server.startswith("https://100.") and server.endswith(f":{inventory()['k3s']['api_port']}")
