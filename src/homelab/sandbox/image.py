"""The cached Debian base image every sandbox host boots from (built once with mmdebstrap).

The image lives outside the repository (``/var/cache/homelab/sandbox/<release>-base``) so fresh clones and
CI runs on the same machine reuse it. It is built into a temporary sibling directory and renamed into place
only when complete, so an interrupted build never looks like a finished image. A marker file inside records
the spec it was built from; a changed spec (release, package set, mirrors) means a rebuild.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from homelab.atomic import replace_dir
from homelab.sandbox import processes
from homelab.sandbox.config import Paths, digest
from homelab.sandbox.errors import SandboxError
from homelab.sandbox.mounts import MOUNTINFO, mounts_under, remove_tree, unmount
from homelab.sandbox.system import file_lock

# Bump when the post-processing below changes, so existing caches are rebuilt.
IMAGE_FORMAT = 1
BUILD_TIMEOUT = 1800

# systemd as PID 1, a real sshd, and python3 + python3-apt: pyinfra and testinfra drive hosts with them.
BASE_PACKAGES = (
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "procps",
)
MARKER = Path("etc/homelab-sandbox-image.json")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Image:
    path: Path
    build_id: str  # changes on every build; the apt repo is keyed on it


def mirror_lines(release: str, mirror: str | None = None) -> list[str]:
    """apt sources for the build; explicit so mmdebstrap never falls back to reading stdin."""
    base = (mirror or os.environ.get("HOMELAB_DEBIAN_MIRROR") or DEFAULT_MIRROR).rstrip("/")
    return [
        f"deb {base} {release} main",
        f"deb {base} {release}-updates main",
        f"deb {base}-security {release}-security main",
    ]


def spec_digest(release: str, mirrors: list[str]) -> str:
    return digest(str(IMAGE_FORMAT), release, ",".join(BASE_PACKAGES), *mirrors)


def mmdebstrap_argv(release: str, target: Path, mirrors: list[str]) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        release,
        str(target),
        *mirrors,
    ]


def read_marker(image: Path) -> dict[str, str] | None:
    try:
        data = json.loads((image / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def current(paths: Paths, release: str) -> Image | None:
    """The cached image if it is complete and matches today's spec."""
    image = paths.image_dir(release)
    marker = read_marker(image)
    if marker is None or marker.get("spec") != spec_digest(release, mirror_lines(release)):
        return None
    return Image(path=image, build_id=str(marker.get("build_id", "")))


def in_use(image: Path, mountinfo: str | None = None) -> bool:
    """True while any overlay uses the image as its lower layer (a running or mounted host)."""
    text = MOUNTINFO.read_text() if mountinfo is None else mountinfo
    return re.search(rf"lowerdir={re.escape(str(image))}(?=[,:\s]|$)", text, re.MULTILINE) is not None


def _postprocess(root: Path, marker: dict[str, str]) -> None:
    # Host keys are made per host; keys baked into the image would be shared by every host.
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    # An empty machine-id tells systemd this is a template; each host gets its own.
    (root / "etc" / "machine-id").write_text("")
    (root / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")


def _builds_into(target: str, proc: processes.ProcInfo) -> bool:
    return any(part.endswith("mmdebstrap") for part in proc.argv[:2]) and target in proc.argv


def _clear_stale(cache: Path, release: str) -> None:
    # Leftovers of an interrupted build; mmdebstrap may have left /proc or /dev mounted inside.
    for stale in cache.glob(f".{release}-base.*"):
        builders = processes.find(partial(_builds_into, str(stale)))
        if builders:
            raise SandboxError(
                f"an earlier image build is still running (pid {builders[0].pid}) into {stale}; wait or stop it"
            )
        for point in sorted(mounts_under(stale), key=lambda p: len(p.parts), reverse=True):
            unmount(point)
        remove_tree(stale)


def _mmdebstrap(argv: list[str], log: Path) -> None:
    """Run mmdebstrap in its own process group, so an interrupted build stops all of it (apt, dpkg too)."""
    with log.open("w") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        try:
            code = child.wait(timeout=BUILD_TIMEOUT)
        except BaseException:
            # mmdebstrap cleans up on SIGTERM (mostly: leftover mounts are handled by _clear_stale).
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            raise
    if code != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise SandboxError(f"mmdebstrap failed (log: {log}): {tail}")


def ensure(paths: Paths, release: str) -> tuple[Image, bool]:
    """The image, built if missing or stale; the flag says whether it was built now."""
    existing = current(paths, release)
    if existing is not None:
        return existing, False
    paths.cache.mkdir(parents=True, exist_ok=True)
    with file_lock(paths.cache / ".lock", "the image cache", wait=BUILD_TIMEOUT):
        existing = current(paths, release)
        if existing is not None:
            return existing, False
        target = paths.image_dir(release)
        if target.exists() and in_use(target):
            raise SandboxError(f"{target} is outdated but in use by sandbox hosts; run 'down' first")
        _clear_stale(paths.cache, release)
        mirrors = mirror_lines(release)
        tmp = Path(tempfile.mkdtemp(prefix=f".{release}-base.", dir=paths.cache))
        log = paths.cache / f"{release}-base.log"
        try:
            # mmdebstrap wants an empty or missing target; it creates it.
            tmp.rmdir()
            _mmdebstrap(mmdebstrap_argv(release, tmp, mirrors), log)
            build_id = uuid.uuid4().hex
            marker = {
                "spec": spec_digest(release, mirrors),
                "build_id": build_id,
                "release": release,
                "packages": ",".join(BASE_PACKAGES),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            _postprocess(tmp, marker)
            replace_dir(tmp, target, target.with_name(f".{release}-base.old-{build_id}"))
        finally:
            if tmp.exists():
                _clear_stale(paths.cache, release)
        return Image(path=target, build_id=build_id), True
