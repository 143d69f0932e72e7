"""The local sandbox: the lab's hosts as real Debian machines on this build machine.

Each sandbox host is a systemd-nspawn container booted from a cached Debian base image (with a per-host
overlayfs layer), living in its own network namespace attached to a private bridge, reachable over real SSH.
Hosts have no default route: they reach only each other and the bridge address, where a local flat apt
repository serves the packages listed in ``deploys/sandbox-packages.txt``.

Modules, one job each:
  config    inventory, paths and the package list
  system    running commands, required tools, root check
  processes pid identity, signals, waiting for processes to end
  mounts    overlayfs mounts and what is mounted where
  state     the JSON record of what ``up`` created (so ``down`` is exact)
  image     the cached base image (mmdebstrap)
  aptrepo   the local apt repository (download, index, serve)
  network   bridge, network namespaces, veth pairs
  ssh       the generated key, ssh_config and known_hosts
  hosts     per-host overlay, provisioning, boot, stop
  lifecycle up / down / reset / status, composed from the above
  api       the functions the engine calls
  testing   a pytest fixture helper for test packages that need the sandbox
"""

from homelab.sandbox.errors import SandboxError

__all__ = ["SandboxError"]
