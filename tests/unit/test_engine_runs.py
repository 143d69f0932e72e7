"""The build graph end to end through real doit runs, with a FAKE host runner (tests/fakes/fake_hostrun.py)
standing in for pyinfra over SSH. Asserts which tasks run, which are skipped, and what stamps record."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import Tree


def _calls(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line)["task"] for line in log.read_text().splitlines()]


def _ran(output: str) -> list[str]:
    return [line[2:].strip() for line in output.splitlines() if line.startswith("> ")]


def test_first_run_runs_everything_and_second_run_is_a_noop(tree: Tree, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    first = tree.doit(FAKE_HOSTRUN_LOG=str(log))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    assert len(_calls(log)) == 18  # 4 hosts x (vm, tailscale, k3s, nfs) + gpu + gaming on the GPU host
    log.unlink()
    second = tree.doit(FAKE_HOSTRUN_LOG=str(log))
    assert second.returncode == 0
    assert _calls(log) == []  # nothing changed: no host contacted
    assert _ran(second.stdout) == []
    assert "0 ran" in second.stdout


def test_stamp_records_digests_not_just_ok(tree: Tree) -> None:
    assert tree.doit().returncode == 0
    stamp = json.loads((tree.build / "stamps" / "tailscale:sbx-master.json").read_text())
    assert len(stamp["input_digest"]) == 64 and len(stamp["result_digest"]) == 64
    assert stamp["result"]["facts"]["tailscale_ip"] == "100.64.77.10"
    assert stamp["inputs"]["upstream"] == {"vm:sbx-master": json.loads(
        (tree.build / "stamps" / "vm:sbx-master.json").read_text())["result_digest"]}
    release = json.loads((tree.build / "stamps" / "database.json").read_text())
    assert release["result"]["exports"] == {"host": "postgresql.data.svc.cluster.local", "port": 5432}
    assert release["applied"] is False  # the sandbox has no Kubernetes API
    assert (tree.build / "stamps" / "database.json").stat().st_mode & 0o777 == 0o600


def test_one_value_edit_reruns_only_that_release(tree: Tree, tmp_path: Path) -> None:
    assert tree.doit().returncode == 0
    tree.edit("releases/database/values.yaml", "size: 8Gi", "size: 20Gi")
    plan = tree.doit("plan")
    assert plan.returncode == 0
    assert "database: releases/database/values.yaml primary.persistence.size 8Gi -> 20Gi" in plan.stdout
    assert "plan: 1 of" in plan.stdout  # webapp consumes database's exports, which did not change
    log = tmp_path / "calls.log"
    run = tree.doit(FAKE_HOSTRUN_LOG=str(log))
    assert _ran(run.stdout) == ["database"]
    assert _calls(log) == []


def test_changed_export_reruns_the_consumer(tree: Tree) -> None:
    assert tree.doit().returncode == 0
    tree.edit("releases/database/release.yaml", "value: postgresql.data.svc.cluster.local",
              "value: pg.data.svc.cluster.local")
    plan = tree.doit("plan").stdout
    assert "webapp: reference database.host postgresql.data.svc.cluster.local -> pg.data.svc.cluster.local" in plan
    run = tree.doit()
    assert _ran(run.stdout) == ["database", "webapp"]


def test_inventory_change_for_one_host_reruns_only_that_host(tree: Tree, tmp_path: Path) -> None:
    assert tree.doit().returncode == 0
    tree.edit("hosts/sandbox.yaml", "hardware: {cpus: 4, memory_gib: 16}", "hardware: {cpus: 8, memory_gib: 16}")
    log = tmp_path / "calls.log"
    run = tree.doit(FAKE_HOSTRUN_LOG=str(log))
    assert run.returncode == 0
    assert {c.split(":")[1] for c in _calls(log)} == {"sbx-gpu-worker"}
    # early cut-off: the host stages produced the same facts, so no release reran
    assert all(":" in name for name in _ran(run.stdout))


def test_upstream_rerun_with_same_result_does_not_rerun_downstream(tree: Tree, tmp_path: Path) -> None:
    assert tree.doit().returncode == 0
    (tree.root / "deploys" / "vm" / "__init__.py").write_text('"""vm stage, edited."""\n')
    log = tmp_path / "calls.log"
    run = tree.doit(FAKE_HOSTRUN_LOG=str(log))
    assert sorted(_calls(log)) == sorted(f"vm:{h}" for h in ("sbx-master", "sbx-worker-01", "sbx-worker-02",
                                                                "sbx-gpu-worker"))
    assert sorted(_ran(run.stdout)) == sorted(_calls(log))


def test_upstream_result_change_propagates(tree: Tree, tmp_path: Path) -> None:
    assert tree.doit().returncode == 0
    tree.edit("hosts/sandbox.yaml", "tailscale_ip: 100.64.77.10", "tailscale_ip: 100.64.77.50")
    run = tree.doit()
    ran = _ran(run.stdout)
    # the server's new tailscale IP is a new result: every agent's k3s task consumes it
    assert "k3s:sbx-worker-01" in ran and "k3s:sbx-gpu-worker" in ran
    assert "vm:sbx-worker-01" not in ran


def test_failed_host_writes_no_stamp_and_other_hosts_converge(tree: Tree) -> None:
    run = tree.doit("--continue", FAKE_HOSTRUN_FAIL="vm:sbx-worker-01")
    assert run.returncode != 0
    assert "FAILED vm:sbx-worker-01: sbx-worker-01: ssh: connect to host refused (fake)" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    stamps = tree.build / "stamps"
    assert not (stamps / "vm:sbx-worker-01.json").exists()
    assert not (stamps / "tailscale:sbx-worker-01.json").exists()
    assert (stamps / "nfs:sbx-worker-02.json").exists()
    retry = tree.doit()
    assert retry.returncode == 0
    assert "vm:sbx-worker-01" in _ran(retry.stdout)


def test_invalid_input_refuses_every_task(tree: Tree, tmp_path: Path) -> None:
    tree.edit("releases/webapp/release.yaml", "needs: [database]", "needs: [databse]")
    log = tmp_path / "calls.log"
    for args in ((), ("vm",), ("webapp",), ("plan",)):
        run = tree.doit(*args, FAKE_HOSTRUN_LOG=str(log))
        assert run.returncode == 1, args
        assert "releases/webapp/release.yaml: needs[0]: unknown needs name 'databse' (did you mean 'database'?)" \
            in run.stderr
        assert "Traceback" not in run.stdout + run.stderr
    assert _calls(log) == []
    assert not (tree.build / "stamps").exists()


def test_check_prints_all_problems_and_exits_1(tree: Tree) -> None:
    tree.edit("releases/webapp/release.yaml", "needs: [database]", "needs: [databse]")
    tree.edit("releases/database/release.yaml", "version: 16.4.2", "version: latest")
    run = tree.doit("check")
    assert run.returncode == 1
    assert "needs[0]: unknown needs name 'databse'" in run.stderr
    assert "chart.version: 'latest' is not an exact version" in run.stderr


def test_check_passes_on_valid_input(tree: Tree) -> None:
    run = tree.doit("check")
    assert run.returncode == 0, run.stderr
    assert "no problems" in run.stdout


def test_sigkill_mid_task_leaves_the_task_to_run_again(tree: Tree, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    log = tmp_path / "calls.log"
    env = tree.env(FAKE_HOSTRUN_LOG=str(log), FAKE_HOSTRUN_SLEEP="k3s:sbx-master=60")
    proc = subprocess.Popen([sys.executable, "-m", "doit"], cwd=tree.root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while "k3s:sbx-master" not in _calls(log):
        assert time.monotonic() < deadline, "the slow task never started"
        assert proc.poll() is None, "doit exited early"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stamps = tree.build / "stamps"
    for path in stamps.glob("*.json"):
        json.loads(path.read_text())  # every stamp on disk is complete
    assert not (stamps / "k3s:sbx-master.json").exists()
    assert (stamps / "tailscale:sbx-master.json").exists()
    log.unlink()
    rerun = tree.doit(FAKE_HOSTRUN_LOG=str(log))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "k3s:sbx-master" in _calls(log)
    assert "tailscale:sbx-master" not in _calls(log)
    assert "0 ran" in tree.doit().stdout


def test_plan_hosts_dry_runs_converged_stages_and_names_drift(tree: Tree, tmp_path: Path) -> None:
    assert tree.doit().returncode == 0
    log = tmp_path / "calls.log"
    drift = json.dumps({"vm:sbx-worker-01": ["files.line /etc/environment NO_PROXY", "systemd.service ssh"]})
    plan = tree.doit("plan", "--hosts", FAKE_HOSTRUN_LOG=str(log), FAKE_HOSTRUN_DRIFT=drift)
    assert plan.returncode == 0, plan.stderr
    drift_lines = [ln for ln in plan.stdout.splitlines() if ": drift: " in ln]
    assert drift_lines == ["vm:sbx-worker-01: drift: sbx-worker-01: files.line /etc/environment NO_PROXY",
                           "vm:sbx-worker-01: drift: sbx-worker-01: systemd.service ssh"]
    assert "hosts: 1 host stage(s) drifted" in plan.stdout
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls and all(c["dry"] for c in calls)  # a plan never applies anything
    # without --hosts, plan contacts nothing
    log.unlink()
    assert tree.doit("plan", FAKE_HOSTRUN_LOG=str(log)).returncode == 0
    assert not log.exists()
