"""Cluster state: on-demand etcd snapshots and the reset-restore from one (FR45, FR46, NFR6; Stories 8.2, 8.3).

``etcd_snapshot`` runs ``k3s etcd-snapshot save`` on the server into the snapshot directory the k3s stage
configured (``etcd-snapshot-dir``, on the NFS mount so a snapshot outlives the server), then checks that
``k3s etcd-snapshot ls`` lists it with a non-zero size. ``cluster_restore`` is the documented k3s
procedure: stop k3s on the server, ``k3s server --cluster-reset --cluster-reset-restore-path=<file>``, start
k3s, wait for the API, restart every agent so it rejoins, wait until every node is Ready.

Both run over SSH through a ``Remote`` (real ssh unless a test hands in a fake) and never raise for expected
failures: they return an ``OpResult``.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from homelab.hostops import hostdata
from homelab.ops import cluster
from homelab.ops.cluster import K3S_BIN, Kube, Printer, Steps, Timeouts, duration
from homelab.ops.remote import Remote, quote, remote_for
from homelab.ops.result import OpResult
from homelab.project import Project

RESTORE_TARGET_SECONDS = 30 * 60  # NFR6: cluster state restored within 30 minutes
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
_SAVED = re.compile(r"Snapshot (\S+) saved")
# Where there is no API to ask (stand-in k3s), a server is back when its unit is active again.
_SERVER_UP = f"systemctl is-active --quiet {cluster.SERVER_UNIT}"

Confirm = Callable[[str], bool]


@dataclass(frozen=True)
class Snapshot:
    """One snapshot as ``k3s etcd-snapshot ls`` lists it."""

    name: str
    location: str  # file:///mnt/nfs/k3s-etcd-snapshots/NAME (or s3://...)
    size: int
    created: str

    @property
    def path(self) -> str:
        return self.location.removeprefix("file://")


def snapshot_dir(project: Project) -> str:
    """The server's etcd-snapshot-dir as the k3s stage writes it into config.yaml (on the NFS mount)."""
    return hostdata.snapshot_dir(cluster.inventory_data(project))


def default_name(prefix: str = "homelab") -> str:
    """A snapshot name k3s accepts; k3s itself appends ``-<node>-<unix time>``."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def parse_ls(text: str) -> list[Snapshot]:
    """Rows of ``k3s etcd-snapshot ls``: ``Name Location Size Created`` (header and log lines skipped)."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] == "Name" or not parts[2].isdigit() or "://" not in parts[1]:
            continue
        rows.append(Snapshot(parts[0], parts[1], int(parts[2]), parts[3]))
    return rows


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def take_snapshot(project: Project, remote: Remote, steps: Steps, name: str) -> tuple[Snapshot | None, str]:
    """Save one snapshot on the server and verify it is listed; (snapshot, "") or (None, why not)."""
    if not SNAPSHOT_NAME.match(name):
        return None, f"snapshot name {name!r}: use letters, digits, '.', '_' and '-' only"
    server = str(cluster.server_entry(project)["name"])
    directory = snapshot_dir(project)
    dir_arg = f"--etcd-snapshot-dir {quote(directory)}"
    steps.say(f"{server}: k3s etcd-snapshot save --name {name} --etcd-snapshot-dir {directory}")
    saved = remote.run(server, f"{K3S_BIN} etcd-snapshot save --name {quote(name)} {dir_arg}", timeout=900)
    if not saved.ok:
        return None, f"{server}: k3s etcd-snapshot save failed: {saved.last_line()}"
    # k3s names the file <name>-<node>-<unix time> and logs that name (on stderr, as a logrus line).
    found = _SAVED.search(saved.stdout + "\n" + saved.stderr)
    steps.say(f"{server}: saved {found.group(1) if found else name + '-*'}; checking k3s etcd-snapshot ls")
    listed = remote.run(server, f"{K3S_BIN} etcd-snapshot ls {dir_arg}", timeout=300)
    if not listed.ok:
        return None, f"{server}: k3s etcd-snapshot ls failed after the save: {listed.last_line()}"
    rows = parse_ls(listed.stdout)
    if found:
        match = [r for r in rows if r.name == found.group(1)]
    else:  # an unexpected log format: the newest listed snapshot that carries our name
        match = sorted((r for r in rows if r.name.startswith(f"{name}-")), key=lambda r: r.created)[-1:]
    if not match:
        return None, (f"{server}: snapshot {found.group(1) if found else name} was reported saved but "
                      f"`k3s etcd-snapshot ls` does not list it ({len(rows)} snapshot(s) listed)")
    snap = match[0]
    if snap.size <= 0:
        return None, f"{server}: snapshot {snap.name} is empty ({snap.location})"
    steps.say(f"{server}: snapshot {snap.name} listed: {snap.path} ({human_size(snap.size)})")
    _warn_if_not_nfs(project, remote, steps, server, directory)
    return snap, ""


def _warn_if_not_nfs(project: Project, remote: Remote, steps: Steps, server: str, directory: str) -> None:
    """Say so when the snapshot directory is not on NFS: then a snapshot dies with the server's disk."""
    fs = remote.run(server, f"stat -f -c %T {quote(directory)}", timeout=60)
    fstype = fs.stdout.strip() if fs.ok else "unknown"
    if fstype.startswith("nfs"):
        return
    standin = (cluster.inventory_data(project).get("standins") or {}).get("nfs")
    note = f" (stand-in: {standin})" if standin else ""
    steps.say(f"warning: {directory} on {server} is on {fstype}, not NFS{note}: the snapshot does not "
              f"survive the loss of {server}'s disk")


def etcd_snapshot(project: Project, name: str | None = None, *, remote: Remote | None = None,
                  out: Printer | None = None) -> OpResult:
    """``doit etcd_snapshot [name=NAME]``: an on-demand etcd snapshot on the server, verified as listed."""
    steps = Steps(f"etcd snapshot ({project.layout.env})", out)
    try:
        server = str(cluster.server_entry(project)["name"])
    except ValueError as exc:
        return steps.fail(str(exc))
    snap, error = take_snapshot(project, remote or remote_for(project), steps, name or default_name())
    if snap is None:
        return steps.fail(error)
    return steps.done(f"{server}: snapshot {snap.name} at {snap.path} ({human_size(snap.size)})",
                      name=snap.name, path=snap.path, size=snap.size, location=snap.location)


# -- restore ---------------------------------------------------------------------------------------------

def ask(question: str) -> bool:
    """The interactive confirmation: only a typed ``yes`` on a terminal counts."""
    if sys.stdin is None or not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} Type 'yes' to continue: ").strip().lower() == "yes"
    except EOFError:
        return False


def resolve_snapshot_path(project: Project, snapshot: str) -> tuple[str, str]:
    """(absolute path on the server, "") for a snapshot name or path; ("", why not) when it is unusable."""
    value = snapshot.strip().removeprefix("file://")
    if not value:
        return "", "no snapshot given: doit cluster_restore snapshot=NAME (see `doit etcd_snapshot` / the runbook)"
    if "/" in value:
        if not value.startswith("/"):
            return "", f"snapshot path {value!r} must be absolute (or give just the name)"
        return value, ""
    if not SNAPSHOT_NAME.match(value):
        return "", f"snapshot name {value!r}: letters, digits, '.', '_' and '-' only"
    return f"{snapshot_dir(project)}/{value}", ""


def cluster_restore(
    project: Project,
    snapshot: str,
    force: bool = False,
    *,
    remote: Remote | None = None,
    kube: Kube | None = None,
    confirm: Confirm | None = None,
    out: Printer | None = None,
    timeouts: Timeouts | None = None,
) -> OpResult:
    """``doit cluster_restore snapshot=NAME [force=true]``: reset the cluster to an etcd snapshot, rejoin agents.

    Destroys every change made since the snapshot, so it asks first unless ``force``. Works whether or not
    k3s is currently running (the snapshot is found on disk, not through ``k3s etcd-snapshot ls``, which
    needs a running server).
    """
    limits = timeouts or Timeouts()
    steps = Steps(f"cluster restore from {snapshot} ({project.layout.env})", out)
    try:
        server = str(cluster.server_entry(project)["name"])
    except ValueError as exc:
        return steps.fail(str(exc))
    path, error = resolve_snapshot_path(project, snapshot)
    if error:
        return steps.fail(error)
    remote = remote or remote_for(project)
    api = kube or cluster.kube_for(project)
    standin = (cluster.inventory_data(project).get("standins") or {}).get("k3s")
    if api is None and not standin:
        return steps.fail(f"{cluster.no_api_message(project)}; nothing was changed")

    # 1. the snapshot exists on the server (checked before asking, so a typo never gets as far as a question)
    found = remote.run(server, f"stat -c %s {quote(path)}", timeout=60)
    if not found.ok:
        newest = remote.run(server, f"ls -1t {quote(snapshot_dir(project))} 2>/dev/null | head -n 5", timeout=60)
        names = ", ".join(newest.stdout.split()) if newest.ok and newest.stdout.strip() else "none"
        return steps.fail(f"{server}: snapshot {path} not found ({found.last_line()}); newest there: {names}")
    steps.say(f"{server}: snapshot {path} ({human_size(int(found.stdout.strip() or 0))})")

    # 2. the question: everything since the snapshot is lost
    if not force:
        question = (f"Restore the {project.layout.env} cluster to {path}? Every change since that snapshot "
                    "is lost and k3s is stopped during the restore.")
        if not (confirm or ask)(question):
            return steps.fail("not confirmed: nothing was changed (answer 'yes' on a terminal, or pass force=true)")

    # 3. stop, reset-restore, start the server
    steps.say(f"{server}: systemctl stop {cluster.SERVER_UNIT}")
    stopped = remote.run(server, f"systemctl stop {cluster.SERVER_UNIT}", timeout=300)
    if not stopped.ok:
        return steps.fail(f"{server}: cannot stop {cluster.SERVER_UNIT}: {stopped.last_line()}; nothing was restored")
    steps.say(f"{server}: k3s server --cluster-reset --cluster-reset-restore-path={path}")
    reset = remote.run(server, f"{K3S_BIN} server --cluster-reset --cluster-reset-restore-path={quote(path)}",
                       timeout=limits.install)
    if not reset.ok:
        # Do not leave the control plane down: start k3s on its existing (unrestored) data.
        restart = remote.run(server, f"systemctl start {cluster.SERVER_UNIT}", timeout=300)
        state = "started again on its existing data" if restart.ok else f"NOT started: {restart.last_line()}"
        return steps.fail(f"{server}: cluster reset failed: {reset.last_line()}; {cluster.SERVER_UNIT} {state}")
    steps.say(f"{server}: {reset.last_line()}")
    steps.say(f"{server}: systemctl start {cluster.SERVER_UNIT}")
    started = remote.run(server, f"systemctl start {cluster.SERVER_UNIT}", timeout=600)
    if not started.ok:
        return steps.fail(f"{server}: {cluster.SERVER_UNIT} does not start after the restore: {started.last_line()}")

    # 4. the API
    if api is not None:
        ok, detail, waited = cluster.wait_for(api.api_ready, limits.api, limits.poll)
        if not ok:
            return steps.fail(f"{server}: the API did not answer within {duration(limits.api)} after the restore: "
                              f"{detail}")
        steps.say(f"{server}: API answering after {duration(waited)}")
    else:
        ok, detail, waited = cluster.wait_for(lambda: _server_up(remote, server), limits.api, limits.poll)
        if not ok:
            return steps.fail(f"{server}: {cluster.SERVER_UNIT} not active after the restore: {detail}")
        steps.say(f"{server}: {cluster.SERVER_UNIT} active (stand-in k3s: {standin}; no API to ask)")

    # 5. agents rejoin: restart each agent so it reconnects to the restored server
    agents = [h for h in cluster.inventory_data(project)["hosts"] if cluster.role_of(h) == "agent"]
    failed: list[str] = []
    for entry in agents:
        name = str(entry["name"])
        unit = cluster.AGENT_UNIT
        steps.say(f"{name}: systemctl restart {unit} (rejoin)")
        # The agent's unit must be the agent unit: never start a server on an agent host.
        rejoin = remote.run(name, f"systemctl cat {unit} >/dev/null 2>&1 || {{ echo 'no {unit} on this host' >&2; "
                                  f"exit 3; }}; systemctl restart {unit}", timeout=300)
        if not rejoin.ok:
            failed.append(f"{name} ({rejoin.last_line()})")
    if failed:
        return steps.fail(f"restored on {server}, but agents did not restart: {'; '.join(failed)}",
                          snapshot=path)

    # 6. every node Ready
    hosts = [str(h["name"]) for h in cluster.inventory_data(project)["hosts"]]
    if api is not None:
        ok, detail, waited = cluster.wait_for(lambda: _all_ready(api, hosts), limits.ready, limits.poll)
        if not ok:
            return steps.fail(f"restored on {server}, but not every node is Ready after {duration(limits.ready)}: "
                              f"{detail}", snapshot=path)
        steps.say(f"all {len(hosts)} node(s) Ready ({detail})")
    else:
        steps.say(f"stand-in k3s: no nodes to check; agents restarted: {', '.join(str(h['name']) for h in agents)}")
    verdict = "within" if steps.elapsed <= RESTORE_TARGET_SECONDS else "OVER"
    message = (f"cluster restored from {path} in {duration(steps.elapsed)} ({verdict} the 30-minute target, NFR6); "
               "check workloads and application data (runbook: docs/runbooks/cluster-restore.md)")
    return steps.done(message, snapshot=path, within_target=verdict == "within")


def _server_up(remote: Remote, server: str) -> tuple[bool, str]:
    result = remote.run(server, _SERVER_UP, timeout=30)
    return result.ok, "active" if result.ok else result.last_line()


def _all_ready(api: Kube, hosts: list[str]) -> tuple[bool, str]:
    nodes = {n.name: n for n in api.nodes()}
    missing = [h for h in hosts if h not in nodes]
    not_ready = [h for h in hosts if h in nodes and not nodes[h].ready]
    if missing or not_ready:
        parts = ([f"missing: {', '.join(missing)}"] if missing else []) + (
            [f"NotReady: {', '.join(not_ready)}"] if not_ready else [])
        return False, "; ".join(parts)
    return True, ", ".join(f"{h} {nodes[h].version}" for h in hosts)
