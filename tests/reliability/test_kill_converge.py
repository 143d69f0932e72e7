"""SIGKILL in the middle of a converge, then run again: what is on disk is always whole and true.

(a) The FAKE host runner with slow tasks, killed at seeded random moments (the whole process group): after
every kill each stamp parses, no stamp claims a host task whose run call did not return, every stamped
task's upstream is stamped with the result it consumed, temp files are only ``.part`` files that are never
read as stamps, the doit DB is intact; then a final run converges and the next one is a no-op.

(b) The real host layer over SSH on the sandbox (root only): a converge killed mid-run, run again, then a
run that reruns every stage reports 0 changed operations and the managed files on the hosts are whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab import paths, stamps
from homelab.inputs import upstream_digest
from homelab.project import Project
from homelab.sandbox.testing import RunningSandbox
from homelab.secrets import Secrets
from tests.helpers import Tree, make_tree
from tests.reliability.support import read_json_lines

SEED = int(os.environ.get("HOMELAB_KILL_SEED", "20250611"))
KILLS = int(os.environ.get("HOMELAB_KILLS", "5"))
SLOW = {"vm:sbx-master": 0.5, "tailscale:sbx-worker-01": 0.5, "k3s:sbx-master": 0.8, "nfs:sbx-worker-02": 0.5,
        "gpu:sbx-gpu-worker": 0.5, "gaming:sbx-gpu-worker": 0.4}
PART = re.compile(r"^\..+\.json\.[^.]+\.part$")


def _popen(tree: Tree, log_dir: Path, run: int, **extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    out = log_dir / f"run-{run}.out"
    env = tree.env(HOMELAB_HOST_RUNNER="tests.reliability.recording_hostrun", PYTHONUNBUFFERED="1", **extra)
    with out.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "doit"], cwd=tree.root, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out


def _tasks(log: Path) -> list[str]:
    return [str(entry["task"]) for entry in read_json_lines(log)]


def _stamp_state(tree: Tree, graph_nodes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every stamp, checked to be whole; temp files checked to be ``.part`` files no task reads."""
    stamp_dir = tree.build / "stamps"
    found: dict[str, dict[str, Any]] = {}
    if not stamp_dir.exists():
        return found
    readable = {stamps.stamp_path(stamp_dir, name).name: name for name in graph_nodes}
    for path in sorted(stamp_dir.iterdir()):
        if PART.match(path.name):
            assert path.name not in readable  # an interrupted write is never taken for a stamp
            continue
        assert path.suffix == ".json", f"unexpected file in the stamp directory: {path.name}"
        data = json.loads(path.read_text())  # raises on a half-written stamp
        task = str(data["task"])
        assert data["version"] == stamps.STAMP_VERSION and stamps.stamp_path(stamp_dir, task) == path, path.name
        assert re.fullmatch(r"[0-9a-f]{64}", data["input_digest"]) and re.fullmatch(r"[0-9a-f]{64}",
                                                                                    data["result_digest"])
        assert stamps._read_file(path) == data  # the engine reads exactly this
        if task in graph_nodes:  # (steps outside the graph, e.g. post-deploy work, stamp too)
            found[task] = data
    return found


def _assert_consistent(found: dict[str, dict[str, Any]], project: Project) -> None:
    """Every stamped task's upstream is stamped, and with what the task consumed of it (the engine's own
    upstream_digest over the stamps on disk now)."""
    stamps._READ.clear()  # this process read stamps before the last run changed them
    for task, data in found.items():
        for dep in project.graph.nodes[task].deps:
            assert dep in found, f"{task} is stamped but its upstream {dep} is not"
            assert data["inputs"]["upstream"][dep] == upstream_digest(project, dep), f"{task} vs {dep}"


def _assert_build_whole(tree: Tree) -> None:
    cache = tree.build / "cache" / "project.json"
    if cache.exists():
        assert isinstance(json.loads(cache.read_text()), dict)
    db = tree.root / "build" / "doit.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    manifests = tree.build / "manifests"
    if manifests.exists():
        for release_dir in manifests.iterdir():
            if release_dir.name.startswith("."):
                continue  # an interrupted rendering; removed by the next one
            for path in release_dir.iterdir():
                assert isinstance(yaml.safe_load(path.read_text()), dict), path


def test_sigkill_at_random_moments_then_converge(tree: Tree, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok
    nodes = project.graph.nodes
    host_tasks = {n for n, node in nodes.items() if node.kind == "host"}
    started, returned = tmp_path / "started.jsonl", tmp_path / "returned.jsonl"
    env = {"FAKE_HOSTRUN_LOG": str(started), "RECORDING_HOSTRUN_RETURNED": str(returned),
           "FAKE_HOSTRUN_SLEEP": ",".join(f"{k}={v}" for k, v in SLOW.items())}
    killed_mid_task = 0
    previous: dict[str, dict[str, Any]] = {}
    for run in range(KILLS):
        returned_before = len(_tasks(returned))
        moment = rng.uniform(0.3, 3.0)
        proc, out = _popen(tree, tmp_path, run, **env)
        deadline = time.monotonic() + moment
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        context = f"seed {SEED}, run {run}, kill at {moment:.2f}s:\n{out.read_text()[-2000:]}"
        assert "Traceback" not in out.read_text(), context
        found = _stamp_state(tree, nodes)
        all_returned = set(_tasks(returned))
        this_run = set(_tasks(returned)[returned_before:])
        claimed = {t for t in found if t in host_tasks}
        assert claimed <= all_returned, f"stamps of host tasks that never returned: {claimed - all_returned}; {context}"
        new = {t for t in claimed if t not in previous or found[t] != previous[t]}
        assert new <= this_run, f"stamped in this run without returning in it: {new - this_run}; {context}"
        assert {t: previous[t] for t in previous} == {t: found[t] for t in previous}, \
            f"a killed run changed or removed an existing stamp; {context}"
        _assert_consistent(found, project)
        _assert_build_whole(tree)
        killed_mid_task += len(set(_tasks(started)) - all_returned)
        previous = found
        plan = tree.doit("plan")
        assert plan.returncode == 0 and "Traceback" not in plan.stdout + plan.stderr, plan.stdout + plan.stderr
    assert killed_mid_task > 0, f"seed {SEED}: no kill landed inside a host task; the test proved nothing"

    unstamped = host_tasks - set(previous)
    started.unlink(missing_ok=True)
    final = tree.doit(FAKE_HOSTRUN_LOG=str(started))
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-2000:]
    assert "Traceback" not in final.stdout + final.stderr
    assert sorted(_tasks(started)) == sorted(unstamped)  # exactly the unfinished work ran, nothing twice
    found = _stamp_state(tree, nodes)
    assert set(found) == set(nodes)
    _assert_consistent(found, project)
    started.unlink(missing_ok=True)
    noop = tree.doit(FAKE_HOSTRUN_LOG=str(started))
    assert noop.returncode == 0 and "0 ran" in noop.stdout, noop.stdout
    assert not started.exists()


# -- (b) the real host layer over SSH on the sandbox ------------------------------------------------------------

HOST_STAGES = ("vm", "tailscale", "k3s", "nfs")
CHANGES = re.compile(r"^  (?P<host>\S+): (?P<stage>\S+) converged, (?P<n>\d+) change\(s\)", re.M)


def _ran(stdout: str) -> list[str]:
    return [line[2:].strip() for line in stdout.splitlines() if line.startswith("> ")]


def _sandbox_tree(sandbox: RunningSandbox, tmp_path: Path) -> Tree:
    """A tree whose inventory holds only the session sandbox's hosts, reached with its ssh config; the real
    runner (homelab.hostrun) named explicitly, so the engine never brings hosts up or down itself."""
    tree = make_tree(tmp_path)
    names = {h.name for h in sandbox.hosts}
    inventory = yaml.safe_load((tree.root / "hosts" / "sandbox.yaml").read_text())
    inventory["hosts"] = [h for h in inventory["hosts"] if h["name"] in names]
    (tree.root / "hosts" / "sandbox.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    shutil.rmtree(tree.root / "releases" / "inference")  # plans a GPU the two hosts do not have
    ssh = tree.build / "ssh"
    ssh.mkdir(parents=True)
    shutil.copy(sandbox.ssh_config, ssh / "config")
    return tree


def _sha256_on(sandbox: RunningSandbox, host: str, path: str) -> str:
    return sandbox.ssh(host, f"sha256sum < {path}").stdout.split()[0]


def _assert_hosts_whole(sandbox: RunningSandbox, tree: Tree) -> None:
    """The managed files on every host hold exactly what the inventory and the secrets say, and no write
    was left behind half-done (mktemp leftovers next to them)."""
    from homelab.hostops import hostdata

    lay = paths.layout("sandbox", tree.root)
    store = Secrets(lay)
    inventory = yaml.safe_load(lay.inventory.read_text())
    for entry in inventory["hosts"]:
        host = entry["name"]
        for path, secret in ((hostdata.K3S_TOKEN_FILE, "k3s.token"),
                             (hostdata.TAILSCALE_AUTHKEY_FILE, "tailscale.auth_key")):
            wanted = hashlib.sha256((store.value(secret) + "\n").encode()).hexdigest()
            assert _sha256_on(sandbox, host, path) == wanted, f"{host}: {path} does not hold {secret}"
        config = yaml.safe_load(sandbox.ssh(host, f"cat {hostdata.K3S_CONFIG}").stdout)
        assert config["token-file"] == hostdata.K3S_TOKEN_FILE and config["flannel-iface"] == "tailscale0"
        assert config["node-external-ip"] == entry["tailscale_ip"]
        environment = sandbox.ssh(host, "cat /etc/environment").stdout.splitlines()
        assert f"NO_PROXY={hostdata.no_proxy(inventory)}" in environment
        managed = [hostdata.K3S_TOKEN_FILE, hostdata.TAILSCALE_AUTHKEY_FILE, hostdata.K3S_CONFIG, "/etc/environment"]
        leftovers = sandbox.ssh(host, " ".join(f"ls -d {p}.?????? 2>/dev/null;" for p in managed) + " true").stdout
        assert leftovers.split() == [], f"{host}: half-done writes left behind: {leftovers.split()}"


@pytest.mark.sandbox
def test_sigkill_of_a_real_host_converge(sandbox: RunningSandbox, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(SEED)
    tree = _sandbox_tree(sandbox, tmp_path)
    for key, value in tree.env().items():
        if key.startswith("HOMELAB_"):
            monkeypatch.setenv(key, value)  # this process reads the tree's identity and secrets, too
    monkeypatch.delenv("HOMELAB_BUILD_DIR", raising=False)
    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok, [p.line() for p in project.problems]
    real = {"HOMELAB_HOST_RUNNER": "homelab.hostrun", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "killed.out"
    with out.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "doit", *HOST_STAGES], cwd=tree.root, env=tree.env(**real),
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while out.read_text().count("  ok ") < 2:  # some tasks done: the kill lands in the middle of the run
            assert proc.poll() is None, f"the converge ended before it could be killed:\n{out.read_text()[-3000:]}"
            assert time.monotonic() < deadline, out.read_text()[-3000:]
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # doit and every process it started
        proc.wait()
    killed = out.read_text()
    assert proc.returncode == -signal.SIGKILL, f"the converge finished before the kill:\n{killed[-3000:]}"
    found = _stamp_state(tree, project.graph.nodes)
    _assert_consistent(found, project)
    host_tasks = {n for n, node in project.graph.nodes.items() if node.kind == "host"}
    assert found and set(found) < host_tasks, f"not killed mid-run: {sorted(found)}"
    print(f"killed after {sorted(found)}")

    rerun = tree.doit(*HOST_STAGES, **real)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-2000:]
    assert sorted(_ran(rerun.stdout)) == sorted(host_tasks - set(found))  # exactly the unfinished work
    assert set(_stamp_state(tree, project.graph.nodes)) >= host_tasks
    # every stage again, for real: nothing is left to change on the hosts
    again = tree.doit("--always-execute", *HOST_STAGES, **real)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    changes = {f"{m['stage']}:{m['host']}": int(m["n"]) for m in CHANGES.finditer(again.stdout)}
    assert set(changes) == host_tasks, again.stdout[-3000:]
    assert changes == dict.fromkeys(host_tasks, 0), f"operations changed on a second run: {changes}"
    assert "0 ran" in tree.doit(*HOST_STAGES, **real).stdout
    _assert_hosts_whole(sandbox, tree)
