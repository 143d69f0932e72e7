"""Rolling k3s upgrades and rollbacks with a recorded history (FR44, FR48, NFR2, NFR20; Stories 8.1, 8.5).

``k3s_upgrade``: pre-flight health check (every node Ready, nothing CrashLooping in kube-system), an etcd
snapshot, then one node at a time - the server first, then the agents - cordon, ``kubectl drain`` (PDB-aware),
install the target version on the host over SSH, wait until the node is Ready reporting that kubelet
version, uncordon. The first failure stops the run with the cluster left schedulable: the node being worked
on is uncordoned again (unless someone else had cordoned it before), and the message names the node and
what went wrong. Nodes already at the target are skipped, so re-running after a failure resumes where the
previous run stopped.

``k3s_rollback``: the same rolling procedure back to the version the last recorded upgrade started from.
Going down, the order flips (agents first, the server last) because a kubelet must never be newer than its
API server (Kubernetes version skew policy). A rollback across a minor version is refused: Kubernetes does
not support downgrading the control plane's storage; that case is a restore of the pre-upgrade snapshot.

Every run is recorded in ``build/<env>/state/k3s-history.json`` (atomic writes, one per node step, so a run
that is killed half-way still shows what it did).

Agents never get a server unit: the install command for an agent sets ``INSTALL_K3S_EXEC=agent`` and
``K3S_URL`` (the install script would otherwise write ``k3s.service`` and start a second, empty cluster on
the agent), the command is checked against the role before it runs, and the host's units are checked
before and after.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homelab import stamps
from homelab.atomic import write_json_atomic
from homelab.hostops.hostdata import K3S_TOKEN_FILE
from homelab.ops import cluster
from homelab.ops.cluster import (
    AGENT_UNIT,
    K3S_BIN,
    SERVER_UNIT,
    Kube,
    KubeError,
    Node,
    Printer,
    Steps,
    Timeouts,
    drain_reason,
    duration,
)
from homelab.ops.k3s_state import take_snapshot
from homelab.ops.remote import Remote, quote, remote_for
from homelab.ops.result import OpResult
from homelab.project import Project

HISTORY_FILE = "k3s-history.json"
HISTORY_VERSION = 1
API_TARGET_SECONDS = 5 * 60  # NFR2: the control plane is back within 5 minutes of a restart
VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-rc(\d+))?\+k3s(\d+)$")
OPERATIONS = ("k3s_upgrade", "k3s_rollback")  # the values of our cordon annotation
_INSTALL_DIR = "/var/lib/homelab"
# Lists the k3s units a host has, one "unit NAME STATE" line each (STATE: active, inactive, failed...).
_UNITS = (
    f"for u in {SERVER_UNIT} {AGENT_UNIT}; do "
    'if [ -e "/etc/systemd/system/$u" ] || [ -e "/lib/systemd/system/$u" ]; then '
    'echo "unit $u $(systemctl is-active "$u" 2>/dev/null)"; fi; done'
)
_VERSION_LINE = re.compile(r"k3s version (\S+)")


# -- versions and history -----------------------------------------------------------------------------------

def version_key(version: str) -> tuple[int, int, int, int, int, int]:
    """Sortable form of ``v1.31.4+k3s1`` (a release candidate sorts before its release)."""
    m = VERSION.match(version)
    if not m:
        raise ValueError(f"{version!r} is not a k3s version like v1.31.4+k3s1")
    major, minor, patch, rc, k3s = m.groups()
    return int(major), int(minor), int(patch), 0 if rc else 1, int(rc or 0), int(k3s)


def history_path(project: Project) -> Path:
    return cluster.state_dir(project) / HISTORY_FILE


def load_history(project: Project) -> dict[str, Any]:
    """The recorded runs; an unreadable file is kept aside (never silently overwritten) and a new one begun."""
    import json

    path = history_path(project)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": HISTORY_VERSION, "runs": []}
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        path.replace(aside)
        return {"version": HISTORY_VERSION, "runs": [], "note": f"previous history kept as {aside.name}"}
    return data


def save_history(project: Project, history: Mapping[str, Any]) -> None:
    write_json_atomic(history_path(project), dict(history))


def previous_version(history: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The version the most recent upgrade that changed a node started from, and that run."""
    for run in reversed(history.get("runs") or []):
        if run.get("operation") != "upgrade":
            continue
        changed = [n for n in run.get("nodes") or [] if n.get("result") == "ok" and n.get("before") != n.get("after")]
        if not changed:
            continue
        server = next((n["before"] for n in changed if n.get("role") == "server"), None)
        return server or Counter(n["before"] for n in changed).most_common(1)[0][0], run
    return None, None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- commands run on the hosts --------------------------------------------------------------------------------

def server_url(project: Project) -> str:
    """The server's API URL as agents join it: its Tailscale IP (recorded by the tailscale stage), else LAN."""
    server = cluster.server_entry(project)
    stamp = stamps.read(project.layout.stamps, f"tailscale:{server['name']}") or {}
    ip = ((stamp.get("result") or {}).get("facts") or {}).get("tailscale_ip") or server.get("tailscale_ip")
    port = cluster.inventory_data(project)["k3s"]["api_port"]
    return f"https://{ip or server['address']}:{port}"


def install_command(inventory: Mapping[str, Any], entry: Mapping[str, Any], version: str, url: str) -> str:
    """The shell script that puts k3s ``version`` on one host and restarts its (role's) unit."""
    role = cluster.role_of(entry)
    unit = cluster.unit_for(role)
    k3s = inventory["k3s"]
    install = k3s["install"]
    lines = ["set -e"]
    if install["source"] == "script":
        env = [f"INSTALL_K3S_VERSION={quote(version)}", f"INSTALL_K3S_EXEC={role}", "INSTALL_K3S_SKIP_START=true"]
        if role == "agent":
            # K3S_URL makes the script set up an agent; the token is read from the file on the host and never
            # travels. Without both, the script would install a *server* on the agent.
            env += [f"K3S_URL={quote(url)}", f"K3S_TOKEN_FILE={K3S_TOKEN_FILE}"]
        script = f"{_INSTALL_DIR}/k3s-install.sh"
        keep = f"{_INSTALL_DIR}/{unit}.homelab"
        lines += [
            f"mkdir -p {_INSTALL_DIR}",
            f"curl -sfL -o {script} {quote(str(install['script_url']))}",
            # The k3s stage owns the unit file (no token in it, settings in config.yaml); the script writes
            # its own. Keep ours across the install so the next converge finds nothing to change.
            f"if [ -f /etc/systemd/system/{unit} ]; then cp -p /etc/systemd/system/{unit} {keep}; fi",
            f"env {' '.join(env)} sh {script}",
            f"if [ -f {keep} ]; then mv -f {keep} /etc/systemd/system/{unit}; fi",
            "systemctl daemon-reload",
        ]
    elif install["source"] == "binary":
        lines.append(f"install -m 0755 {quote(str(install['binary_path']))} {K3S_BIN}")
    else:
        raise ValueError(f"unknown k3s.install.source {install['source']!r}")
    if install.get("sha256") and version == k3s.get("version"):
        lines.append(f"echo {quote(str(install['sha256']) + '  ' + K3S_BIN)} | sha256sum -c --quiet -")
    lines.append(f"systemctl restart {unit}")
    return "\n".join(lines)


def role_guard(role: str, command: str) -> str | None:
    """Why ``command`` must not run on a host of ``role`` (None when it may): the unit has to match the role."""
    unit = cluster.unit_for(role)
    if f"systemctl restart {unit}" not in command:
        return f"the install command does not restart {unit}"
    if role == "agent":
        if re.search(r"(?<![-\w])k3s\.service", command):
            return f"the install command for an agent mentions {SERVER_UNIT}"
        if "k3s-install.sh" in command and ("INSTALL_K3S_EXEC=agent" not in command or "K3S_URL=" not in command):
            return ("the install command for an agent lacks INSTALL_K3S_EXEC=agent and K3S_URL "
                    "(it would install a server)")
    elif AGENT_UNIT in command:
        return f"the install command for the server mentions {AGENT_UNIT}"
    return None


def parse_units(text: str) -> dict[str, str]:
    units = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "unit":
            units[parts[1]] = parts[2] if len(parts) > 2 else "unknown"
    return units


def unit_problem(role: str, units: Mapping[str, str]) -> str | None:
    """What is wrong with a host's k3s units for its role, or None."""
    expected = cluster.unit_for(role)
    if role == "agent" and SERVER_UNIT in units:
        return (f"has {SERVER_UNIT} ({units[SERVER_UNIT]}) although it is an agent: a k3s server must never run "
                f"on an agent")
    if role == "server" and AGENT_UNIT in units:
        return f"has {AGENT_UNIT} although it is the server"
    if expected not in units:
        return f"has no {expected}: converge the k3s stage on it first (`doit k3s`)"
    return None


# -- the rolling procedure -------------------------------------------------------------------------------------

@dataclass
class _Run:
    project: Project
    kube: Kube
    remote: Remote
    steps: Steps
    limits: Timeouts
    target: str
    operation: str  # "upgrade" | "rollback"
    history: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def by(self) -> str:
        return f"k3s_{self.operation}"

    def save(self) -> None:
        save_history(self.project, self.history)


def k3s_upgrade(project: Project, version: str | None = None, *, remote: Remote | None = None,
                kube: Kube | None = None, out: Printer | None = None, timeouts: Timeouts | None = None) -> OpResult:
    """``doit k3s_upgrade [version=vX.Y.Z+k3sN]``: rolling upgrade to ``version`` (default: the inventory's pin)."""
    target = version or str(cluster.inventory_data(project)["k3s"]["version"])
    steps = Steps(f"k3s upgrade to {target} ({project.layout.env})", out)
    return _rolling(project, target, "upgrade", steps, remote, kube, timeouts)


def k3s_rollback(project: Project, *, remote: Remote | None = None, kube: Kube | None = None,
                 out: Printer | None = None, timeouts: Timeouts | None = None) -> OpResult:
    """``doit k3s_rollback``: roll the cluster back to the version the last recorded upgrade started from."""
    steps = Steps(f"k3s rollback ({project.layout.env})", out)
    history = load_history(project)
    target, run = previous_version(history)
    if target is None or run is None:
        return steps.fail(f"no recorded upgrade to roll back ({project.layout.rel(history_path(project))} has none); "
                          "to go to a given version use `doit k3s_upgrade version=...`")
    steps.say(f"last upgrade: {run.get('started_at', '?')} to {run.get('target')}; rolling back to {target}")
    return _rolling(project, target, "rollback", steps, remote, kube, timeouts)


def _rolling(project: Project, target: str, operation: str, steps: Steps, remote: Remote | None,
             kube: Kube | None, timeouts: Timeouts | None) -> OpResult:
    try:
        version_key(target)
    except ValueError as exc:
        return steps.fail(str(exc))
    api = kube or cluster.kube_for(project)
    if api is None:
        return steps.fail(cluster.no_api_message(project))
    run = _Run(project, api, remote or remote_for(project), steps, timeouts or Timeouts(), target, operation,
               load_history(project))
    try:
        return _rolling_run(run)
    except KubeError as exc:
        if run.record:
            _finish_record(run, "failed", str(exc))
        return steps.fail(f"{run.operation} stopped: {exc}; fix it and re-run to resume")


def _preflight(run: _Run) -> tuple[list[tuple[dict[str, Any], Node]], str]:
    """(inventory host + node, in rolling order) for every host, or ([], why the cluster is not fit)."""
    project, steps = run.project, run.steps
    inv_rel = project.layout.rel(project.layout.inventory)
    ok, detail = run.kube.api_ready()
    if not ok:
        return [], f"pre-flight: the API does not answer: {detail}"
    nodes = {n.name: n for n in run.kube.nodes()}
    hosts = list(cluster.inventory_data(project)["hosts"])
    missing = [str(h["name"]) for h in hosts if h["name"] not in nodes]
    if missing:
        return [], (f"pre-flight: {', '.join(missing)} in {inv_rel} but not in the cluster: join it (`doit`) or "
                    f"remove it from the inventory; nothing was changed")
    unknown = sorted(set(nodes) - {str(h["name"]) for h in hosts})
    if unknown:
        return [], (f"pre-flight: node(s) {', '.join(unknown)} are not in {inv_rel}: cannot reach them to upgrade; "
                    "nothing was changed")
    for h in hosts:
        n = nodes[str(h["name"])]
        flag = "" if n.ready else "  NotReady"
        cordon = f"  cordoned{' by ' + n.cordoned_by if n.cordoned_by else ''}" if n.unschedulable else ""
        steps.say(f"  {n.name:<20} {cluster.role_of(h):<6} {n.version}{flag}{cordon}")
    not_ready = [n.name for n in nodes.values() if not n.ready]
    if not_ready:
        return [], f"pre-flight: node(s) not Ready: {', '.join(not_ready)}: fix them first; nothing was changed"
    crashing = [p.ref for p in run.kube.pods("kube-system") if p.crash_looping]
    if crashing:
        return [], f"pre-flight: CrashLoopBackOff in kube-system: {', '.join(crashing)}; nothing was changed"
    steps.say(f"pre-flight: {len(nodes)} node(s) Ready, no CrashLoopBackOff in kube-system")
    server = [h for h in hosts if cluster.role_of(h) == "server"]
    agents = [h for h in hosts if cluster.role_of(h) == "agent"]
    going_down = any(version_key(nodes[str(h["name"])].version) > version_key(run.target) for h in server)
    # Up: the API server first, so no kubelet is ever newer than it. Down: agents first, for the same reason.
    order = [*agents, *server] if going_down else [*server, *agents]
    return [(h, nodes[str(h["name"])]) for h in order], ""


def _rolling_run(run: _Run) -> OpResult:
    steps, kube, target = run.steps, run.kube, run.target
    plan, problem = _preflight(run)
    if problem:
        return steps.fail(problem)
    # Nodes an interrupted run of ours left cordoned and that need no more work: give them back first.
    todo = [(h, n) for h, n in plan if n.version != target]
    for _, n in plan:
        if n.version == target and n.cordoned_by in OPERATIONS:
            steps.say(f"{n.name}: left cordoned by an interrupted {n.cordoned_by}; already at {target}: uncordon")
            kube.uncordon(n.name)
    if not todo:
        return steps.done(f"all {len(plan)} node(s) already at {target}: nothing to do{_pin_note(run)}",
                          upgraded=[], target=target)
    server_now = next((n.version for h, n in plan if cluster.role_of(h) == "server"), "")
    refused = _minor_downgrade(run, server_now)
    if refused:
        return steps.fail(refused)
    steps.say(f"plan: {', '.join(f'{n.name} ({n.version})' for _, n in todo)} -> {target}, one at a time")

    snap, error = take_snapshot(run.project, run.remote, steps, _snapshot_name(run.operation, target))
    if snap is None:
        return steps.fail(f"no etcd snapshot, so no {run.operation}: {error}; nothing was changed")

    for old in run.history["runs"]:
        if old.get("result") == "running":
            old["result"] = "interrupted"  # a previous run died without finishing its record
    run.record = {"operation": run.operation, "target": target, "started_at": _now(), "finished_at": None,
                  "result": "running", "message": "", "snapshot": snap.name, "snapshot_path": snap.path, "nodes": []}
    run.history.setdefault("runs", []).append(run.record)
    run.save()

    done: list[str] = []
    for index, (entry, node) in enumerate(todo, start=1):
        steps.say(f"[{index}/{len(todo)}] {node.name} ({cluster.role_of(entry)}): {node.version} -> {target}")
        failure = _one_node(run, entry, node)
        if failure:
            left = [n.name for _, n in todo[index:]]
            message = (f"{run.operation} stopped at {node.name}: {failure}. Cluster left schedulable"
                       + (f"; not yet done: {', '.join(left)}" if left else "")
                       + f". Fix it and run `doit k3s_{run.operation}` again to resume")
            _finish_record(run, "failed", message)
            return steps.fail(message, upgraded=done, failed=node.name, snapshot=snap.name)
        done.append(node.name)

    # Final check: every node Ready at the target, what else runs.
    nodes = kube.nodes()
    off = [f"{n.name} ({n.version}{'' if n.ready else ', NotReady'})" for n in nodes
           if n.version != target or not n.ready]
    if off:
        message = f"{run.operation} finished its nodes, but not every node is Ready at {target}: {', '.join(off)}"
        _finish_record(run, "failed", message)
        return steps.fail(message, upgraded=done, snapshot=snap.name)
    waiting = [p.ref for p in kube.pods() if p.phase not in ("Running", "Succeeded")]
    steps.say(f"all {len(nodes)} node(s) Ready at {target}; "
              + (f"{len(waiting)} pod(s) not Running yet: {', '.join(waiting[:5])}" if waiting
                 else "every pod Running or Completed"))
    message = f"{len(done)} node(s) now at {target} ({', '.join(done)}); snapshot {snap.name}{_pin_note(run)}"
    _finish_record(run, "ok", message)
    return steps.done(message, upgraded=done, snapshot=snap.name, target=target)


def _one_node(run: _Run, entry: Mapping[str, Any], node: Node) -> str | None:
    """Cordon, drain, install, wait Ready at the target, uncordon one node; the error, or None."""
    steps, kube = run.steps, run.kube
    name, role = node.name, cluster.role_of(entry)
    started = time.monotonic()
    record: dict[str, Any] = {"node": name, "role": role, "before": node.version, "after": node.version,
                              "started_at": _now(), "seconds": 0.0, "result": "running", "message": ""}
    run.record["nodes"].append(record)
    run.save()
    ours = False
    error: str | None = None
    try:
        if not node.unschedulable:
            kube.cordon(name, run.by)
            ours = True
            steps.say(f"{name}: cordoned")
        elif node.cordoned_by in OPERATIONS:
            ours = True  # left cordoned by an interrupted run of ours: ours to uncordon
            steps.say(f"{name}: still cordoned by an interrupted {node.cordoned_by}")
        else:
            steps.say(f"{name}: was cordoned before this run: it stays cordoned afterwards")
        error = _drain_install_wait(run, entry, name, role)
    finally:
        if ours:
            try:
                kube.uncordon(name)
                steps.say(f"{name}: uncordoned")
            except KubeError as exc:
                error = f"{error + '; ' if error else ''}could not uncordon {name}: {exc}"
        now = kube_version(kube, name)
        record.update(after=now or record["after"], seconds=round(time.monotonic() - started, 1),
                      result="failed" if error else "ok", message=error or f"Ready at {run.target}")
        run.save()
    return error


def kube_version(kube: Kube, name: str) -> str:
    try:
        node = kube.node(name)
    except KubeError:
        return ""
    return node.version if node else ""


def _drain_install_wait(run: _Run, entry: Mapping[str, Any], name: str, role: str) -> str | None:
    steps, kube, remote, limits, target = run.steps, run.kube, run.remote, run.limits, run.target
    steps.say(f"{name}: kubectl drain --ignore-daemonsets --delete-emptydir-data --timeout={int(limits.drain)}s")
    drained, output = kube.drain(name, limits.drain)
    if not drained:
        return f"drain did not finish within {duration(limits.drain)}: {drain_reason(output)}"
    evicted = len(re.findall(r"^pod/\S+ evicted", output, flags=re.MULTILINE))
    steps.say(f"{name}: drained ({evicted} pod(s) evicted)")

    units = remote.run(name, _UNITS, timeout=60)
    if not units.ok:
        return f"cannot check its k3s units over SSH: {units.last_line()}"
    problem = unit_problem(role, parse_units(units.stdout))
    if problem:
        return f"{name} {problem}; nothing was installed"
    inventory = cluster.inventory_data(run.project)
    command = install_command(inventory, entry, target, server_url(run.project))
    guard = role_guard(role, command)
    if guard:
        return f"refusing to run the install on {name} ({role}): {guard}"
    unit = cluster.unit_for(role)
    steps.say(f"{name}: installing k3s {target} ({inventory['k3s']['install']['source']}) and restarting {unit}")
    restarted_at = time.monotonic()
    installed = remote.run(name, command, timeout=limits.install)
    if not installed.ok:
        return f"k3s install failed: {installed.last_line()}"
    check = remote.run(name, f"{K3S_BIN} --version | head -n 1; {_UNITS}", timeout=60)
    found = _VERSION_LINE.search(check.stdout)
    after_units = parse_units(check.stdout)
    if role == "agent" and SERVER_UNIT in after_units:
        # Never leave a second control plane running on an agent, whatever put it there.
        remote.run(name, f"systemctl disable --now {SERVER_UNIT}", timeout=120)
        return f"{SERVER_UNIT} appeared on agent {name} after the install: stopped and disabled it"
    if not found or found.group(1) != target:
        return (f"`k3s --version` on {name} reports {found.group(1) if found else check.last_line()}, not {target}"
                + (" (install.source binary: put that version at k3s.install.binary_path)"
                   if inventory["k3s"]["install"]["source"] == "binary" else ""))
    steps.say(f"{name}: k3s {target} installed; {unit} {after_units.get(unit, 'missing')}")

    if role == "server":
        ok, detail, waited = cluster.wait_for(kube.api_ready, limits.api, limits.poll)
        since = time.monotonic() - restarted_at
        if not ok:
            return f"the API did not answer within {duration(limits.api)} of the restart: {detail}"
        verdict = "within" if since <= API_TARGET_SECONDS else "OVER"
        steps.say(f"{name}: API answering {duration(since)} after the restart ({verdict} the 5-minute target, NFR2)")

    def ready() -> tuple[bool, str]:
        node = kube.node(name)
        if node is None:
            return False, "not in the cluster"
        state = f"{'Ready' if node.ready else 'NotReady'}, kubelet {node.version}"
        return node.ready and node.version == target, state

    ok, detail, waited = cluster.wait_for(ready, limits.ready, limits.poll)
    if not ok:
        return f"{name} did not become Ready with kubelet {target} within {duration(limits.ready)} (last: {detail})"
    steps.say(f"{name}: {detail} after {duration(waited)}")
    return None


def _snapshot_name(operation: str, target: str) -> str:
    return f"pre-{operation}-{re.sub(r'[^A-Za-z0-9.-]', '-', target)}"


def _minor_downgrade(run: _Run, server_now: str) -> str | None:
    """Refuse going down a minor version: the control plane's storage cannot be downgraded, only restored."""
    if not server_now or not VERSION.match(server_now):
        return None
    now, to = version_key(server_now), version_key(run.target)
    if to[:2] >= now[:2]:
        return None
    snap = next((r.get("snapshot") for r in reversed(run.history.get("runs") or [])
                 if r.get("operation") == "upgrade" and r.get("target") == server_now and r.get("snapshot")), None)
    hint = f"doit cluster_restore snapshot={snap}" if snap else "doit cluster_restore snapshot=NAME"
    return (f"{server_now} -> {run.target} goes down a minor version, which Kubernetes does not support: restore "
            f"the snapshot taken before the upgrade instead ({hint}; docs/runbooks/k3s-rollback.md); "
            "nothing was changed")


def _pin_note(run: _Run) -> str:
    pinned = cluster.inventory_data(run.project)["k3s"]["version"]
    if pinned == run.target:
        return ""
    inv = run.project.layout.rel(run.project.layout.inventory)
    return (f". NOTE: {inv} pins k3s.version {pinned}: set it to {run.target}, or the next converge of the k3s "
            f"stage reinstalls {pinned}")


def _finish_record(run: _Run, result: str, message: str) -> None:
    run.record.update(result=result, message=message, finished_at=_now(), seconds=round(run.steps.elapsed, 1))
    run.save()
