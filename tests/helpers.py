"""Test helpers: a throw-away copy of a homelab tree, and running doit against it in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
STAGES = ("vm", "tailscale", "k3s", "nfs", "gpu", "gaming")


@dataclass
class Tree:
    """A repo tree under tmp with its own build dir and config dir (age identity)."""

    root: Path
    config: Path
    env_name: str = "sandbox"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HOMELAB_REPO": str(self.root),
            "HOMELAB_CONFIG_DIR": str(self.config),
            "HOMELAB_ENV": self.env_name,
            "HOMELAB_HOST_RUNNER": "tests.fakes.fake_hostrun",
            "PYTHONPATH": str(REPO),
            "PATH": f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}",
            # never a developer's own chart cache: tests see exactly the charts they put there
            "HOMELAB_CHART_CACHE": str(self.config / "chart-cache"),
        })
        env.pop("HOMELAB_BUILD_DIR", None)
        env.update(extra)
        return env

    def doit(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "doit", *args], cwd=self.root, env=self.env(**extra),
                              capture_output=True, text=True, timeout=300)

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))

    @property
    def build(self) -> Path:
        return self.root / "build" / self.env_name


def make_tree(tmp: Path, releases: Path | None = None, real_releases: bool = False) -> Tree:
    """Copy hosts/, schemas/, dodo.py and deploys/stages.yaml; releases from the base fixture (or the real ones)."""
    root = tmp / "repo"
    root.mkdir(parents=True)
    for name in ("hosts", "schemas"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "deploys").mkdir()
    shutil.copy(REPO / "deploys" / "stages.yaml", root / "deploys" / "stages.yaml")
    # files stages ship from elsewhere in the repo (``code:`` in deploys/stages.yaml)
    shipped = root / "src" / "homelab" / "ops" / "gpu_mode.py"
    shipped.parent.mkdir(parents=True)
    shutil.copy(REPO / "src" / "homelab" / "ops" / "gpu_mode.py", shipped)
    for stage in STAGES:
        (root / "deploys" / stage).mkdir()
        (root / "deploys" / stage / "__init__.py").write_text(f'"""{stage} stage (test copy)."""\n')
    if real_releases:
        shutil.copytree(REPO / "releases", root / "releases")
        shutil.copy(REPO / "charts.lock", root / "charts.lock")
        if (REPO / "charts").is_dir():
            shutil.copytree(REPO / "charts", root / "charts")
    else:
        shutil.copytree(releases or FIXTURES / "base" / "releases", root / "releases")
    config = tmp / "config"
    config.mkdir()
    return Tree(root, config)


def apply_overlay(tree: Tree, overlay: Path) -> None:
    """Copy every file of a fixture directory over the tree (except the fixture's own metadata)."""
    for path in overlay.rglob("*"):
        if path.is_file() and path.name not in ("expect.txt", "env"):
            target = tree.root / path.relative_to(overlay)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)


def load_valid(tree: Tree) -> Any:
    """The tree's sandbox project, asserted free of problems (for tests that build on valid input)."""
    from homelab import paths
    from homelab.project import Project

    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok, [p.line() for p in project.problems]
    return project
