"""How the sandbox builds its commands and parses tool output (no root, nothing is run)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from homelab.sandbox import aptrepo, hosts, image, mounts, network, processes
from homelab.sandbox.config import HostSpec
from homelab.sandbox.errors import SandboxError


def test_nspawn_command_is_the_measured_one() -> None:
    argv = hosts.nspawn_argv(Path("/b/hosts/h1/merged"), "h1", "h1")
    assert argv[:6] == ["systemd-nspawn", "-q", "-b", "-D", "/b/hosts/h1/merged", "-M"]
    for option in (
        "--network-namespace-path=/run/netns/h1",
        "--register=no",
        "--keep-unit",
        "--capability=CAP_NET_ADMIN",
        "--console=pipe",
    ):
        assert option in argv
    assert hosts.NSPAWN_ENV == {"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
    # No private network flags: the namespace is ours, made by network.py.
    assert not any(a.startswith(("--network-veth", "--private-network", "--network-bridge")) for a in argv)


def test_our_nspawn_is_recognised_by_its_root() -> None:
    merged = Path("/b/hosts/h1/merged")
    ours = processes.ProcInfo(1, 1, "S", tuple(hosts.nspawn_argv(merged, "h1", "h1")))
    other = processes.ProcInfo(2, 1, "S", tuple(hosts.nspawn_argv(Path("/elsewhere"), "h1", "h1")))
    assert hosts.is_our_nspawn(ours, merged)
    assert not hosts.is_our_nspawn(other, merged)
    assert not hosts.is_our_nspawn(processes.ProcInfo(3, 1, "S", ("sleep", "-D", str(merged))), merged)


def test_mmdebstrap_command_has_python_apt_and_explicit_mirrors() -> None:
    mirrors = image.mirror_lines("bookworm", "http://deb.debian.org/debian/")
    assert mirrors == [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ]
    argv = image.mmdebstrap_argv("bookworm", Path("/c/.tmp"), mirrors)
    assert argv[:2] == ["mmdebstrap", "--variant=minbase"]
    included = argv[2].removeprefix("--include=").split(",")
    assert {"python3", "python3-apt", "openssh-server", "systemd-sysv", "dbus"} <= set(included)
    assert argv[3:5] == ["bookworm", "/c/.tmp"] and argv[5:] == mirrors


def test_image_spec_changes_with_mirrors_and_release() -> None:
    a = image.spec_digest("bookworm", image.mirror_lines("bookworm", "http://m1/debian"))
    assert a == image.spec_digest("bookworm", image.mirror_lines("bookworm", "http://m1/debian"))
    assert a != image.spec_digest("bookworm", image.mirror_lines("bookworm", "http://m2/debian"))
    assert a != image.spec_digest("trixie", image.mirror_lines("bookworm", "http://m1/debian"))


def test_image_in_use_detects_overlays_on_it() -> None:
    line = "99 30 0:55 / /b/hosts/h1/merged rw - overlay overlay rw,lowerdir=/c/bookworm-base,upperdir=/u,workdir=/w\n"
    assert image.in_use(Path("/c/bookworm-base"), line)
    assert not image.in_use(Path("/c/bookworm"), line)
    assert not image.in_use(Path("/c/bookworm-base"), "")


def test_apt_resolution_passes_packages_as_arguments_not_script() -> None:
    argv = aptrepo.resolve_argv(Path("/c/bookworm-base"), Path("/c/pool"), Path("/c/lists"), ["jq", "curl"])
    assert "--volatile=overlay" in argv  # the image is never written
    assert "--bind=/c/pool:/var/cache/apt/archives" in argv
    assert "--bind=/c/lists:/var/lib/apt/lists" in argv
    script_at = argv.index("-c") + 1
    assert "--download-only" in argv[script_at] and '"$@"' in argv[script_at]
    assert argv[script_at + 1 :] == ["sh", "jq", "curl"]


def test_parse_simulation() -> None:
    text = """NOTE: This is only a simulation!
Inst libonig5 (6.9.8-1 Debian:12.15/oldstable [amd64])
Inst jq (1.6-2.1+deb12u3 Debian-Security:12/oldstable-security [amd64])
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.15/oldstable [all])
Inst iptables (1:1.8.9-2 Debian:12.15/oldstable [amd64])
Conf jq (1.6-2.1+deb12u3 Debian-Security:12/oldstable-security [amd64])
"""
    debs = aptrepo.parse_simulation(text)
    assert [d.filename for d in debs] == [
        "libonig5_6.9.8-1_amd64.deb",
        "jq_1.6-2.1+deb12u3_amd64.deb",
        "tzdata_2025b-0+deb12u1_all.deb",
        "iptables_1%3a1.8.9-2_amd64.deb",
    ]


def test_repo_key_follows_the_list_and_the_image() -> None:
    key = aptrepo.repo_key("bookworm", "img1", ["curl", "jq"])
    assert key == aptrepo.repo_key("bookworm", "img1", ["curl", "jq"])
    assert key != aptrepo.repo_key("bookworm", "img1", ["curl", "jq", "ufw"])
    assert key != aptrepo.repo_key("bookworm", "img2", ["curl", "jq"])


def test_release_file_hashes() -> None:
    packages = b"Package: jq\n"
    compressed = gzip.compress(packages)
    text = aptrepo.release_file({"Packages": packages, "Packages.gz": compressed})
    assert f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n" in text
    assert text.startswith("Origin: homelab-sandbox\n")


def test_repo_server_binds_only_the_bridge_address() -> None:
    argv = aptrepo.server_argv("/py", "10.77.0.1", 8477, Path("/c/bookworm-apt/repo"))
    assert argv == ["/py", "-m", "http.server", "--bind", "10.77.0.1", "--directory", "/c/bookworm-apt/repo", "8477"]
    proc = processes.ProcInfo(5, 1, "S", tuple(argv))
    assert aptrepo.is_our_server(proc, "10.77.0.1", Path("/c/bookworm-apt/repo"))
    assert not aptrepo.is_our_server(proc, "10.77.0.1", Path("/other"))


def test_veth_names_fit_ifnamsiz_and_are_stable() -> None:
    names = {network.veth_name(f"host-{i}-with-a-long-name") for i in range(200)}
    assert len(names) == 200
    assert all(len(n) <= 15 for n in names)
    assert network.veth_name("sbx-master") == network.veth_name("sbx-master")


def test_network_commands_never_route_out() -> None:
    commands = network.bridge_commands("hlbr0", "10.77.0.1/24") + network.host_link_commands(
        "sbx-master", "sbx-master", "hlbr0", "10.77.0.10/24"
    )
    flat = [" ".join(c) for c in commands]
    assert "ip addr add 10.77.0.1/24 dev hlbr0" in flat
    assert "ip -n sbx-master addr add 10.77.0.10/24 dev eth0" in flat
    assert not any("route" in c or "forward" in c or "iptables" in c for c in flat)


def test_overlay_options_refuse_ambiguous_paths() -> None:
    assert mounts.overlay_options(Path("/l"), Path("/u"), Path("/w")) == "lowerdir=/l,upperdir=/u,workdir=/w"
    with pytest.raises(SandboxError):
        mounts.overlay_options(Path("/l,upperdir=/etc"), Path("/u"), Path("/w"))


def test_parse_mountinfo_unescapes() -> None:
    text = "36 35 98:0 / /mnt/my\\040repo/merged rw - overlay overlay rw\n"
    assert mounts.parse_mountinfo(text) == [Path("/mnt/my repo/merged")]


def test_parse_stat_with_odd_command_names() -> None:
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["987654"] + ["0"] * 20
    text = "123 (weird ) name) " + " ".join(fields)
    assert processes.parse_stat(text) == ("S", 987654)


def test_own_process_is_alive_and_identified() -> None:
    me = processes.info(os.getpid())
    assert me is not None
    assert processes.alive(me.pid, me.start_time)
    assert not processes.alive(me.pid, me.start_time + 1)  # a recycled pid is not ours


def test_etc_hosts_lists_every_host() -> None:
    text = hosts.etc_hosts(HostSpec("a", "10.77.0.10"), [HostSpec("a", "10.77.0.10"), HostSpec("b", "10.77.0.11")])
    assert "127.0.1.1\ta\n" in text and "10.77.0.11\tb\n" in text


def test_write_into_never_follows_symlinks_out_of_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "resolv.conf").write_text("host file\n")
    (root / "etc" / "resolv.conf").symlink_to(outside / "resolv.conf")
    hosts.write_into(root, "etc/resolv.conf", "sandbox\n")
    assert (outside / "resolv.conf").read_text() == "host file\n"
    assert (root / "etc" / "resolv.conf").read_text() == "sandbox\n"
    (root / "var").symlink_to(outside)
    with pytest.raises(SandboxError, match="symlink"):
        hosts.write_into(root, "var/lib/x", "no\n")
    hosts.write_into(root, "root/.ssh/authorized_keys", "key\n", mode=0o600, dir_mode=0o700)
    assert oct((root / "root" / ".ssh" / "authorized_keys").stat().st_mode & 0o777) == "0o600"


def test_remove_tree_refuses_mounted_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hosts" / "a" / "merged").mkdir(parents=True)
    monkeypatch.setattr(mounts, "mount_points", lambda: [tmp_path / "hosts" / "a" / "merged"])
    with pytest.raises(SandboxError, match="still mounted"):
        mounts.remove_tree(tmp_path / "hosts")
    assert (tmp_path / "hosts").exists()
