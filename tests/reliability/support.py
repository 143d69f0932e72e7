"""Helpers shared by the reliability tests (no tests here)."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from homelab import paths, redact
from homelab.project import Project
from homelab.secrets import Secrets
from tests.helpers import Tree, make_tree
from tests.unit.test_apply_support import Cluster, serve_k3s_builtins, stage_standins


def doit(tree: Tree, *args: str, umask: int | None = None, timeout: float = 300,
         **extra: str) -> subprocess.CompletedProcess[str]:
    """``tree.doit``, optionally under a umask (a shell sets it: no preexec_fn next to the fake API's threads)."""
    if umask is None:
        return tree.doit(*args, **extra)
    command = f"umask {umask:03o} && exec {shlex.quote(sys.executable)} -m doit " + " ".join(map(shlex.quote, args))
    return subprocess.run(["sh", "-c", command], cwd=tree.root, env=tree.env(**extra), capture_output=True,
                          text=True, timeout=timeout)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fakeapi_tree(tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Tree:
    """The real releases against the FAKE API: stand-in charts staged and locked (as test_converge_fakeapi)."""
    tree = make_tree(tmp_path, real_releases=True)
    env = tree.env(**cluster.env)
    for key in ("HOMELAB_REPO", "HOMELAB_CONFIG_DIR", "HOMELAB_CHART_CACHE"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("HOMELAB_BUILD_DIR", raising=False)
    redact.clear()
    serve_k3s_builtins(cluster.api)
    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok, [p.line() for p in project.problems]
    stage_standins(project, Path(env["HOMELAB_CHART_CACHE"]), tmp_path / "standins")
    return tree


def secret_material(tree: Tree, env: str = "sandbox") -> dict[str, str]:
    """Every secret value of the tree's environment and its HMAC (the form digests, stamps and caches hold)."""
    os.environ.setdefault("HOMELAB_CONFIG_DIR", str(tree.config))
    store = Secrets(paths.layout(env, tree.root))
    found: dict[str, str] = {}
    for name in store.names():
        found[f"{name} (value)"] = store.value(name)
        found[f"{name} (hmac)"] = store.hmac(name)
    return found


def files_holding(roots: list[Path], needles: dict[str, str]) -> dict[Path, list[str]]:
    """Regular files under ``roots`` whose bytes contain any needle -> the needles' labels."""
    out: dict[Path, list[str]] = {}
    encoded = {label: value.encode() for label, value in needles.items() if value}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                hits = [label for label, value in encoded.items() if value in data]
                if hits:
                    out[path] = hits
    return out


def stamp_files(tree: Tree) -> list[Path]:
    return sorted((tree.build / "stamps").glob("*.json"))


def read_json_lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
