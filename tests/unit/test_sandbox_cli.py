"""The CLI's contract for expected failures: one line, exit 1, no traceback (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from homelab.sandbox import __main__ as cli
from homelab.sandbox import api, lifecycle, system
from homelab.sandbox.errors import SandboxError

NOT_ROOT = "sandbox: needs root (systemd-nspawn, network namespaces); run as root or use HOMELAB_ENV=lab"


@pytest.mark.parametrize("command", ["image", "up", "down", "reset"])
def test_every_command_but_status_needs_root(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "is_root", lambda: False)
    assert cli.main([command, "--hosts", "sbx-master"]) == 1
    out, err = capsys.readouterr()
    assert err == NOT_ROOT + "\n" and out == ""


def test_status_works_without_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "is_root", lambda: False)
    monkeypatch.setenv("HOMELAB_BUILD_DIR", str(tmp_path))
    assert cli.main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[0].split()[:3] == ["sbx-master", "stopped", "10.77.0.10"]


def test_unknown_host_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "is_root", lambda: False)
    assert cli.main(["status", "--hosts", "sbx-master,nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sandbox: unknown host(s): nope") and err.count("\n") == 1


def test_missing_tool_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.shutil, "which", lambda tool: None if tool == "mmdebstrap" else "/usr/bin/x")
    with pytest.raises(SandboxError, match="mmdebstrap not found; install with: apt-get install -y mmdebstrap"):
        system.require_tools(["mmdebstrap", "ip"])


def test_failed_command_is_one_line_error() -> None:
    with pytest.raises(SandboxError, match=r"^sh -c 'echo oops >&2; exit 3' failed: oops$"):
        system.run(["sh", "-c", "echo oops >&2; exit 3"])


def test_unavailable_reason_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "is_root", lambda: False)
    assert api.unavailable_reason() == NOT_ROOT


def test_api_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "is_root", lambda: False)
    with pytest.raises(SandboxError, match="needs root"):
        api.ensure_up(Path(__file__).resolve().parents[2], ["sbx-master"])


def test_ssh_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.delenv("HOMELAB_BUILD_DIR", raising=False)
    assert api.ssh_config_path(repo) == repo / "build" / "sandbox" / "ssh" / "config"
