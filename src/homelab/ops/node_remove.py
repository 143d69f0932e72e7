"""Removing a node from the cluster without losing data (FR3, NFR3; Story 1.5).

The order matters: cordon; ``kubectl drain`` (PDB-aware, refuses bare pods, so nothing without a controller
is silently lost); wait until every evicted workload runs again elsewhere and every PVC that was Bound is
still Bound; only then stop k3s on the host, delete the Node and run the k3s uninstall script there. k3s is
stopped *before* the Node is deleted because a running kubelet registers its Node again straight away.
Until the Node is deleted nothing is lost, so every failure before that point uncordons the node again
and leaves the cluster as it was.

Refused: the last server (the control plane and etcd live there), a node that is not in the cluster, and
removing the only node left to run pods.
"""

from __future__ import annotations

from dataclasses import dataclass

from homelab.ops import cluster
from homelab.ops.cluster import Kube, KubeError, Pod, Printer, Steps, Timeouts, drain_reason, duration
from homelab.ops.remote import Remote, remote_for
from homelab.ops.result import OpResult
from homelab.project import Project

OPERATION = "node_remove"
UNINSTALL = {"agent": "/usr/local/bin/k3s-agent-uninstall.sh", "server": "/usr/local/bin/k3s-uninstall.sh"}


@dataclass(frozen=True)
class Move:
    """One evicted pod and the pod that replaced it."""

    pod: str  # namespace/name on the removed node
    owner: str  # Kind/name of its controller
    now: str  # "namespace/name@node" of its replacement, "" when none was found

    def line(self) -> str:
        return f"{self.pod} ({self.owner}) -> {self.now or 'no replacement found'}"


def node_remove(project: Project, node: str, *, remote: Remote | None = None, kube: Kube | None = None,
                out: Printer | None = None, timeouts: Timeouts | None = None) -> OpResult:
    """``doit node_remove node=NAME``: drain ``node``, check nothing was lost, delete it, uninstall k3s there."""
    steps = Steps(f"remove node {node} ({project.layout.env})", out)
    api = kube or cluster.kube_for(project)
    if api is None:
        return steps.fail(cluster.no_api_message(project))
    try:
        return _remove(project, node, api, remote or remote_for(project), steps, timeouts or Timeouts())
    except KubeError as exc:
        return steps.fail(f"{node}: {exc}; re-run `doit node_remove node={node}` when the API answers")


def _remove(project: Project, name: str, kube: Kube, remote: Remote, steps: Steps, limits: Timeouts) -> OpResult:
    inv_rel = project.layout.rel(project.layout.inventory)
    nodes = kube.nodes()
    node = next((n for n in nodes if n.name == name), None)
    entry = cluster.host_entry(project, name)
    if node is None:
        hint = (f"; if an earlier removal stopped after deleting the Node, finish it on the host with "
                f"{UNINSTALL[cluster.role_of(entry)]} and remove {name} from {inv_rel}") if entry else ""
        return steps.fail(f"{name} is not in the cluster (nodes: {', '.join(n.name for n in nodes) or 'none'}): "
                          f"nothing to remove{hint}")
    role = "server" if node.control_plane or (entry is not None and cluster.role_of(entry) == "server") else "agent"
    servers = [n for n in nodes if n.control_plane]
    if role == "server" and len([n for n in servers if n.name != name]) == 0:
        return steps.fail(f"refusing to remove {name}: it is the last server (control plane and etcd); removing it "
                          "ends the cluster. Rebuild or restore instead (docs/runbooks/cluster-restore.md)")
    others = [n for n in nodes if n.name != name and n.ready and not n.unschedulable]
    if not others:
        return steps.fail(f"refusing to remove {name}: no other Ready, schedulable node to move its pods to")

    everything = kube.pods()
    before = {p.ref for p in everything}
    pods = [p for p in everything if p.node == name]
    movable = [p for p in pods if p.owner_kind != "DaemonSet" and not p.terminating
               and p.phase not in ("Succeeded", "Failed")]
    bound = {p.ref for p in kube.pvcs() if p.phase == "Bound"}
    steps.say(f"{name} ({role}, {node.version}): {len(movable)} pod(s) to move, "
              f"{len(pods) - len(movable)} DaemonSet/finished pod(s) stay, {len(bound)} PVC(s) Bound; "
              f"other Ready nodes: {', '.join(n.name for n in others)}")

    ours = not node.unschedulable or node.cordoned_by == OPERATION
    if not node.unschedulable:
        kube.cordon(name, OPERATION)
        steps.say(f"{name}: cordoned")
    error = _drain_and_check(kube, name, steps, limits, movable, bound)
    if error:
        if ours:
            kube.uncordon(name)
            steps.say(f"{name}: uncordoned again (nothing was deleted)")
        return steps.fail(f"{name} not removed: {error}")
    moves = _moves(kube.pods(), movable, before)
    for move in moves:
        steps.say(f"moved: {move.line()}")

    # From here on the node goes away. Stop k3s first: a running kubelet re-registers a deleted Node.
    unit = cluster.unit_for(role)
    problems: list[str] = []
    if entry is None:
        problems.append(f"{name} is not in {inv_rel}: stop k3s and uninstall it on that machine by hand")
    else:
        steps.say(f"{name}: systemctl stop {unit}")
        stopped = remote.run(name, f"systemctl stop {unit}", timeout=300)
        if not stopped.ok:
            # A dead host is a common reason to remove a node: carry on, and say what is left to do.
            problems.append(f"could not stop {unit} on {name} ({stopped.last_line()})")
            steps.say(f"{name}: warning: {problems[-1]}")
    steps.say(f"kubectl delete node {name}")
    kube.delete_node(name)
    if entry is not None:
        script = UNINSTALL[role]
        steps.say(f"{name}: {script}")
        # Re-runnable: a host without the script has nothing left to uninstall.
        uninstall = remote.run(name, f"if [ -x {script} ]; then {script}; else echo 'k3s is not installed'; fi",
                               timeout=limits.install)
        if not uninstall.ok:
            problems.append(f"uninstall on {name} failed ({uninstall.last_line()}): run {script} there")
        else:
            steps.say(f"{name}: {uninstall.last_line()}")
    if kube.node(name) is not None:
        problems.append(f"the Node {name} is back in the cluster: its kubelet still runs; stop k3s on it")
    bound_now = {p.ref for p in kube.pvcs() if p.phase == "Bound"}
    details = {"moved": [m.line() for m in moves], "pvcs_bound": sorted(bound_now)}
    summary = f"{len(moves)} pod(s) moved, {len(bound & bound_now)}/{len(bound)} PVC(s) still Bound"
    if problems:
        return steps.fail(f"{name} deleted from the cluster ({summary}), but: {'; '.join(problems)}", **details)
    return steps.done(f"{name} removed ({summary}). Remove it from {inv_rel} too, or the next converge joins "
                      "it again; to rejoin later, converge it (`doit`) - docs/runbooks/node-removal.md", **details)


def _drain_and_check(kube: Kube, name: str, steps: Steps, limits: Timeouts, movable: list[Pod],
                     bound: set[str]) -> str | None:
    steps.say(f"{name}: kubectl drain --ignore-daemonsets --delete-emptydir-data --timeout={int(limits.drain)}s")
    drained, output = kube.drain(name, limits.drain)
    if not drained:
        return f"drain did not finish within {duration(limits.drain)}: {drain_reason(output)}"
    steps.say(f"{name}: drained; waiting until the evicted workloads run elsewhere and every PVC is still Bound")

    def settled() -> tuple[bool, str]:
        pods = kube.pods()
        waiting = _not_moved(pods, movable, name)
        lost = sorted(bound - {p.ref for p in kube.pvcs() if p.phase == "Bound"})
        parts = ([f"not running elsewhere yet: {', '.join(waiting)}"] if waiting else []) + (
            [f"PVC(s) no longer Bound: {', '.join(lost)}"] if lost else [])
        return not parts, "; ".join(parts) or "all moved"

    ok, detail, waited = cluster.wait_for(settled, limits.moved, limits.poll)
    if not ok:
        return f"after {duration(waited)}: {detail}"
    steps.say(f"{name}: every evicted workload Running elsewhere, every PVC Bound ({duration(waited)})")
    return None


def _owner_pods(pods: list[Pod], uid: str) -> list[Pod]:
    return [p for p in pods if p.owner_uid == uid and not p.terminating]


def _not_moved(pods: list[Pod], movable: list[Pod], node: str) -> list[str]:
    """Workloads of evicted pods that do not yet run (Running and Ready, or done for a Job) on another node."""
    waiting = []
    for uid, owner in sorted({(p.owner_uid, f"{p.owner_kind}/{p.namespace}/{p.owner_name}") for p in movable}):
        now = _owner_pods(pods, uid)
        settled = bool(now) and all(
            p.node and p.node != node and ((p.phase == "Running" and p.ready) or p.phase == "Succeeded") for p in now)
        if not settled:
            states = ", ".join(f"{p.name} {p.phase}{'' if p.ready else ' not ready'}" for p in now) or "no pods"
            waiting.append(f"{owner} ({states})")
    return waiting


def _moves(pods: list[Pod], movable: list[Pod], before: set[str]) -> list[Move]:
    """Pair each evicted pod with its replacement: the same name (StatefulSet) or a pod of the same
    controller that did not exist before the drain."""
    taken: set[str] = set()
    moves = []
    for p in movable:
        now = _owner_pods(pods, p.owner_uid)
        same = [q for q in now if q.ref == p.ref]
        fresh = same or [q for q in now if q.ref not in before and q.ref not in taken]
        to = fresh[0] if fresh else None
        if to is not None:
            taken.add(to.ref)
        moves.append(Move(pod=p.ref, owner=f"{p.owner_kind}/{p.owner_name}", now=f"{to.ref}@{to.node}" if to else ""))
    return moves
