"""Shared fixtures. Nothing here contacts the network: trees live under tmp_path and hosts are fakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from homelab import paths, redact
from tests.helpers import Tree, make_tree

pytest_plugins = ["tests.fakeapi.plugin"]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    """A copy of the repo with the base fixture releases; the engine in this process points at it."""
    t = make_tree(tmp_path)
    for key, value in t.env().items():
        if key.startswith("HOMELAB_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("HOMELAB_BUILD_DIR", raising=False)
    redact.clear()
    return t


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty chart cache for this test (HOMELAB_CHART_CACHE points at it)."""
    path = tmp_path / "chart-cache"
    path.mkdir()
    monkeypatch.setenv("HOMELAB_CHART_CACHE", str(path))
    return path


@pytest.fixture
def layout(tree: Tree) -> paths.Layout:
    return paths.layout("sandbox", tree.root)
