"""nfs stage: the NFS client everywhere and, on the server, the mount for etcd snapshots (Story 8.2).

Manages: nfs-common, and on the k3s server a systemd mount unit for nfs.server:nfs.path at /mnt/nfs, the
directory k3s' etcd-snapshot-dir points into. Where ``standins.nfs`` applies (NFS cannot mount inside
systemd-nspawn) the unit file is written but not started, and the stage reports it as a stand-in.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.context import host

from homelab.hostops import hostdata
from homelab.hostops import operations as hl

MOUNT_OPTIONS = "nfsvers=4.1,noatime,_netdev,nofail"


@deploy("nfs")
def apply() -> None:
    nfs = host.data.get("nfs")
    hl.apt_packages(name="NFS client", packages=["nfs-common"])
    hl.nfs_mount(name="NFS mount for etcd snapshots (server only)", what=f"{nfs['server']}:{nfs['path']}",
                 where=hostdata.NFS_MOUNT, options=MOUNT_OPTIONS,
                 present=host.data.get("k3s_role") == "server")
