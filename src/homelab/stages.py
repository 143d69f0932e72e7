"""Host stages as declared in deploys/stages.yaml (one pyinfra @deploy package per stage)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homelab.problems import Problem

_KEYS = {"description", "after", "on_server", "roles", "reads", "secrets", "code"}


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    after: tuple[str, ...]
    on_server: tuple[str, ...]
    roles: tuple[str, ...]
    reads: tuple[str, ...]
    secrets: tuple[str, ...]
    code: tuple[str, ...] = ()

    def applies_to(self, roles: tuple[str, ...]) -> bool:
        return not self.roles or bool(set(self.roles) & set(roles))


def load(root: Path) -> tuple[list[Stage], list[Problem]]:
    from homelab.yamlio import load_yaml_file

    rel = "deploys/stages.yaml"
    data, problems = load_yaml_file(root / rel, rel)
    if problems:
        return [], problems
    stages: list[Stage] = []
    names: set[str] = set()
    for name, spec in data.items():
        if not isinstance(spec, dict):
            problems.append(Problem(rel, str(name), "expected a mapping", "see the header comment"))
            continue
        for key in sorted(set(spec) - _KEYS):
            problems.append(Problem(rel, f"{name}.{key}", "unknown key",
                                    f"allowed keys: {', '.join(sorted(_KEYS))}"))

        def listed(key: str, spec: dict[str, Any] = spec) -> tuple[str, ...]:
            return tuple(str(v) for v in spec.get(key, []) or [])

        for dep in listed("after") + listed("on_server"):
            if dep not in names and dep != name:
                problems.append(Problem(rel, f"{name}.after", f"unknown or later stage {dep!r}",
                                        "a stage can only follow stages listed above it"))
        if not (root / "deploys" / str(name)).is_dir():
            problems.append(Problem(rel, str(name), f"no deploy package deploys/{name}/",
                                    "create it or drop the stage"))
        names.add(str(name))
        stages.append(Stage(str(name), str(spec.get("description", "")), listed("after"), listed("on_server"),
                            listed("roles"), listed("reads"), listed("secrets"), listed("code")))
        for path in listed("code"):
            if not code_path(root, path).is_file():
                problems.append(Problem(rel, f"{name}.code", f"{path} not found", "list files relative to the repo"))
    return stages, problems


_FILES: dict[tuple[Path, str], list[Path]] = {}


def deploy_files(root: Path, stage: str, extra: tuple[str, ...] = ()) -> list[Path]:
    """The code a stage runs: its deploy package, the shared host operations and facts, and the files it
    ships from elsewhere in the repo (``code:`` in stages.yaml)."""
    if (root, stage) not in _FILES:
        shipped = [code_path(root, p) for p in extra]
        _FILES[(root, stage)] = _list_deploy_files(root, stage) + [p for p in shipped if p.is_file()]
    return _FILES[(root, stage)]


def code_path(root: Path, rel: str) -> Path:
    """A ``code:`` file: in the repo, or for the engine's own modules (src/homelab/...) in the installed
    package, so a copied tree of inventories and releases (tests, benchmarks) needs no copy of the engine."""
    candidate = root / rel
    prefix = "src/homelab/"
    if not candidate.exists() and rel.startswith(prefix):
        return Path(__file__).resolve().parent / rel[len(prefix):]
    return candidate


def _list_deploy_files(root: Path, stage: str) -> list[Path]:
    files = sorted(p for p in (root / "deploys" / stage).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    shared = root / "src" / "homelab" / "hostops"
    if shared.is_dir():
        files += sorted(p for p in shared.rglob("*.py") if "__pycache__" not in p.parts)
    return files
