"""Shell commands on lab hosts for day-2 operations: a pluggable runner, real SSH by default.

Operations talk to hosts through the ``Remote`` protocol (``run(host, command) -> RemoteResult``) so unit
tests can hand in a fake that answers like k3s would, and sandbox tests use the real one against the
sandbox hosts. The real runner is plain ``ssh``: day-2 commands are a handful of one-shot calls
(``k3s etcd-snapshot save``, ``systemctl restart k3s-agent``), where pyinfra's fact machinery would only
add start-up time.

How a host is reached follows the host stages (``homelab.hostops.hostdata.ssh_data``): in the sandbox
``ssh -F build/sandbox/ssh/config NAME`` (that config carries key, user and connection sharing); elsewhere
the inventory's address, ``ssh.user``, ``ssh.port`` and ``ssh.identity_file``. A login other than root runs
every command through ``sudo -n``, never prompting.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from homelab.hostops.hostdata import find_host
from homelab.project import Project

CONNECT_TIMEOUT = 10
DEFAULT_TIMEOUT = 300.0
SSH_FAILED = 255  # ssh's own exit status when the connection (not the command) failed
TIMED_OUT = 124  # as timeout(1)


@dataclass(frozen=True)
class RemoteResult:
    """Exit status and output of one command on one host."""

    rc: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def last_line(self) -> str:
        """The last non-empty line of stderr, else of stdout: what to quote in a one-line error."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1][:300]
        return f"exit status {self.rc}, no output"


class Remote(Protocol):
    """Runs one ``sh`` command line on a named inventory host."""

    def run(self, host: str, command: str, *, timeout: float = DEFAULT_TIMEOUT) -> RemoteResult:
        """Run ``command`` (POSIX sh syntax) on ``host``; never raises for a failing command or connection."""
        ...


class SshRemote:
    """The real runner: the ``ssh`` client, one connection per command (or a shared master in the sandbox)."""

    def __init__(self, inventory: Mapping[str, Any], *, ssh_config: Path | None, root: Path) -> None:
        self.inventory = inventory
        self.ssh_config = ssh_config
        self.root = root

    def argv(self, host: str, command: str) -> list[str]:
        """The ssh command line that runs ``command`` on ``host`` (exposed for tests and dry output)."""
        entry = find_host(self.inventory, host)
        ssh = self.inventory.get("ssh") or {}
        user = str(ssh.get("user") or "root")
        # Always `sh -c`: the command's syntax must not depend on the login shell of the remote account.
        remote_cmd = f"sh -c {shlex.quote(command)}"
        if user != "root":
            remote_cmd = f"sudo -n {remote_cmd}"
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}"]
        if self.ssh_config is not None:
            argv += ["-F", str(self.ssh_config), str(entry["name"])]
        else:
            argv += ["-p", str(ssh.get("port", 22))]
            identity = ssh.get("identity_file")
            if identity:
                path = Path(os.path.expanduser(str(identity)))
                argv += ["-o", "IdentitiesOnly=yes", "-i", str(path if path.is_absolute() else self.root / path)]
            argv.append(f"{user}@{entry['address']}")
        return [*argv, "--", remote_cmd]

    def run(self, host: str, command: str, *, timeout: float = DEFAULT_TIMEOUT) -> RemoteResult:
        try:
            argv = self.argv(host, command)
        except KeyError as exc:
            return RemoteResult(SSH_FAILED, "", str(exc.args[0] if exc.args else exc))
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  check=False)
        except subprocess.TimeoutExpired:
            return RemoteResult(TIMED_OUT, "", f"{host}: no answer within {timeout:.0f}s")
        except OSError as exc:
            return RemoteResult(SSH_FAILED, "", f"cannot run ssh: {exc}")
        return RemoteResult(proc.returncode, proc.stdout, proc.stderr)


def remote_for(project: Project) -> SshRemote:
    """The real runner for the project's environment (the same SSH settings the host stages use)."""
    assert project.inventory is not None, "the project has no valid inventory"
    lay = project.layout
    # As homelab.runstage.ssh_config: the sandbox's generated ssh config; the inventory's settings elsewhere.
    ssh_config = lay.build / "ssh" / "config" if lay.env == "sandbox" else None
    return SshRemote(project.inventory.data, ssh_config=ssh_config, root=lay.root)


def quote(value: str) -> str:
    """Shell-quote one word for a remote command line."""
    return shlex.quote(value)
