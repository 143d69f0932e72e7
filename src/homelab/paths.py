"""Where things live: the repository root, the selected environment and its build directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ENV = "sandbox"


def repo_root() -> Path:
    """The checkout this engine runs in (HOMELAB_REPO overrides, for tests with a copied tree)."""
    override = os.environ.get("HOMELAB_REPO")
    if override:
        return Path(override).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "hosts").is_dir():
            return parent
    return Path.cwd()


def config_dir() -> Path:
    """Operator configuration outside the repository (age identities)."""
    override = os.environ.get("HOMELAB_CONFIG_DIR")
    if override:
        return Path(override)
    return Path.home() / ".config" / "homelab"


@dataclass(frozen=True)
class Layout:
    """Paths of one environment inside one checkout."""

    root: Path
    env: str

    @property
    def inventory(self) -> Path:
        return self.root / "hosts" / f"{self.env}.yaml"

    @property
    def build(self) -> Path:
        base = os.environ.get("HOMELAB_BUILD_DIR")
        return (Path(base) if base else self.root / "build") / self.env

    @property
    def stamps(self) -> Path:
        return self.build / "stamps"

    @property
    def manifests(self) -> Path:
        return self.build / "manifests"

    @property
    def kubeconfig(self) -> Path:
        return self.build / "kubeconfig"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets" / f"{self.env}.age"

    @property
    def identity_file(self) -> Path:
        return config_dir() / f"{self.env}.key"

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def selected_env() -> str:
    return os.environ.get("HOMELAB_ENV", DEFAULT_ENV) or DEFAULT_ENV


def layout(env: str | None = None, root: Path | None = None) -> Layout:
    return Layout(root or repo_root(), env or selected_env())
