"""The state file: a JSON record of everything ``up`` created, so ``down`` removes exactly that.

Each resource is recorded right after it is created and the file is rewritten atomically (temp file, fsync,
rename), so even an ``up`` that was interrupted or failed halfway leaves a truthful record.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from homelab.sandbox.errors import SandboxError

VERSION = 1


@dataclass
class ProcessRecord:
    pid: int
    start_time: int | None


@dataclass
class HostRecord:
    name: str
    address: str
    netns: str | None = None
    veth: str | None = None
    mount: str | None = None  # the merged overlay directory, while mounted
    nspawn: ProcessRecord | None = None


@dataclass
class SandboxState:
    bridge: str | None = None
    bridge_cidr: str | None = None
    apt_server: ProcessRecord | None = None
    hosts: dict[str, HostRecord] = field(default_factory=dict)

    def host(self, name: str, address: str) -> HostRecord:
        record = self.hosts.get(name)
        if record is None:
            record = self.hosts[name] = HostRecord(name=name, address=address)
        return record

    def is_empty(self) -> bool:
        return self.bridge is None and self.apt_server is None and not self.hosts

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, **asdict(self)}


def _process(data: Any) -> ProcessRecord | None:
    if data is None:
        return None
    return ProcessRecord(pid=int(data["pid"]), start_time=data.get("start_time"))


def from_json(data: Any) -> SandboxState:
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError("unknown state format")
    hosts = {
        name: HostRecord(
            name=name,
            address=str(entry["address"]),
            netns=entry.get("netns"),
            veth=entry.get("veth"),
            mount=entry.get("mount"),
            nspawn=_process(entry.get("nspawn")),
        )
        for name, entry in data.get("hosts", {}).items()
    }
    return SandboxState(
        bridge=data.get("bridge"),
        bridge_cidr=data.get("bridge_cidr"),
        apt_server=_process(data.get("apt_server")),
        hosts=hosts,
    )


def load(path: Path) -> SandboxState:
    """The recorded state; an empty one when there is no file. A damaged file is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SandboxState()
    try:
        return from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"{path} is damaged ({exc}); 'down' still removes what it can find") from exc


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory + fsync + rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(path: Path, state: SandboxState) -> None:
    write_atomic(path, json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")
