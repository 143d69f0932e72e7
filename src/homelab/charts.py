"""Chart sources: our own charts under charts/<name>/, and pinned remote charts in a local cache.

A remote chart is pinned by (repo, name, exact version) in its release file. ``doit charts`` (``pull``)
fetches the archives that are missing from the chart cache (``~/.cache/homelab/charts``, or
``HOMELAB_CHART_CACHE``) and records each archive's sha256 in ``charts.lock`` at the repository root,
which is committed. From then on the lock decides: an archive whose digest differs from the lock is an
error (a re-published chart, a tampered cache), never silently re-locked. With the lock unchanged and
the cache populated, nothing touches the network. Rendering only ever uses ``locate``, which is offline.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homelab.atomic import write_text_atomic
from homelab.project import Project
from homelab.releases import Release

LOCK_FILE = "charts.lock"
LOCK_VERSION = 1
_PIN_KEYS = ("repo", "name", "version")
_LOCK_HEADER = """\
# Digests of the remote Helm charts the releases pin (written by `doit charts`; commit this file).
# A cached archive whose sha256 differs from its entry here is refused. To accept a re-published chart on
# purpose, delete its entry and run `doit charts` again.
"""


class ChartError(Exception):
    """One or more charts could not be pulled or failed verification; ``messages`` holds what did work."""

    def __init__(self, errors: list[str], messages: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors
        self.messages = messages


def cache_dir() -> Path:
    override = os.environ.get("HOMELAB_CHART_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "homelab" / "charts"


def helm_binary() -> str:
    """HOMELAB_HELM, else the helm installed next to this Python (``make kube-binaries``), else PATH."""
    override = os.environ.get("HOMELAB_HELM")
    if override:
        return override
    beside = Path(sys.executable).parent / "helm"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("helm") or "helm"


def is_remote(release: Release) -> bool:
    chart = release.chart or {}
    return all(k in chart for k in _PIN_KEYS)


def pin(release: Release) -> dict[str, str]:
    chart = release.chart or {}
    return {k: str(chart[k]) for k in _PIN_KEYS}


def archive_name(chart: dict[str, Any]) -> str:
    return f"{chart['name']}-{chart['version']}.tgz"


def describe(chart: dict[str, Any]) -> str:
    return f"{chart['name']} {chart['version']}"


# -- the lock file ---------------------------------------------------------------------------------------

def lock_path(project: Project) -> Path:
    return project.layout.root / LOCK_FILE


def read_lock(project: Project) -> dict[str, dict[str, str]]:
    """Release name -> {repo, name, version, sha256}; {} when there is no lock file yet."""
    import yaml

    path = lock_path(project)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise ChartError([f"{LOCK_FILE}: malformed YAML: {exc}"], []) from None
    charts = data.get("charts", {}) if isinstance(data, dict) else None
    if not isinstance(charts, dict):
        raise ChartError([f"{LOCK_FILE}: expected a mapping with a 'charts' mapping"], [])
    entries: dict[str, dict[str, str]] = {}
    for name, entry in charts.items():
        if not isinstance(entry, dict) or not all(k in entry for k in (*_PIN_KEYS, "sha256")):
            raise ChartError([f"{LOCK_FILE}: charts.{name}: needs repo, name, version and sha256"], [])
        entries[str(name)] = {k: str(entry[k]) for k in (*_PIN_KEYS, "sha256")}
    return entries


def write_lock(project: Project, entries: dict[str, dict[str, str]]) -> None:
    import yaml

    body = {"version": LOCK_VERSION,
            "charts": {name: {k: entries[name][k] for k in (*_PIN_KEYS, "sha256")} for name in sorted(entries)}}
    write_text_atomic(lock_path(project), _LOCK_HEADER + yaml.safe_dump(body, sort_keys=False))


def locked_entry(lock: dict[str, dict[str, str]], release: Release) -> dict[str, str] | None:
    """The lock entry for the release's *current* pin; a bumped version has none until pulled."""
    entry = lock.get(release.name)
    if entry is None or any(entry[k] != v for k, v in pin(release).items()):
        return None
    return entry


# -- digests ----------------------------------------------------------------------------------------------

_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    # memoized by (path, mtime, size): render and validate may ask for the same archive many times per run
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


# -- locating a chart (offline) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Location:
    """Where a release's chart is, or why it cannot be used (``path`` None, ``reason`` says what to do)."""

    path: Path | None
    reason: str = ""


def find(project: Project, release: Release, lock: dict[str, dict[str, str]] | None = None) -> Location:
    chart = release.chart
    if chart is None:
        return Location(None, "release has no chart")
    if "path" in chart:
        path = project.layout.root / chart["path"]
        if (path / "Chart.yaml").is_file():
            return Location(path)
        return Location(None, f"{chart['path']}/Chart.yaml not found")
    archive = cache_dir() / archive_name(chart)
    if not archive.is_file():
        return Location(None, f"chart {describe(chart)} is not in the chart cache: run `doit charts` where the "
                              "chart repo is reachable")
    try:
        entry = locked_entry(read_lock(project) if lock is None else lock, release)
    except ChartError as exc:
        return Location(None, str(exc))
    if entry is None:
        return Location(None, f"chart {describe(chart)} is cached but has no entry in {LOCK_FILE}: run `doit charts` "
                              "to verify and lock it")
    actual = sha256_file(archive)
    if actual != entry["sha256"]:
        return Location(None, f"chart {describe(chart)} in the cache has sha256 {actual[:12]}, {LOCK_FILE} says "
                              f"{entry['sha256'][:12]}: the cached archive is not the locked chart")
    return Location(archive)


def locate(project: Project, release: Release) -> Path | None:
    """A chart we own -> its charts/<name>/ directory; a remote chart -> its verified cached archive; else None."""
    return find(project, release).path


# -- pulling (the only network access) ------------------------------------------------------------------------

def _pull_command(chart: dict[str, Any], destination: Path) -> list[str]:
    repo = str(chart["repo"]).rstrip("/")
    if repo.startswith("oci://"):
        return [helm_binary(), "pull", f"{repo}/{chart['name']}", "--version", str(chart["version"]),
                "--destination", str(destination)]
    return [helm_binary(), "pull", str(chart["name"]), "--repo", repo, "--version", str(chart["version"]),
            "--destination", str(destination)]


def _fetch(chart: dict[str, Any], cache: Path) -> tuple[Path | None, str]:
    """Pull one archive into a temp dir inside the cache; (path, "") or (None, why it failed)."""
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".pull-"))
    try:
        cmd = _pull_command(chart, tmp)
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"cannot run {cmd[0]}: {exc}"
        archives = sorted(tmp.glob("*.tgz"))
        if run.returncode != 0 or len(archives) != 1:
            lines = [ln for ln in (run.stderr or run.stdout).strip().splitlines() if ln.strip()]
            return None, lines[-1] if lines else f"helm pull exited {run.returncode} without an archive"
        # a temp name inside the cache dir keeps the later rename atomic (same filesystem)
        staged = cache / f".{archive_name(chart)}.{os.getpid()}.part"
        os.replace(archives[0], staged)
        return staged, ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pull(project: Project, releases: list[str] | None = None) -> list[str]:
    """Bring the cache and charts.lock up to date for the given releases (default: all); one message each.

    Raises ChartError naming every chart that could not be pulled or did not match its lock entry; the
    digests of the charts that did work are recorded first.
    """
    lock = read_lock(project)
    new_lock = dict(lock)
    cache = cache_dir()
    wanted = [r for r in sorted(project.releases, key=lambda r: r.name)
              if (releases is None or r.name in releases)]
    messages: list[str] = []
    errors: list[str] = []
    for release in wanted:
        if not is_remote(release):
            continue
        chart = pin(release)
        entry = locked_entry(lock, release)
        target = cache / archive_name(chart)
        if target.is_file():
            digest = sha256_file(target)
            source = "cached"
        else:
            staged, why = _fetch(chart, cache)
            if staged is None:
                errors.append(f"{release.name}: cannot pull chart {describe(chart)} from {chart['repo']}: {why}")
                continue
            digest = sha256_file(staged)
            if entry is not None and digest != entry["sha256"]:
                staged.unlink()
                errors.append(_mismatch(release, chart, digest, entry["sha256"], "pulled"))
                continue
            os.replace(staged, target)
            source = "pulled"
        if entry is None:
            new_lock[release.name] = {**chart, "sha256": digest}
            messages.append(f"{release.name}: {source} chart {describe(chart)}, locked sha256 {digest[:12]}")
        elif digest != entry["sha256"]:
            errors.append(_mismatch(release, chart, digest, entry["sha256"], "cached"))
        else:
            messages.append(f"{release.name}: chart {describe(chart)} {source}, matches {LOCK_FILE}")
    if releases is None:
        # entries of releases that are gone (or now use a chart of ours) would only confuse a reader
        remote = {r.name for r in project.releases if is_remote(r)}
        for name in sorted(set(new_lock) - remote):
            del new_lock[name]
            messages.append(f"{name}: removed from {LOCK_FILE} (no remote chart any more)")
    if new_lock != lock:
        write_lock(project, new_lock)
    if errors:
        raise ChartError(errors, messages)
    return messages


def _mismatch(release: Release, chart: dict[str, str], actual: str, locked: str, how: str) -> str:
    return (f"{release.name}: chart {describe(chart)} from {chart['repo']} ({how}) has sha256 {actual}, "
            f"{LOCK_FILE} says {locked}: refusing it; if the chart was re-published on purpose, delete its "
            f"entry from {LOCK_FILE} and run `doit charts` again")
