"""nfs stage: NFS client everywhere; on the server the etcd snapshot mount (a written unit in the sandbox)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.live.conftest import hosts, inventory, standin


@pytest.mark.parametrize("entry", hosts())
def test_nfs_client(entry: dict[str, Any], target: Any) -> None:
    assert target.package("nfs-common").is_installed


@pytest.mark.parametrize("entry", hosts("server"))
def test_snapshot_mount(entry: dict[str, Any], target: Any) -> None:
    nfs = inventory()["nfs"]
    unit = target.file("/etc/systemd/system/mnt-nfs.mount")
    assert unit.contains(f"What={nfs['server']}:{nfs['path']}") and unit.contains("Where=/mnt/nfs")
    if standin("nfs"):
        # explicit: the unit exists but is neither enabled nor mounted where NFS cannot mount
        assert not target.service("mnt-nfs.mount").is_running
        assert not target.mount_point("/mnt/nfs").exists
        return
    assert target.mount_point("/mnt/nfs").exists
    assert target.mount_point("/mnt/nfs").filesystem.startswith("nfs")
