"""Every invalid fixture yields its own specific `file: field: message` line, and nothing runs.

Each directory under tests/fixtures/invalid/ is named by its fault and holds files laid over a valid tree,
an `expect.txt` with the line(s) that must appear, and optionally `env` naming the environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from homelab import paths, redact
from homelab.project import Project
from homelab.secrets import init_identity
from tests.helpers import FIXTURES, apply_overlay, make_tree

INVALID = sorted(p for p in (FIXTURES / "invalid").iterdir() if p.is_dir())


def test_there_are_at_least_25_named_invalid_fixtures() -> None:
    assert len(INVALID) >= 25
    for case in INVALID:
        assert (case / "expect.txt").is_file(), f"{case.name} has no expect.txt"


@pytest.mark.parametrize("case", INVALID, ids=[p.name for p in INVALID])
def test_invalid_fixture_reports_its_problem(case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path)
    apply_overlay(tree, case)
    env = (case / "env").read_text().strip() if (case / "env").exists() else "sandbox"
    monkeypatch.setenv("HOMELAB_CONFIG_DIR", str(tree.config))
    monkeypatch.delenv("HOMELAB_BUILD_DIR", raising=False)
    redact.clear()
    lay = paths.layout(env, tree.root)
    if env != "sandbox":
        init_identity(lay)
    project = Project.load(lay)
    lines = [p.line() for p in project.problems]
    for expected in (case / "expect.txt").read_text().splitlines():
        if expected.strip():
            assert expected in lines, f"expected line missing.\nexpected: {expected}\nactual:\n" + "\n".join(lines)
    assert not project.ok
    # nothing was acted on: no stamps were written
    assert not lay.stamps.exists() or not any(lay.stamps.iterdir())
