"""The local flat apt repository the sandbox hosts install packages from (they have no route out).

Build: inside a throwaway chroot of the base image (systemd-nspawn ``--volatile=overlay``, so the image is
never written) apt resolves ``deploys/sandbox-packages.txt`` against the real Debian mirror and downloads
the .debs (dependencies included) into a persistent pool; the simulated install says exactly which files
the list needs, and those are indexed with ``dpkg-scanpackages``. The build is keyed on the package list and
the image's build id, and apt skips .debs already in the pool, so adding a package downloads only that.

Serve: a small ``python -m http.server`` bound only to the bridge address, started in the background.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from homelab.atomic import replace_dir
from homelab.sandbox import processes
from homelab.sandbox.config import Paths, digest
from homelab.sandbox.errors import SandboxError
from homelab.sandbox.image import Image
from homelab.sandbox.state import ProcessRecord, write_atomic
from homelab.sandbox.system import file_lock, run

# Runs inside the chroot. Package names arrive as "$@" (validated in config), never spliced into the script.
_RESOLVE_SCRIPT = """set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -q -o Acquire::Retries=3 update >&2
apt-get -q -y -o Acquire::Retries=3 --download-only install "$@" >&2
apt-get -q -s install "$@"
"""

# "Inst NAME [OLDVER] (VERSION ARCHIVES [ARCH])" from apt-get -s.
_INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([a-z0-9-]+)\]\)")


@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    arch: str

    @property
    def filename(self) -> str:
        # apt's archive naming: the epoch colon is URL-escaped.
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def parse_simulation(text: str) -> list[Deb]:
    return [Deb(*match.groups()) for match in map(_INST.match, text.splitlines()) if match]


def repo_key(release: str, image_build_id: str, packages: list[str]) -> str:
    return digest("apt-repo-v1", release, image_build_id, *packages)


def resolve_argv(image: Path, pool: Path, lists: Path, packages: list[str]) -> list[str]:
    """nspawn without boot on a volatile overlay of the image: apt writes go to tmpfs, except the two
    bind mounts that persist between runs (the .deb pool, and apt's index lists so updates are cheap)."""
    return [
        *("systemd-nspawn", "-q", "-D", str(image), "--register=no", "--keep-unit"),
        *("--volatile=overlay", "--console=pipe"),
        f"--bind={pool}:/var/cache/apt/archives",
        f"--bind={lists}:/var/lib/apt/lists",
        *("sh", "-c", _RESOLVE_SCRIPT, "sh", *packages),
    ]


def release_file(files: dict[str, bytes]) -> str:
    """A minimal unsigned Release so apt does not warn about a repository without one."""
    lines = [
        "Origin: homelab-sandbox",
        "Label: homelab-sandbox",
        f"Date: {formatdate(usegmt=True)}",
        "SHA256:",
    ]
    lines += [f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}" for name, data in sorted(files.items())]
    return "\n".join(lines) + "\n"


def _read_stamp(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def served_dir(paths: Paths, release: str) -> Path:
    return paths.apt_dir(release) / "repo"


def _index(repo: Path) -> None:
    run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, stdout_path=repo / "Packages", timeout=600)
    packages = (repo / "Packages").read_bytes()
    compressed = gzip.compress(packages, mtime=0)
    (repo / "Packages.gz").write_bytes(compressed)
    (repo / "Release").write_text(release_file({"Packages": packages, "Packages.gz": compressed}))


def ensure(paths: Paths, release: str, image: Image, packages: list[str]) -> tuple[Path, str]:
    """The served directory, up to date with the package list; the text says what happened."""
    base = paths.apt_dir(release)
    repo, stamp = base / "repo", base / "repo.json"
    key = repo_key(release, image.build_id, packages)
    if _read_stamp(stamp).get("key") == key and (repo / "Packages").is_file():
        return repo, "up to date"
    base.mkdir(parents=True, exist_ok=True)
    with file_lock(base / ".lock", "the apt repo cache", wait=1800):
        if _read_stamp(stamp).get("key") == key and (repo / "Packages").is_file():
            return repo, "up to date"
        pool = base / "pool"
        lists = base / "lists"
        for directory in (pool / "partial", lists / "partial"):
            directory.mkdir(parents=True, exist_ok=True)
        before = {p.name for p in pool.glob("*.deb")}
        debs: list[Deb] = []
        if packages:
            proc = run(resolve_argv(image.path, pool, lists, packages), check=False, timeout=1800)
            if proc.returncode != 0:
                errors = [line for line in proc.stderr.splitlines() if line.startswith("E:")]
                raise SandboxError(
                    f"apt could not fetch the sandbox packages: {' '.join(errors[-3:]) or proc.stderr[-300:]}"
                )
            debs = parse_simulation(proc.stdout)
        missing = [deb.filename for deb in debs if not (pool / deb.filename).is_file()]
        if missing:
            raise SandboxError(f"apt resolved packages that were not downloaded: {', '.join(missing[:5])}")
        wanted = {deb.filename for deb in debs}
        # The pool is a cache, not a mirror: drop versions the list no longer needs (bounded growth).
        for old in pool.glob("*.deb"):
            if old.name not in wanted:
                old.unlink()
        tmp = Path(tempfile.mkdtemp(prefix=".repo.", dir=base))
        try:
            for name in sorted(wanted):
                os.link(pool / name, tmp / name)
            _index(tmp)
            tmp.chmod(0o755)
            # Swap the served directory by rename; the server resolves the path per request.
            replace_dir(tmp, repo, base / f".repo.old-{os.getpid()}")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        record = {"key": key, "packages": packages, "debs": sorted(wanted), "image": image.build_id}
        write_atomic(stamp, json.dumps(record, indent=2) + "\n")
        downloaded = len(wanted - before)
        return repo, f"{len(wanted)} .debs for {len(packages)} packages ({downloaded} downloaded)"


# --- serving ----------------------------------------------------------------------------------------------


def server_argv(python: str, address: str, port: int, directory: Path) -> list[str]:
    return [python, "-m", "http.server", "--bind", address, "--directory", str(directory), str(port)]


def is_our_server(proc: processes.ProcInfo, address: str, directory: Path) -> bool:
    argv = proc.argv
    return "http.server" in argv and address in argv and str(directory) in argv


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_server(paths: Paths, release: str, address: str, port: int) -> ProcessRecord:
    """Start the repo server detached (it outlives this command) and wait until it accepts connections."""
    directory = served_dir(paths, release)
    if _listening(address, port):
        raise SandboxError(f"{address}:{port} is already taken by another process; cannot serve the apt repo")
    paths.build.mkdir(parents=True, exist_ok=True)
    with paths.apt_server_log.open("a") as log:
        child = subprocess.Popen(
            server_argv(sys.executable, address, port, directory),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd="/",
        )
    record = ProcessRecord(pid=child.pid, start_time=processes.start_time_of(child.pid))
    deadline = time.monotonic() + 15
    while not _listening(address, port):
        if child.poll() is not None or time.monotonic() > deadline:
            tail = paths.apt_server_log.read_text(errors="replace").strip().splitlines()[-1:]
            raise SandboxError(f"apt repo server did not start on {address}:{port}: {' '.join(tail)}")
        time.sleep(0.05)
    return record


def stop_process(record: ProcessRecord, grace: float = 5) -> bool:
    """SIGTERM, then SIGKILL (a plain HTTP server holds nothing that needs a clean shutdown)."""
    if not processes.send(record.pid, record.start_time, signal.SIGTERM):
        return False
    if not processes.wait_gone(record.pid, record.start_time, grace):
        processes.send(record.pid, record.start_time, signal.SIGKILL)
        processes.wait_gone(record.pid, record.start_time, grace)
    return True
