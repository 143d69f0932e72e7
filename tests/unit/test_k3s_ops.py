"""k3s day-2 operations against the FAKE Kubernetes API (tests/fakeapi) and a fake SSH runner.

The fake runner answers the commands the operations send to hosts the way k3s would: ``etcd-snapshot
save/ls``, the install script (it makes the fake API's Node report the installed kubelet version, or stay
NotReady when told to), ``k3s --version`` and the unit listing. Draining is the real ``kubectl drain``
against the fake API (PDB-aware evictions).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from homelab.inventory import Inventory
from homelab.ops import cluster, k3s_state, k3s_upgrade
from homelab.ops.cluster import AGENT_UNIT, SERVER_UNIT, Kube, Timeouts
from homelab.ops.remote import RemoteResult, SshRemote
from homelab.paths import Layout
from homelab.project import Project
from tests.fakeapi import FakeApiServer

pytestmark = pytest.mark.fakeapi

REPO = Path(__file__).resolve().parents[2]
OLD, NEW = "v1.31.4+k3s1", "v1.31.5+k3s1"
SERVER, W1, W2, GPU = "sbx-master", "sbx-worker-01", "sbx-worker-02", "sbx-gpu-worker"
HOSTS = [SERVER, W1, W2, GPU]
FAST = Timeouts(drain=3, ready=2, api=2, moved=5, install=30, poll=0.1)


def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, source: str = "script") -> Project:
    """The sandbox inventory with the lab's install method (script), in a throw-away build dir."""
    monkeypatch.delenv("HOMELAB_BUILD_DIR", raising=False)
    monkeypatch.delenv("HOMELAB_KUBECONFIG", raising=False)
    data = yaml.safe_load((REPO / "hosts" / "sandbox.yaml").read_text(encoding="utf-8"))
    data.pop("standins", None)
    if source == "script":
        data["k3s"]["install"] = {"source": "script", "script_url": "https://get.k3s.io"}
    root = tmp_path / "repo"
    root.mkdir()
    return Project(layout=Layout(root, "sandbox"), inventory=Inventory("sandbox", "hosts/sandbox.yaml", data))


class FakeHosts:
    """A fake ``Remote``: remembers every command and answers like k3s hosts would."""

    def __init__(self, api: FakeApiServer, project: Project, version: str = OLD) -> None:
        assert project.inventory is not None
        self.api = api
        self.roles = {h["name"]: cluster.role_of(h) for h in project.inventory.data["hosts"]}
        self.versions = dict.fromkeys(self.roles, version)
        self.units = {name: {cluster.unit_for(role): "active"} for name, role in self.roles.items()}
        self.calls: list[tuple[str, str]] = []
        self.installs: list[str] = []
        self.cordoned_at_install: list[list[str]] = []
        self.snapshots: dict[str, int] = {}
        self.never_ready: set[str] = set()
        self.unreachable: set[str] = set()
        self.server_unit_after_install: set[str] = set()
        self.snapshot_fails = ""
        self.reset_fails = ""
        self.files: set[str] = set()

    def commands(self, host: str | None = None) -> list[str]:
        return [c for h, c in self.calls if host is None or h == host]

    def _units(self, host: str) -> str:
        return "".join(f"unit {u} {state}\n" for u, state in sorted(self.units[host].items()))

    def run(self, host: str, command: str, *, timeout: float = 300) -> RemoteResult:
        self.calls.append((host, command))
        if host in self.unreachable:
            return RemoteResult(255, "", f"ssh: connect to host {host} port 22: No route to host")
        if "etcd-snapshot save" in command:
            if self.snapshot_fails:
                return RemoteResult(1, "", self.snapshot_fails)
            name = re.search(r"--name (\S+)", command)
            assert name, command
            full = f"{name.group(1)}-{host}-{int(time.time())}{len(self.snapshots)}"
            self.snapshots[full] = 4096
            self.files.add(f"/mnt/nfs/k3s-etcd-snapshots/{full}")
            return RemoteResult(0, "", f"INFO[0002] Snapshot {full} saved.\n")  # k3s logs on stderr
        if "etcd-snapshot ls" in command:
            rows = "".join(f"{n} file:///mnt/nfs/k3s-etcd-snapshots/{n} {s} 2026-01-01T00:00:00Z\n"
                           for n, s in self.snapshots.items())
            return RemoteResult(0, "Name Location Size Created\n" + rows)
        if command.startswith("stat -f"):
            return RemoteResult(0, "nfs\n")
        if command.startswith("stat -c %s"):
            path = command.split()[-1].strip("'")
            return RemoteResult(0, "4096\n") if path in self.files else RemoteResult(
                1, "", f"stat: cannot statx '{path}': No such file or directory")
        if command.startswith("ls -1t"):
            return RemoteResult(0, "".join(f"{n}\n" for n in self.snapshots))
        if "k3s-install.sh" in command or "install -m 0755" in command:
            return self._install(host, command)
        if "--version" in command:
            return RemoteResult(0, f"k3s version {self.versions[host]} (fake)\n" + self._units(host))
        if command.startswith("for u in"):
            return RemoteResult(0, self._units(host))
        if "--cluster-reset" in command:
            if self.reset_fails:
                return RemoteResult(1, "", self.reset_fails)
            for agent in (h for h, r in self.roles.items() if r == "agent"):
                self.api.set_node_ready(agent, False)  # agents lose the server until they rejoin
            return RemoteResult(0, "", "Managed etcd cluster membership has been reset, restart without "
                                       "--cluster-reset flag now.\n")
        if command == f"systemctl stop {SERVER_UNIT}":
            self.api.set_node_ready(host, False)
            return RemoteResult(0)
        if command == f"systemctl start {SERVER_UNIT}":
            self.api.set_node_ready(host, True)
            return RemoteResult(0)
        if command.endswith(f"systemctl restart {AGENT_UNIT}"):
            self.api.set_node_ready(host, True)
            return RemoteResult(0)
        if command.startswith("systemctl disable --now"):
            self.units[host].pop(SERVER_UNIT, None)
            return RemoteResult(0)
        raise AssertionError(f"unexpected command on {host}: {command}")

    def _install(self, host: str, command: str) -> RemoteResult:
        found = re.search(r"INSTALL_K3S_VERSION=(\S+)", command)
        version = found.group(1) if found else self.versions[host]
        self.installs.append(host)
        self.cordoned_at_install.append(
            sorted(n["metadata"]["name"] for n in self.api.store.objects("Node") if n["spec"].get("unschedulable")))
        self.versions[host] = version
        if host in self.server_unit_after_install:
            self.units[host][SERVER_UNIT] = "active"
        if host in self.never_ready:
            self.api.set_node_ready(host, False)
        self.api.set_kubelet_version(host, version)
        return RemoteResult(0, "[INFO]  Using v... as release\n")


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fake API with the four sandbox nodes at OLD, a Deployment spread over them, and the fake hosts."""
    with FakeApiServer() as api:
        api.add_node(SERVER, kubelet_version=OLD, roles=("control-plane", "master", "etcd"))
        for name in (W1, W2, GPU):
            api.add_node(name, kubelet_version=OLD)
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        project = make_project(tmp_path, monkeypatch)
        kube = Kube(kubeconfig)
        apply(kube, tmp_path, deployment("web", 8))
        hosts = FakeHosts(api, project)
        lines: list[str] = []
        yield SimpleNamespace(api=api, project=project, kube=kube, hosts=hosts, lines=lines, tmp=tmp_path,
                              kwargs={"remote": hosts, "kube": kube, "out": lines.append, "timeouts": FAST})
        assert not api.errors, api.errors


def deployment(name: str, replicas: int, namespace: str = "default") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: main, image: nginx}}]}}
"""


def pdb(name: str, min_available: int) -> str:
    return f"""
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: {name}, namespace: default}}
spec:
  minAvailable: {min_available}
  selector: {{matchLabels: {{app: {name}}}}}
"""


def apply(kube: Kube, tmp_path: Path, text: str) -> None:
    path = tmp_path / f"manifest-{time.monotonic_ns()}.yaml"
    path.write_text(text)
    kube.check("apply", "-f", str(path))


def node_versions(kube: Kube) -> dict[str, str]:
    return {n.name: n.version for n in kube.nodes()}


def cordoned(kube: Kube) -> list[str]:
    return [n.name for n in kube.nodes() if n.unschedulable]


def history(project: Project) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(k3s_upgrade.history_path(project).read_text())
    return data


# -- etcd snapshot -----------------------------------------------------------------------------------------

def test_snapshot_is_saved_into_the_nfs_dir_and_verified_as_listed(lab: Any) -> None:
    result = k3s_state.etcd_snapshot(lab.project, "manual", remote=lab.hosts, out=lab.lines.append)
    assert result.ok, result.message
    assert result.details["path"].startswith("/mnt/nfs/k3s-etcd-snapshots/manual-sbx-master-")
    assert result.details["size"] == 4096
    assert "4.0 KiB" in result.message and result.details["path"] in result.message
    saves = [c for c in lab.hosts.commands(SERVER) if "etcd-snapshot save" in c]
    assert saves == ["/usr/local/bin/k3s etcd-snapshot save --name manual --etcd-snapshot-dir "
                     "/mnt/nfs/k3s-etcd-snapshots"]
    assert any("etcd-snapshot ls" in c for c in lab.hosts.commands(SERVER))
    assert all(re.match(r"\[\s*\d+\.\ds\] ", line) for line in lab.lines), lab.lines  # every step timed


def test_snapshot_default_name_and_rerun_makes_a_new_one(lab: Any) -> None:
    first = k3s_state.etcd_snapshot(lab.project, remote=lab.hosts, out=lab.lines.append)
    second = k3s_state.etcd_snapshot(lab.project, remote=lab.hosts, out=lab.lines.append)
    assert first.ok and second.ok
    assert first.details["name"].startswith("homelab-") and first.details["name"] != second.details["name"]


def test_snapshot_failure_is_a_result_naming_the_server(lab: Any) -> None:
    lab.hosts.snapshot_fails = "k3s: etcd-snapshot needs the k3s server running on this node"
    result = k3s_state.etcd_snapshot(lab.project, "x", remote=lab.hosts, out=lab.lines.append)
    assert not result.ok
    assert "sbx-master" in result.message and "server running" in result.message


def test_snapshot_not_listed_is_a_failure(lab: Any) -> None:
    class Forgetful(FakeHosts):
        def run(self, host: str, command: str, *, timeout: float = 300) -> RemoteResult:
            result = super().run(host, command, timeout=timeout)
            if "etcd-snapshot save" in command:
                self.snapshots.clear()
            return result

    result = k3s_state.etcd_snapshot(lab.project, "x", remote=Forgetful(lab.api, lab.project), out=lab.lines.append)
    assert not result.ok and "does not list it" in result.message


def test_snapshot_name_is_checked_before_anything_runs(lab: Any) -> None:
    result = k3s_state.etcd_snapshot(lab.project, "x; rm -rf /", remote=lab.hosts, out=lab.lines.append)
    assert not result.ok and not lab.hosts.calls


# -- restore ------------------------------------------------------------------------------------------------

def test_restore_asks_first_and_changes_nothing_without_yes(lab: Any) -> None:
    snap = k3s_state.etcd_snapshot(lab.project, "before", remote=lab.hosts, out=lab.lines.append)
    lab.hosts.calls.clear()
    questions: list[str] = []
    result = k3s_state.cluster_restore(lab.project, snap.details["name"],
                                       confirm=lambda q: questions.append(q) or False, **lab.kwargs)
    assert not result.ok and "not confirmed" in result.message
    assert questions and "every change since that snapshot is lost" in questions[0].lower()
    assert not any("systemctl" in c for c in lab.hosts.commands())


def test_restore_resets_the_server_rejoins_agents_and_waits_for_ready(lab: Any) -> None:
    snap = k3s_state.etcd_snapshot(lab.project, "before", remote=lab.hosts, out=lab.lines.append)
    lab.hosts.calls.clear()
    result = k3s_state.cluster_restore(lab.project, snap.details["name"], force=True, **lab.kwargs)
    assert result.ok, result.message
    server_cmds = lab.hosts.commands(SERVER)
    path = snap.details["path"]
    assert server_cmds[1:4] == [f"systemctl stop {SERVER_UNIT}",
                                f"/usr/local/bin/k3s server --cluster-reset --cluster-reset-restore-path={path}",
                                f"systemctl start {SERVER_UNIT}"]
    for agent in (W1, W2, GPU):
        assert any(c.endswith(f"systemctl restart {AGENT_UNIT}") for c in lab.hosts.commands(agent))
        assert not any(SERVER_UNIT in c for c in lab.hosts.commands(agent))
    assert all(n.ready for n in lab.kube.nodes())
    assert "30-minute target" in result.message and result.details["within_target"]


def test_restore_of_a_missing_snapshot_names_what_exists(lab: Any) -> None:
    k3s_state.etcd_snapshot(lab.project, "real", remote=lab.hosts, out=lab.lines.append)
    result = k3s_state.cluster_restore(lab.project, "nope", force=True, **lab.kwargs)
    assert not result.ok and "not found" in result.message and "real-sbx-master" in result.message
    assert not any("systemctl" in c for c in lab.hosts.commands())


def test_failed_reset_starts_k3s_again(lab: Any) -> None:
    snap = k3s_state.etcd_snapshot(lab.project, "before", remote=lab.hosts, out=lab.lines.append)
    lab.hosts.reset_fails = "etcd: restore failed: snapshot checksum mismatch"
    result = k3s_state.cluster_restore(lab.project, snap.details["path"], force=True, **lab.kwargs)
    assert not result.ok and "checksum mismatch" in result.message and "started again" in result.message
    assert lab.hosts.commands(SERVER)[-1] == f"systemctl start {SERVER_UNIT}"


def test_restore_agent_down_is_named(lab: Any) -> None:
    snap = k3s_state.etcd_snapshot(lab.project, "before", remote=lab.hosts, out=lab.lines.append)
    lab.hosts.unreachable.add(W2)
    result = k3s_state.cluster_restore(lab.project, snap.details["name"], force=True, **lab.kwargs)
    assert not result.ok and W2 in result.message and "No route to host" in result.message


# -- upgrade ------------------------------------------------------------------------------------------------

def test_upgrade_rolls_server_first_then_agents_one_at_a_time(lab: Any) -> None:
    result = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert result.ok, result.message + "\n" + "\n".join(lab.lines)
    assert lab.hosts.installs == [SERVER, W1, W2, GPU]
    # exactly the node being upgraded was cordoned while its install ran
    assert lab.hosts.cordoned_at_install == [[SERVER], [W1], [W2], [GPU]]
    assert node_versions(lab.kube) == dict.fromkeys(HOSTS, NEW)
    assert cordoned(lab.kube) == []
    assert not any(cluster.CORDONED_BY in n.annotations for n in lab.kube.nodes())
    # the snapshot came before the first install
    order = [c for _, c in lab.hosts.calls]
    first_save = next(i for i, c in enumerate(order) if "etcd-snapshot save" in c)
    first_install = next(i for i, c in enumerate(order) if "k3s-install.sh" in c)
    assert first_save < first_install
    assert lab.api.count("POST", r"/eviction$") > 0  # pods were drained through the eviction API
    pods = lab.kube.pods("default")
    assert len(pods) == 8 and all(p.phase == "Running" for p in pods)
    # history: one run, every node with before/after
    runs = history(lab.project)["runs"]
    assert len(runs) == 1 and runs[0]["result"] == "ok" and runs[0]["operation"] == "upgrade"
    assert [(n["node"], n["before"], n["after"], n["result"]) for n in runs[0]["nodes"]] == [
        (h, OLD, NEW, "ok") for h in HOSTS]
    assert runs[0]["snapshot"].startswith("pre-upgrade-v1.31.5-k3s1-sbx-master-")
    text = "\n".join(lab.lines)
    assert "5-minute target" in text and "drained" in text
    # NEW is not the inventory's pin: the result says the next converge would reinstall the pin
    assert "pins k3s.version v1.31.4+k3s1" in result.message


def test_install_commands_match_the_role(lab: Any) -> None:
    assert k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs).ok
    server_install = next(c for c in lab.hosts.commands(SERVER) if "k3s-install.sh" in c)
    assert "INSTALL_K3S_EXEC=server" in server_install and "K3S_URL" not in server_install
    assert server_install.endswith(f"systemctl restart {SERVER_UNIT}")
    for agent in (W1, W2, GPU):
        command = next(c for c in lab.hosts.commands(agent) if "k3s-install.sh" in c)
        assert "INSTALL_K3S_EXEC=agent" in command
        assert "K3S_URL=https://100.64.77.10:6443" in command  # the server's tailnet address
        assert "K3S_TOKEN_FILE=/etc/rancher/k3s/token" in command and "K3S_TOKEN=" not in command
        assert f"INSTALL_K3S_VERSION={NEW}" in command.replace("'", "")
        assert command.endswith(f"systemctl restart {AGENT_UNIT}")
        assert not re.search(r"(?<![-\w])k3s\.service", command)


def test_role_guard_refuses_a_server_install_on_an_agent(lab: Any) -> None:
    inventory = lab.project.inventory.data
    server = next(h for h in inventory["hosts"] if h["name"] == SERVER)
    agent = next(h for h in inventory["hosts"] if h["name"] == W1)
    server_cmd = k3s_upgrade.install_command(inventory, server, NEW, "https://x:6443")
    agent_cmd = k3s_upgrade.install_command(inventory, agent, NEW, "https://x:6443")
    assert k3s_upgrade.role_guard("server", server_cmd) is None
    assert k3s_upgrade.role_guard("agent", agent_cmd) is None
    assert k3s_upgrade.role_guard("agent", server_cmd) is not None
    assert k3s_upgrade.role_guard("server", agent_cmd) is not None
    without_url = agent_cmd.replace("K3S_URL=", "K3S_NOPE=")
    assert "install a server" in (k3s_upgrade.role_guard("agent", without_url) or "")


def test_binary_source_installs_the_binary_and_restarts_the_unit(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path, monkeypatch, source="binary")
    assert project.inventory is not None
    agent = next(h for h in project.inventory.data["hosts"] if h["name"] == W1)
    command = k3s_upgrade.install_command(project.inventory.data, agent, OLD, "https://x:6443")
    assert command.splitlines() == ["set -e", "install -m 0755 /opt/homelab/k3s-standin /usr/local/bin/k3s",
                                    f"systemctl restart {AGENT_UNIT}"]


def test_rerun_after_success_changes_nothing(lab: Any) -> None:
    assert k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs).ok
    lab.hosts.calls.clear()
    again = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert again.ok and "already at" in again.message
    assert lab.hosts.calls == []  # no snapshot, no install
    assert len(history(lab.project)["runs"]) == 1


def test_preflight_refuses_a_not_ready_node(lab: Any) -> None:
    lab.api.set_node_ready(W2, False)
    result = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert not result.ok and "not Ready: sbx-worker-02" in result.message and "nothing was changed" in result.message
    assert lab.hosts.calls == [] and cordoned(lab.kube) == []


def test_preflight_refuses_crash_looping_kube_system_pods(lab: Any) -> None:
    lab.api.crash("Deployment", "coredns", "kube-system")
    apply(lab.kube, lab.tmp, deployment("coredns", 1, "kube-system"))
    ok, _, _ = cluster.wait_for(lambda: (bool(lab.kube.pods("kube-system")), ""), 5, 0.1)
    assert ok
    result = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert not result.ok and "CrashLoopBackOff" in result.message and "kube-system/coredns" in result.message
    assert lab.hosts.calls == []


def test_drain_blocked_by_a_pdb_stops_with_the_cluster_schedulable_and_rerun_resumes(lab: Any) -> None:
    apply(lab.kube, lab.tmp, pdb("web", 8))
    result = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert not result.ok
    assert "stopped at sbx-master" in result.message and "PodDisruptionBudget" in result.message
    assert "default/web-" in result.message and "Cluster left schedulable" in result.message
    assert lab.hosts.installs == []
    assert cordoned(lab.kube) == []
    run = history(lab.project)["runs"][-1]
    assert run["result"] == "failed" and run["nodes"][0]["node"] == SERVER and run["nodes"][0]["result"] == "failed"
    # the operator relaxes the budget; the same command finishes the job
    lab.kube.check("delete", "poddisruptionbudget", "web")
    again = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert again.ok, again.message
    assert node_versions(lab.kube) == dict.fromkeys(HOSTS, NEW) and cordoned(lab.kube) == []


def test_node_never_ready_stops_there_and_rerun_finishes(lab: Any) -> None:
    lab.hosts.never_ready.add(W1)
    result = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert not result.ok
    assert "sbx-worker-01 did not become Ready" in result.message
    assert "not yet done: sbx-worker-02, sbx-gpu-worker" in result.message
    assert lab.hosts.installs == [SERVER, W1]  # stopped at the first failure
    assert cordoned(lab.kube) == []  # left schedulable
    versions = node_versions(lab.kube)
    assert versions[SERVER] == NEW and versions[W2] == OLD and versions[GPU] == OLD
    nodes = history(lab.project)["runs"][-1]["nodes"]
    assert [(n["node"], n["result"]) for n in nodes] == [(SERVER, "ok"), (W1, "failed")]
    # the operator fixes the node; re-running resumes with the two agents that are left
    lab.api.set_node_ready(W1, True)
    lab.hosts.never_ready.clear()
    again = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert again.ok, again.message
    assert lab.hosts.installs == [SERVER, W1, W2, GPU]
    assert node_versions(lab.kube) == dict.fromkeys(HOSTS, NEW)


def test_an_agent_with_a_server_unit_is_not_touched(lab: Any) -> None:
    lab.hosts.units[W2][SERVER_UNIT] = "active"
    result = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert not result.ok and "sbx-worker-02 has k3s.service" in result.message
    assert W2 not in lab.hosts.installs and cordoned(lab.kube) == []


def test_a_server_unit_appearing_on_an_agent_is_stopped(lab: Any) -> None:
    lab.hosts.server_unit_after_install.add(W1)
    result = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert not result.ok and "k3s.service appeared on agent sbx-worker-01" in result.message
    assert f"systemctl disable --now {SERVER_UNIT}" in lab.hosts.commands(W1)
    assert SERVER_UNIT not in lab.hosts.units[W1]


def test_an_interrupted_run_leaves_no_stray_cordon(lab: Any) -> None:
    # a previous run was killed between cordon and uncordon of W2, after W2 was upgraded
    lab.kube.cordon(W2, "k3s_upgrade")
    lab.api.set_kubelet_version(W2, NEW)
    lab.hosts.versions[W2] = NEW
    # and the operator cordoned the GPU worker on purpose
    lab.kube.check("cordon", GPU)
    result = k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs)
    assert result.ok, result.message
    assert W2 not in lab.hosts.installs
    assert cordoned(lab.kube) == [GPU]  # ours given back, the operator's kept


def test_bad_version_is_refused(lab: Any) -> None:
    result = k3s_upgrade.k3s_upgrade(lab.project, "1.31", **lab.kwargs)
    assert not result.ok and "not a k3s version" in result.message and lab.hosts.calls == []


def test_no_kubeconfig_is_a_clear_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path, monkeypatch)
    result = k3s_upgrade.k3s_upgrade(project, NEW, remote=SshRemote({}, ssh_config=None, root=tmp_path),
                                     out=lambda _: None)
    assert not result.ok and "no kubeconfig at build/sandbox/kubeconfig" in result.message


# -- rollback -----------------------------------------------------------------------------------------------

def test_rollback_reinstalls_the_previous_version_agents_first(lab: Any) -> None:
    assert k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs).ok
    lab.hosts.installs.clear()
    result = k3s_upgrade.k3s_rollback(lab.project, **lab.kwargs)
    assert result.ok, result.message
    # going down, no kubelet may be newer than the API server: agents first
    assert lab.hosts.installs == [W1, W2, GPU, SERVER]
    assert node_versions(lab.kube) == dict.fromkeys(HOSTS, OLD)
    runs = history(lab.project)["runs"]
    assert [r["operation"] for r in runs] == ["upgrade", "rollback"]
    assert all((n["before"], n["after"]) == (NEW, OLD) for n in runs[1]["nodes"])
    assert runs[1]["snapshot"].startswith("pre-rollback-")
    # re-running the rollback is a no-op
    lab.hosts.installs.clear()
    again = k3s_upgrade.k3s_rollback(lab.project, **lab.kwargs)
    assert again.ok and "already at" in again.message and lab.hosts.installs == []


def test_rollback_without_history_refuses(lab: Any) -> None:
    result = k3s_upgrade.k3s_rollback(lab.project, **lab.kwargs)
    assert not result.ok and "no recorded upgrade" in result.message and lab.hosts.calls == []


def test_minor_downgrade_is_refused_with_the_snapshot_to_restore(lab: Any) -> None:
    newer = "v1.32.1+k3s1"
    assert k3s_upgrade.k3s_upgrade(lab.project, newer, **lab.kwargs).ok
    snapshot = history(lab.project)["runs"][-1]["snapshot"]
    lab.hosts.installs.clear()
    result = k3s_upgrade.k3s_rollback(lab.project, **lab.kwargs)
    assert not result.ok and "minor version" in result.message
    assert f"doit cluster_restore snapshot={snapshot}" in result.message
    assert lab.hosts.installs == []


def test_history_is_kept_when_unreadable(lab: Any) -> None:
    path = k3s_upgrade.history_path(lab.project)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert k3s_upgrade.k3s_upgrade(lab.project, NEW, **lab.kwargs).ok
    assert [p.name for p in path.parent.iterdir() if p.name.startswith("k3s-history.json.unreadable-")]
    assert history(lab.project)["runs"][0]["result"] == "ok"


def test_version_order() -> None:
    keys = [k3s_upgrade.version_key(v) for v in ("v1.31.4+k3s1", "v1.31.4+k3s2", "v1.31.5-rc1+k3s1",
                                                  "v1.31.5+k3s1", "v1.32.0+k3s1")]
    assert keys == sorted(keys)


def test_previous_version_skips_noop_and_rollback_runs() -> None:
    hist = {"runs": [
        {"operation": "upgrade", "target": NEW, "nodes": [
            {"node": SERVER, "role": "server", "before": OLD, "after": NEW, "result": "ok"}]},
        {"operation": "rollback", "target": OLD, "nodes": [
            {"node": SERVER, "role": "server", "before": NEW, "after": OLD, "result": "ok"}]},
    ]}
    version, run = k3s_upgrade.previous_version(hist)
    assert version == OLD and run is not None and run["target"] == NEW


# -- the SSH runner (command lines only: nothing is contacted) ---------------------------------------------

def test_ssh_argv_for_the_lab_uses_sudo_and_the_inventory_key(tmp_path: Path) -> None:
    inventory = yaml.safe_load((REPO / "hosts" / "lab.yaml").read_text(encoding="utf-8"))
    remote = SshRemote(inventory, ssh_config=None, root=tmp_path)
    argv = remote.argv("k3s-worker-01", "systemctl restart k3s-agent.service")
    assert argv[0] == "ssh" and "BatchMode=yes" in argv
    assert argv[argv.index("-i") + 1] == str(Path("~/.ssh/id_ed25519").expanduser())
    assert argv[-3:] == ["tom@192.168.2.21", "--", "sudo -n sh -c 'systemctl restart k3s-agent.service'"]


def test_ssh_argv_for_the_sandbox_uses_its_config_by_host_name(tmp_path: Path) -> None:
    inventory = yaml.safe_load((REPO / "hosts" / "sandbox.yaml").read_text(encoding="utf-8"))
    config = tmp_path / "ssh" / "config"
    argv = SshRemote(inventory, ssh_config=config, root=tmp_path).argv(SERVER, "k3s --version")
    assert argv[-5:] == ["-F", str(config), SERVER, "--", "sh -c 'k3s --version'"]


def test_ssh_runner_unknown_host_is_a_result_not_an_exception(tmp_path: Path) -> None:
    inventory = yaml.safe_load((REPO / "hosts" / "sandbox.yaml").read_text(encoding="utf-8"))
    result = SshRemote(inventory, ssh_config=None, root=tmp_path).run("nope", "true")
    assert not result.ok and "nope is not a host" in result.last_line()
