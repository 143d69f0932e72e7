"""One sandbox host: its overlay root filesystem, per-host identity, and its systemd-nspawn process.

Layout under ``build/sandbox/hosts/NAME/``: ``upper/`` and ``work/`` (the host's writable overlay layer over
the base image), ``merged/`` (the root it boots from), ``hostkeys/`` (its ssh host keys, kept across resets
so its identity is stable), ``console.log`` (nspawn's console output) and ``provisioned`` (a marker that the
per-host files were written into the current upper layer).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from homelab.sandbox import processes
from homelab.sandbox.config import HostSpec, Paths
from homelab.sandbox.errors import SandboxError
from homelab.sandbox.mounts import is_mounted, mount_overlay, remove_tree, unmount
from homelab.sandbox.network import NETNS_DIR
from homelab.sandbox.state import ProcessRecord
from homelab.sandbox.system import run

# The boot command measured on this machine (see the notes). --register=no and --keep-unit because there
# is no host systemd/dbus; the writable network API VFS lets the host manage its own net.* sysctls.
# --resolv-conf=off is our addition: otherwise nspawn copies the build machine's resolver address in, and a
# host without a route out has no business trying to reach it.
NSPAWN_ENV = {"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
STOP_GRACE = 20.0  # a clean poweroff takes 1-3 s
KILL_GRACE = 10.0


@dataclass(frozen=True)
class HostDirs:
    root: Path

    @property
    def upper(self) -> Path:
        return self.root / "upper"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def hostkeys(self) -> Path:
        return self.root / "hostkeys"

    @property
    def console_log(self) -> Path:
        return self.root / "console.log"

    @property
    def provisioned(self) -> Path:
        return self.root / "provisioned"


def host_dirs(paths: Paths, name: str) -> HostDirs:
    return HostDirs(paths.host_dir(name))


def nspawn_argv(merged: Path, name: str, netns: str) -> list[str]:
    return [
        "systemd-nspawn",
        "-q",
        "-b",
        "-D",
        str(merged),
        "-M",
        name,
        f"--network-namespace-path={NETNS_DIR / netns}",
        "--register=no",
        "--keep-unit",
        "--capability=CAP_NET_ADMIN",
        "--console=pipe",
        "--resolv-conf=off",
    ]


def is_our_nspawn(proc: processes.ProcInfo, merged: Path) -> bool:
    argv = proc.argv
    if not argv or not argv[0].endswith("systemd-nspawn"):
        return False
    return any(a == "-D" and b == str(merged) for a, b in itertools.pairwise(argv))


def etc_hosts(spec: HostSpec, all_hosts: Sequence[HostSpec]) -> str:
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{spec.name}", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{h.address}\t{h.name}" for h in all_hosts]
    return "\n".join(lines) + "\n"


def write_into(root: Path, relative: str, data: str, mode: int = 0o644, dir_mode: int = 0o755) -> None:
    """Write a file inside a host's root without ever following a symlink out of it.

    We are root on the build machine: an absolute symlink in the image (e.g. /etc/resolv.conf -> /run/...)
    would otherwise make us overwrite the build machine's own file.
    """
    current = root
    for part in Path(relative).parent.parts:
        current = current / part
        if current.is_symlink():
            raise SandboxError(f"{current} is a symlink; refusing to write through it")
        if not current.exists():
            current.mkdir(mode=dir_mode)
    target = root / relative
    if target.is_symlink():
        target.unlink()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(data)
        os.fchmod(handle.fileno(), mode)


def has_host_keys(dirs: HostDirs) -> bool:
    return any((dirs.hostkeys / "etc" / "ssh").glob("ssh_host_*_key"))


def ensure_host_keys(dirs: HostDirs) -> bool:
    """This host's own ssh host keys (generated once, reused by resets); True when generated now."""
    etc_ssh = dirs.hostkeys / "etc" / "ssh"
    if has_host_keys(dirs):
        return False
    etc_ssh.mkdir(parents=True, exist_ok=True)
    # -A with -f PREFIX writes every default key type under PREFIX/etc/ssh.
    run(["ssh-keygen", "-A", "-f", str(dirs.hostkeys)])
    return True


def provision(dirs: HostDirs, spec: HostSpec, all_hosts: Sequence[HostSpec], pubkey: str, apt_line: str) -> None:
    """Write the per-host files into the freshly mounted root (they land in the host's upper layer)."""
    root = dirs.merged
    write_into(root, "etc/hostname", spec.name + "\n")
    write_into(root, "etc/hosts", etc_hosts(spec, all_hosts))
    write_into(root, "etc/machine-id", uuid.uuid4().hex + "\n", mode=0o444)
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    for key in sorted((dirs.hostkeys / "etc" / "ssh").glob("ssh_host_*")):
        write_into(root, f"etc/ssh/{key.name}", key.read_text(), mode=0o644 if key.suffix == ".pub" else 0o600)
    write_into(root, "root/.ssh/authorized_keys", pubkey + "\n", mode=0o600, dir_mode=0o700)
    os.chmod(root / "root" / ".ssh", 0o700)
    # Only the local repo: the Debian mirror is unreachable from a host by design.
    write_into(root, "etc/apt/sources.list", f"# homelab sandbox: the local repo on the bridge\n{apt_line}\n")
    for extra in (root / "etc" / "apt" / "sources.list.d").glob("*"):
        if extra.suffix in (".list", ".sources"):
            extra.unlink()
    write_into(root, "etc/resolv.conf", "# homelab sandbox: no DNS (hosts have no route out)\n")
    dirs.provisioned.write_text(spec.name + "\n")


def mount(dirs: HostDirs, image: Path) -> bool:
    """Mount the host's overlay root; True when mounted now."""
    if is_mounted(dirs.merged):
        return False
    mount_overlay(image, dirs.upper, dirs.work, dirs.merged)
    return True


def unmount_root(dirs: HostDirs) -> bool:
    if not is_mounted(dirs.merged):
        return False
    unmount(dirs.merged)
    return True


def wipe(dirs: HostDirs) -> None:
    """Forget everything the host wrote: back to the base image (its host keys are kept)."""
    if is_mounted(dirs.merged):
        raise SandboxError(f"{dirs.merged} is still mounted; stop the host first")
    remove_tree(dirs.upper)
    remove_tree(dirs.work)
    dirs.provisioned.unlink(missing_ok=True)


def boot(dirs: HostDirs, name: str, netns: str) -> ProcessRecord:
    """Start the container detached: it outlives this command and is stopped only by ``down``/``reset``."""
    with dirs.console_log.open("a") as log:
        child = subprocess.Popen(
            nspawn_argv(dirs.merged, name, netns),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd="/",
            env={**os.environ, **NSPAWN_ENV},
        )
    return ProcessRecord(pid=child.pid, start_time=processes.start_time_of(child.pid))


def running(record: ProcessRecord | None) -> bool:
    return record is not None and processes.alive(record.pid, record.start_time)


def stop(record: ProcessRecord, name: str) -> str:
    """Power the host off. SIGTERM to nspawn is a clean poweroff; if that hangs, SIGKILL the container's
    PID 1 so nspawn exits by itself. Never SIGKILL nspawn: the container would live on, holding its port."""
    began = time.monotonic()
    if not processes.send(record.pid, record.start_time, signal.SIGTERM):
        return "not running"
    if processes.wait_gone(record.pid, record.start_time, STOP_GRACE):
        return f"stopped in {time.monotonic() - began:.1f}s"
    for init in processes.children(record.pid):
        processes.send(init, None, signal.SIGKILL)
    if processes.wait_gone(record.pid, record.start_time, KILL_GRACE):
        return f"stopped in {time.monotonic() - began:.1f}s (forced: no clean poweroff, killed the container's init)"
    raise SandboxError(f"{name}: systemd-nspawn (pid {record.pid}) did not exit; not killing it (see notes)")


def console_tail(dirs: HostDirs, lines: int = 3) -> str:
    try:
        text = dirs.console_log.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def remove(dirs: HostDirs) -> None:
    remove_tree(dirs.root)
