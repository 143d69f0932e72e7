"""Host data, stage selection and the runner's pure helpers (no pyinfra connection, no host contacted)."""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab import hostrun
from homelab.hostops import hostdata
from homelab.hostops.secretvalue import Secret

ROOT = Path(__file__).resolve().parents[2]


def inventory(env: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "hosts" / f"{env}.yaml").read_text())
    return data


SECRETS = {"tailscale.auth_key": "tskey-unit-canary", "k3s.token": "K10-unit-canary"}


@pytest.mark.parametrize("env", ["sandbox", "lab"])
def test_stages_for_host_by_role(env: str) -> None:
    inv = inventory(env)
    by_roles = {tuple(h["roles"]): hostrun.stages_for_host(inv, h["name"]) for h in inv["hosts"]}
    assert by_roles[("server",)] == ["vm", "tailscale", "k3s", "nfs"]
    assert by_roles[("agent",)] == ["vm", "tailscale", "k3s", "nfs"]
    assert by_roles[("agent", "gpu", "gaming")] == ["vm", "tailscale", "k3s", "nfs", "gpu", "gaming"]


def test_no_proxy_has_every_range() -> None:
    value = hostdata.no_proxy(inventory("lab"))
    for part in ["127.0.0.0/8", "10.42.0.0/16", "10.43.0.0/16", "100.64.0.0/10", "192.168.2.0/24",
                 "192.168.0.0/24"]:
        assert part in value.split(",")


def test_k3s_settings_server_and_gpu_agent() -> None:
    inv = inventory("lab")
    server = hostdata.k3s_settings(inv, hostdata.find_host(inv, "k3s-master"))
    assert server["flannel-iface"] == "tailscale0"
    assert server["write-kubeconfig-mode"] == "0600"
    assert server["secrets-encryption"] is True
    assert server["etcd-snapshot-dir"] == "/mnt/nfs/k3s-etcd-snapshots"
    assert server["etcd-snapshot-schedule-cron"] == "0 */12 * * *"
    assert server["etcd-snapshot-retention"] == 14
    assert server["token-file"] == "/etc/rancher/k3s/token"
    gpu = hostdata.k3s_settings(inv, hostdata.find_host(inv, "k3s-gpu-worker"))
    assert gpu["node-label"] == ["gpu=nvidia"]
    assert gpu["node-taint"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert "etcd-snapshot-dir" not in gpu


def test_host_data_wraps_only_the_stage_secrets() -> None:
    data = hostdata.host_data(inventory("sandbox"), "sbx-master", "k3s", upstream={}, secrets=SECRETS)
    assert set(data["homelab_secrets"]) == {"k3s.token"}
    assert isinstance(data["homelab_secrets"]["k3s.token"], Secret)
    assert "K10-unit-canary" not in repr(data) and "tskey-unit-canary" not in repr(data)
    assert data["server_tailscale_ip"] == "100.64.77.10"  # the sandbox inventory's, no upstream stamp yet
    vm = hostdata.host_data(inventory("sandbox"), "sbx-master", "vm", upstream={}, secrets=SECRETS)
    assert vm["homelab_secrets"] == {}


def test_missing_secret_is_one_line_error_without_connecting() -> None:
    result = hostrun.run_stage(inventory("sandbox"), "tailscale", "sbx-master", secrets={}, upstream={},
                               ssh_config=None)
    assert not result.ok
    assert result.error == "sbx-master: tailscale: stage tailscale needs secret tailscale.auth_key"


def test_stage_that_does_not_apply() -> None:
    result = hostrun.run_stage(inventory("lab"), "gaming", "k3s-master", secrets=SECRETS, upstream={},
                               ssh_config=None)
    assert not result.ok and result.error is not None
    assert result.error.startswith("k3s-master: stage gaming does not apply")


def test_lab_connects_with_sudo_and_inventory_key() -> None:
    inv = inventory("lab")
    data = hostdata.ssh_data(inv, hostdata.find_host(inv, "k3s-master"), None)
    assert data["_sudo"] is True
    assert data["ssh_user"] == "tom" and data["ssh_hostname"] == "192.168.2.20"
    sandbox = inventory("sandbox")
    sdata = hostdata.ssh_data(sandbox, hostdata.find_host(sandbox, "sbx-master"), "/x/ssh/config")
    assert sdata == {"ssh_connect_retries": 1, "ssh_hostname": "sbx-master", "ssh_config_file": "/x/ssh/config"}


def test_server_tailscale_ip_prefers_the_stamp() -> None:
    inv = inventory("sandbox")
    assert hostdata.server_tailscale_ip(inv, {"server_tailscale_ip": "100.64.1.1"}) == "100.64.1.1"
    lab = copy.deepcopy(inventory("lab"))
    assert hostdata.server_tailscale_ip(lab, {}) is None


def test_secret_value_masks_itself() -> None:
    secret = Secret("s3cr3t")
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(secret) and "s3cr3t" not in f"{secret}"
    assert secret.file_bytes() == b"s3cr3t\n"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)


def test_connect_errors_are_named() -> None:
    assert hostrun._connect_error("h", "Authentication error (username=root) (failed)").startswith("h: key refused")
    assert hostrun._connect_error("h", "Could not connect ([Errno 111] refused)").startswith("h: unreachable")
    assert "\n" not in hostrun._connect_error("h", "Could not\nconnect")


def test_redact_replaces_secret_values() -> None:
    assert hostrun._redact("token K10-unit-canary bad", SECRETS) == "token <secret:k3s.token> bad"


def test_rewrite_kubeconfig_and_private_write(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default\n"
        "contexts: []\nusers: []\n"
    )
    out = hostrun.rewrite_kubeconfig(text, "https://10.77.0.10:6443")
    assert yaml.safe_load(out)["clusters"][0]["cluster"]["server"] == "https://10.77.0.10:6443"
    dest = tmp_path / "build" / "kubeconfig"
    hostrun._write_private(dest, out)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    with pytest.raises(ValueError):
        hostrun.rewrite_kubeconfig("a: 1\n", "https://x:1")


def test_every_stage_has_a_deploy_package() -> None:
    for stage in hostdata.STAGES:
        assert callable(hostrun._load_deploy(stage))
