"""ssh_config rendering, control socket placement and known_hosts pruning (no root needed)."""

from __future__ import annotations

from pathlib import Path

from homelab.sandbox.config import HostSpec
from homelab.sandbox.ssh import CONTROL_NAME, control_dir, forget_host, render_config, ssh_argv

HOSTS = (HostSpec("sbx-master", "10.77.0.10"), HostSpec("sbx-worker-01", "10.77.0.11"))


def config_text(tmp_path: Path) -> str:
    return render_config(
        HOSTS, key=tmp_path / "id_ed25519", known_hosts=tmp_path / "known_hosts", control=tmp_path / "cm"
    )


def options(text: str, host_line: str) -> dict[str, str]:
    """The options of one Host block."""
    block = text.split(host_line + "\n", 1)[1].split("\n\n", 1)[0]
    pairs = (line.strip().split(" ", 1) for line in block.splitlines())
    return {key: value for key, value in pairs}


def test_one_host_entry_per_host_with_its_address(tmp_path: Path) -> None:
    text = config_text(tmp_path)
    assert options(text, "Host sbx-master 10.77.0.10") == {"HostName": "10.77.0.10", "HostKeyAlias": "sbx-master"}
    assert options(text, "Host sbx-worker-01 10.77.0.11")["HostName"] == "10.77.0.11"


def test_shared_options(tmp_path: Path) -> None:
    shared = options(config_text(tmp_path), "Host sbx-master 10.77.0.10 sbx-worker-01 10.77.0.11")
    assert shared["User"] == "root"
    assert shared["IdentityFile"] == str(tmp_path / "id_ed25519")
    assert shared["IdentitiesOnly"] == "yes"
    assert shared["StrictHostKeyChecking"] == "no"
    assert shared["UserKnownHostsFile"] == str(tmp_path / "known_hosts")
    assert shared["ControlMaster"] == "auto"
    assert shared["ControlPersist"] != "no"
    assert shared["ControlPath"] == str(tmp_path / "cm" / CONTROL_NAME)
    assert shared["BatchMode"] == "yes"


def test_paths_with_spaces_are_quoted(tmp_path: Path) -> None:
    spaced = tmp_path / "my repo"
    text = render_config(HOSTS, key=spaced / "k", known_hosts=spaced / "kh", control=spaced / "cm")
    assert f'IdentityFile "{spaced / "k"}"' in text


def test_control_dir_stays_short_enough_for_a_unix_socket(tmp_path: Path) -> None:
    assert control_dir(Path("/work/main/build/sandbox/ssh")) == Path("/work/main/build/sandbox/ssh/cm")
    deep = Path("/" + "/".join(["a-rather-long-directory-name"] * 4)) / "build" / "sandbox" / "ssh"
    fallback = control_dir(deep)
    assert fallback.parent == Path("/run")
    # ssh adds ~17 characters while binding; the kernel limit is 108 bytes with the NUL.
    assert len(str(fallback / "root@10.77.0.255:22")) + 17 < 104
    assert control_dir(deep) == fallback  # stable


def test_forget_host_drops_only_that_host(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("sbx-master ssh-ed25519 AAA1\nsbx-worker-01 ssh-ed25519 AAA2\nsbx-master ecdsa AAA3\n")
    forget_host(known, "sbx-master")
    assert known.read_text() == "sbx-worker-01 ssh-ed25519 AAA2\n"
    forget_host(tmp_path / "missing", "sbx-master")  # no file: nothing to do


def test_ssh_argv_uses_the_config() -> None:
    assert ssh_argv(Path("/c"), "sbx-master", "hostname") == ["ssh", "-F", "/c", "sbx-master", "hostname"]


def test_forget_host_also_drops_entries_under_the_address(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("sbx-master ssh-ed25519 AAAAold\n10.77.0.10 ssh-ed25519 AAAAold\n"
                     "[10.77.0.10]:22 ssh-ed25519 AAAAold\n10.77.0.11 ssh-ed25519 AAAAother\n")
    forget_host(known, "sbx-master", "10.77.0.10")
    assert known.read_text() == "10.77.0.11 ssh-ed25519 AAAAother\n"
