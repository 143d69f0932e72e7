"""Overlayfs mounts for host root filesystems, and knowing what is mounted where.

Deleting a directory tree that still has something mounted inside would walk into the mounted filesystem,
so every recursive delete in the sandbox goes through ``remove_tree``, which refuses when a mount is below.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from homelab.sandbox.errors import SandboxError
from homelab.sandbox.system import run

MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Path]:
    """Mount points listed in a mountinfo text, in mount order."""
    points: list[Path] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(Path(_unescape(fields[4])))
    return points


def mount_points() -> list[Path]:
    return parse_mountinfo(MOUNTINFO.read_text())


def is_mounted(path: Path) -> bool:
    return path.resolve() in mount_points()


def mounts_under(root: Path) -> list[Path]:
    root = root.resolve()
    return [p for p in mount_points() if p == root or root in p.parents]


def overlay_options(lower: Path, upper: Path, work: Path) -> str:
    for path in (lower, upper, work):
        # The kernel parses the option string on commas and colons; such paths would silently mean more.
        if any(ch in str(path) for ch in ",:"):
            raise SandboxError(f"overlay path {path} must not contain ',' or ':'")
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def mount_overlay(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    for path in (upper, work, merged):
        path.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "overlay", "overlay", "-o", overlay_options(lower, upper, work), str(merged)])


def unmount(path: Path) -> None:
    """Unmount (repeatedly: stacked mounts) and fall back to a lazy unmount when something still holds it."""
    for _ in range(8):
        if not is_mounted(path):
            return
        if run(["umount", str(path)], check=False).returncode != 0:
            run(["umount", "-l", str(path)])


def remove_tree(path: Path) -> None:
    if not path.exists():
        return
    below = mounts_under(path)
    if below:
        raise SandboxError(f"refusing to delete {path}: still mounted: {', '.join(map(str, below))}")
    shutil.rmtree(path)
