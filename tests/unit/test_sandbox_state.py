"""The state file: round trip, absence, damage and atomic writes (no root needed)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from homelab.sandbox import state
from homelab.sandbox.errors import SandboxError
from homelab.sandbox.state import HostRecord, ProcessRecord, SandboxState


def sample() -> SandboxState:
    record = SandboxState(bridge="hlbr0", bridge_cidr="10.77.0.1/24", apt_server=ProcessRecord(10, 111))
    host = record.host("sbx-master", "10.77.0.10")
    host.netns, host.veth, host.mount = "sbx-master", "hlvc66293f76c", "/b/hosts/sbx-master/merged"
    host.nspawn = ProcessRecord(42, 4242)
    return record


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state.save(path, sample())
    assert state.load(path) == sample()
    assert json.loads(path.read_text())["version"] == state.VERSION


def test_missing_file_is_empty_state(tmp_path: Path) -> None:
    loaded = state.load(tmp_path / "nope.json")
    assert loaded.is_empty()


@pytest.mark.parametrize("text", ["{", "[]", '{"version": 99}', '{"version": 1, "hosts": {"a": {}}}'])
def test_damaged_file_is_one_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(SandboxError, match="damaged"):
        state.load(path)


def test_host_record_is_created_once() -> None:
    record = SandboxState()
    first = record.host("a", "10.77.0.10")
    first.netns = "a"
    assert record.host("a", "10.77.0.10") is first
    assert record.hosts == {"a": HostRecord(name="a", address="10.77.0.10", netns="a")}


def test_atomic_write_leaves_no_temp_files_and_sets_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    state.write_atomic(path, "one\n")
    state.write_atomic(path, "two\n", mode=0o600)
    assert path.read_text() == "two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    state.save(path, sample())
    before = path.read_text()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(state.os, "replace", broken_replace)
    with pytest.raises(OSError):
        state.save(path, SandboxState())
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
