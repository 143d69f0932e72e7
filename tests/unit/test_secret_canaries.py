"""Canary secrets never reach stdout, stderr, plans, stamps or build/ — at maximum verbosity, with a
deploy that prints its secrets (the FAKE host runner's echo mode) and with a forced failure."""

from __future__ import annotations

from pathlib import Path

from homelab import paths
from homelab.secrets import Secrets
from tests.helpers import Tree

CANARIES = {
    "tailscale.auth_key": "CANARY-tskey-7f3a9c1e5b",
    "k3s.token": "CANARY-k3stoken-2d8e4f6a0c",
    "database.admin_password": "CANARY-pgpass-9b1d3f5e7a",
}


def _plant(tree: Tree) -> None:
    assert tree.doit("check").returncode == 0  # the sandbox generates its identity and secrets
    store = Secrets(paths.layout("sandbox", tree.root))
    values = dict(store.load())
    values.update(CANARIES)
    store.save(values)


def _assert_clean(text: str, where: str) -> None:
    for value in CANARIES.values():
        assert value not in text, f"canary {value} leaked into {where}"


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix != ".age"]


def test_canaries_never_leak(tree: Tree) -> None:
    _plant(tree)
    # the values must be in use: a change of secret shows up by name in the plan
    runs = [
        tree.doit("--verbosity", "2", "check", HOMELAB_VERBOSE="1"),
        tree.doit("--verbosity", "2", "plan", HOMELAB_VERBOSE="1"),
        tree.doit("--verbosity", "2", "--continue", HOMELAB_VERBOSE="1", FAKE_HOSTRUN_ECHO_SECRETS="1",
                  FAKE_HOSTRUN_FAIL="k3s:sbx-worker-02"),
        tree.doit("plan", HOMELAB_VERBOSE="1"),
    ]
    # every run really ran (doit rejects misplaced options with exit 3); the converge fails on purpose
    assert [r.returncode == 0 for r in runs] == [True, True, False, True]
    assert runs[2].returncode in (1, 2)
    for i, run in enumerate(runs):
        _assert_clean(run.stdout, f"stdout of run {i}")
        _assert_clean(run.stderr, f"stderr of run {i}")
    converge = runs[2]
    assert "<redacted:k3s.token>" in converge.stdout  # the echo really happened and was redacted
    assert "FAILED k3s:sbx-worker-02" in converge.stdout
    for path in _files_under(tree.root):
        _assert_clean(path.read_text(errors="replace"), str(path.relative_to(tree.root)))


def test_changed_secret_is_named_not_shown(tree: Tree) -> None:
    _plant(tree)
    assert tree.doit().returncode == 0
    store = Secrets(paths.layout("sandbox", tree.root))
    values = dict(store.load())
    values["k3s.token"] = "CANARY-rotated-token-1234"
    store.save(values)
    plan = tree.doit("plan").stdout
    assert "k3s:sbx-master: secret k3s.token changed (value not shown)" in plan
    assert "CANARY-rotated-token-1234" not in plan
