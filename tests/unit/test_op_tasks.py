"""The day-2 operations are wired as doit tasks: parameters as options or name=value variables, a clear
one-line refusal when a required parameter is missing, no traceback when there is no cluster to talk to."""

from __future__ import annotations

import pytest

from tests.helpers import Tree


@pytest.mark.parametrize(("task", "message"), [
    ("node_remove", "node_remove: name the node: doit node_remove node=NAME"),
    ("pg_restore", "pg_restore: name the database: doit pg_restore database=NAME [dump=FILE]"),
    ("cluster_restore", "cluster_restore: name the snapshot: doit cluster_restore snapshot=NAME"),
])
def test_missing_required_parameter_is_one_line(tree: Tree, task: str, message: str) -> None:
    run = tree.doit(task)
    assert run.returncode == 1
    assert f"FAILED {task}: {message}" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_operations_without_a_cluster_fail_cleanly(tree: Tree, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for args in (("node_remove", "node=sbx-worker-02"), ("node_remove", "--node", "sbx-worker-02"),
                 ("gpu_gaming",), ("k3s_upgrade",)):
        run = tree.doit(*args, HOMELAB_KUBECONFIG=str(tmp_path / "missing-kubeconfig"))
        assert run.returncode == 1, args
        failed = [ln for ln in run.stdout.splitlines() if ln.startswith(f"  FAILED {args[0]}: ")]
        assert failed and len(failed[0]) > len(f"  FAILED {args[0]}: ") + 20, run.stdout  # a real reason
        assert "Traceback" not in run.stdout + run.stderr


def test_operations_refuse_on_invalid_input(tree: Tree) -> None:
    tree.edit("releases/webapp/release.yaml", "needs: [database]", "needs: [databse]")
    run = tree.doit("node_remove", "node=sbx-worker-02")
    assert run.returncode == 1
    assert "unknown needs name 'databse'" in run.stderr


def test_drift_task_exits_2_on_host_drift_and_0_without(tree: Tree) -> None:
    import json

    assert tree.doit().returncode == 0
    clean = tree.doit("drift")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "drift: none" in clean.stdout
    drifted = tree.doit("drift", FAKE_HOSTRUN_DRIFT=json.dumps({"vm:sbx-worker-01": ["files.line NO_PROXY"]}))
    assert drifted.returncode == 2
    assert "vm:sbx-worker-01" in drifted.stdout
