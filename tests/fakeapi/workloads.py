"""Test fake: the controller simulation of the fake Kubernetes API server.

Stands in for the scheduler, kubelet and controller-manager: Deployments get ReplicaSets and pods,
StatefulSets and DaemonSets get their pods, Jobs complete, pods are scheduled round-robin over the
schedulable Ready Nodes, workload status follows pod readiness, PDB status is kept current and pod
evictions honour it. Tests steer it through rules (never ready, ready after N seconds, slow pod
termination, Job outcome) and node helpers; see :class:`Simulator`.

With no Node objects at all, pods run "nodeless" (no ``spec.nodeName``) so charts can be installed
without first creating nodes.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import hashlib
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .defaults import node_ready_condition
from .resources import ResourceType
from .selectors import selector_object_matches
from .store import NAME_ALPHABET, ApiError, Change, Obj, Store, now_rfc3339, random_suffix, short_json

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")


@dataclass
class Rule:
    """How matching workloads behave; ``None`` fields leave earlier rules (or defaults) in force.

    ``ready``: ``"ready"`` (at once), ``"never"``, ``"crash"`` (CrashLoopBackOff), ``"fail"`` (never ready and,
    for Deployments, ``ProgressDeadlineExceeded``) or a number of seconds after which pods become ready.
    A pod's readiness mode is fixed when the pod is created, so a ``"never"`` rule hits the next rollout
    and leaves serving pods alone; a ``"ready"`` rule also readies existing pods.
    ``terminate_after``: seconds a deleted pod stays terminating (``deletionTimestamp`` set) before it goes.
    ``job``: ``"complete"``, ``"fail"``, ``"run"`` (forever) or seconds until completion.
    Patterns are ``fnmatch`` globs; ``kind`` is the top-level owner's kind (``Deployment``, not ``Pod``) or
    ``Pod`` for bare pods.
    """

    kind: str = "*"
    name: str = "*"
    namespace: str = "*"
    ready: str | float | None = None
    terminate_after: float | None = None
    job: str | float | None = None

    def matches(self, kind: str, namespace: str, name: str) -> bool:
        """Whether the rule applies to a workload."""
        return (fnmatch.fnmatchcase(kind, self.kind) and fnmatch.fnmatchcase(namespace, self.namespace)
                and fnmatch.fnmatchcase(name, self.name))


@dataclass
class Behavior:
    """The effective behaviour of one workload (rules folded over the defaults)."""

    ready: str | float = "ready"
    terminate_after: float = 0.0
    job: str | float = "complete"


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.setdefault("metadata", {})
    return meta


def _controller(obj: Obj) -> dict[str, Any] | None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def _owned_by(obj: Obj, uid: str) -> bool:
    ref = _controller(obj)
    return ref is not None and ref.get("uid") == uid


def pod_ready(pod: Obj) -> bool:
    """Whether a pod counts as ready (Ready condition True and not terminating)."""
    if _meta(pod).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def node_is_ready(node: Obj) -> bool:
    """Whether a Node's Ready condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def template_hash(template: Any) -> str:
    """A stable pod-template hash in the alphabet Kubernetes uses (``7d4b9c6f5b``-like)."""
    tpl = copy.deepcopy(template or {})
    (tpl.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    n = int(hashlib.sha256(short_json(tpl).encode()).hexdigest(), 16)
    out = []
    for _ in range(10):
        n, r = divmod(n, len(NAME_ALPHABET))
        out.append(NAME_ALPHABET[r])
    return "".join(out)


def _set_condition(conds: list[Obj], type_: str, status: str, reason: str, message: str) -> list[Obj]:
    """Set a condition, keeping its timestamps when status and reason did not change."""
    out = [dict(c) for c in conds]
    for c in out:
        if c.get("type") == type_:
            if c.get("status") != status or c.get("reason") != reason:
                c.update(status=status, reason=reason, message=message,
                         lastTransitionTime=now_rfc3339(), lastUpdateTime=now_rfc3339())
            else:
                c["message"] = message
            return out
    ts = now_rfc3339()
    out.append({"type": type_, "status": status, "reason": reason, "message": message,
                "lastTransitionTime": ts, "lastUpdateTime": ts})
    return out


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        frac = total * int(value[:-1]) / 100
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(value or 0)


class Simulator:
    """Controllers, scheduler and kubelet for the fake API server, plus the test control API."""

    def __init__(self, store: Store, *, pod_termination_seconds: float = 0.0) -> None:
        self.store = store
        self.rules: list[Rule] = []
        self.defaults = Behavior(terminate_after=pod_termination_seconds)
        self._rr = itertools.count()
        self._ready_at: dict[str, float] = {}
        self._pod_mode: dict[str, str | float] = {}
        self._job_started: dict[str, float] = {}
        self._job_forced: dict[str, str] = {}
        self._ips = itertools.count(10)
        self._lb_ips = itertools.count(200)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._pending_keys: set[str] = set()
        self._timer_cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._timer_loop, name="fakeapi-simulator", daemon=True)
        self._thread.start()
        self.rt = {k: store.rt(k) for k in (*WORKLOAD_KINDS, "Pod", "Node", "PodDisruptionBudget",
                                            "PersistentVolumeClaim", "Service", "Namespace")}
        store.listeners.append(self.on_changes)
        store.deletion_delay = self._deletion_delay

    # --------------------------------------------------------------------------------------------- timers

    def stop(self) -> None:
        """Stop the timer thread."""
        with self._timer_cond:
            self._stopped = True
            self._timer_cond.notify_all()
        self._thread.join(timeout=2)

    def _schedule_once(self, key: str, delay: float, fn: Callable[[], None]) -> None:
        """Schedule ``fn`` unless a timer with the same key is still pending."""
        if key in self._pending_keys:
            return
        self._pending_keys.add(key)

        def run() -> None:
            self._pending_keys.discard(key)
            fn()

        self._schedule(delay, run)

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        with self._timer_cond:
            heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._timer_cond.notify_all()

    def _timer_loop(self) -> None:
        while True:
            with self._timer_cond:
                while not self._stopped and (not self._timers or self._timers[0][0] > time.monotonic()):
                    wait = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._timer_cond.wait(timeout=wait)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._timers)
            try:
                with self.store.txn():
                    fn()
            except Exception as exc:  # keep the timer thread alive; tests check store.errors
                self.store.errors.append(f"timer: {exc!r}")

    # --------------------------------------------------------------------------------------------- rules

    def configure(
        self,
        kind: str = "*",
        name: str = "*",
        namespace: str = "*",
        *,
        ready: str | float | None = None,
        terminate_after: float | None = None,
        job: str | float | None = None,
    ) -> Rule:
        """Add a behaviour rule (later rules win) and re-sync every workload."""
        if isinstance(ready, str) and ready not in ("ready", "never", "crash", "fail"):
            raise ValueError(f"unknown readiness {ready!r}")
        if isinstance(job, str) and job not in ("complete", "fail", "run"):
            raise ValueError(f"unknown job outcome {job!r}")
        rule = Rule(kind, name, namespace, ready, terminate_after, job)
        with self.store.txn():
            self.rules.append(rule)
            if ready is not None:
                # Re-latch the readiness of existing pods only when the rule makes them (more) ready.
                for pod in self.store.raw_items(self.rt["Pod"]):
                    uid = _meta(pod).get("uid", "")
                    if rule.matches(*self.top_owner(pod)) and ready == "ready":
                        self._pod_mode.pop(uid, None)
                        self._ready_at.pop(uid, None)
            self.resync()
        return rule

    def behavior(self, kind: str, namespace: str, name: str) -> Behavior:
        """The effective behaviour of a workload."""
        b = copy.copy(self.defaults)
        for rule in self.rules:
            if rule.matches(kind, namespace, name):
                if rule.ready is not None:
                    b.ready = rule.ready
                if rule.terminate_after is not None:
                    b.terminate_after = rule.terminate_after
                if rule.job is not None:
                    b.job = rule.job
        return b

    def top_owner(self, obj: Obj) -> tuple[str, str, str]:
        """(kind, namespace, name) of the workload that ultimately controls ``obj`` (itself if none)."""
        ns = _meta(obj).get("namespace", "")
        kind, name = str(obj.get("kind", "Pod")), str(_meta(obj).get("name", ""))
        cur = obj
        for _ in range(4):
            ref = _controller(cur)
            if ref is None:
                break
            kind, name = str(ref.get("kind")), str(ref.get("name"))
            rt = self.rt.get(kind)
            parent = self.store.raw(rt, ns, name) if rt is not None else None
            if parent is None:
                break
            cur = parent
        return kind, ns, name

    def resync(self) -> None:
        """Re-reconcile everything (after rules or time-based state changed)."""
        with self.store.txn():
            for kind in ("Pod", *WORKLOAD_KINDS):
                for obj in self.store.raw_items(self.rt[kind]):
                    self._sync(kind, _meta(obj).get("namespace", ""), _meta(obj)["name"])
            for ns in {_meta(p).get("namespace", "") for p in self.store.raw_items(self.rt["PodDisruptionBudget"])}:
                self._sync_pdbs(ns)

    # ---------------------------------------------------------------------------------------- change feed

    def on_changes(self, batch: list[Change]) -> None:
        """Store listener: reconcile whatever the changes touch."""
        dirty: dict[tuple[str, str, str], None] = {}
        pdb_ns: set[str] = set()
        nodes_changed = False
        deleted_ns: set[str] = set()
        for ch in batch:
            if ch.rt.crd is not None:
                if ch.type == "DELETED":
                    deleted_ns.add(_meta(ch.new).get("namespace", ""))
                continue
            kind = ch.rt.kind
            meta = _meta(ch.new)
            ns, name = meta.get("namespace", ""), meta.get("name", "")
            if ch.type == "DELETED" and ns:
                deleted_ns.add(ns)
            if kind in WORKLOAD_KINDS or kind == "Pod":
                if ch.type != "DELETED":
                    dirty[(kind, ns, name)] = None
                ref = _controller(ch.new)
                if ref is not None and ref.get("kind") in WORKLOAD_KINDS:
                    dirty[(str(ref["kind"]), ns, str(ref["name"]))] = None
                if kind == "Pod":
                    pdb_ns.add(ns)
            elif kind == "Node":
                nodes_changed = True
                if ch.type == "DELETED":
                    self._node_gone(name)
            elif kind == "PodDisruptionBudget" and ch.type != "DELETED":
                pdb_ns.add(ns)
            elif kind == "PersistentVolumeClaim" and ch.type != "DELETED":
                self._bind_pvc(ns, name)
            elif kind == "Service" and ch.type != "DELETED":
                self._service_lb(ns, name)
        if nodes_changed:
            for kind in ("Pod", "DaemonSet"):
                for obj in self.store.raw_items(self.rt[kind]):
                    dirty[(kind, _meta(obj).get("namespace", ""), _meta(obj)["name"])] = None
        order = {"Pod": 0, "Job": 1, "ReplicaSet": 2, "StatefulSet": 3, "DaemonSet": 4, "Deployment": 5}
        for kind, ns, name in sorted(dirty, key=lambda k: order.get(k[0], 9)):
            self._sync(kind, ns, name)
        for ns in pdb_ns:
            self._sync_pdbs(ns)
        for ns in deleted_ns:
            self.store.finish_namespace(ns)

    def _sync(self, kind: str, ns: str, name: str) -> None:
        try:
            getattr(self, f"_sync_{kind.lower()}")(ns, name)
        except ApiError as exc:
            if exc.code not in (403, 404, 409):
                raise

    # ----------------------------------------------------------------------------------------------- pods

    def _nodes(self) -> list[Obj]:
        return self.store.raw_items(self.rt["Node"])

    def _schedulable(self, pod: Obj) -> list[Obj]:
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        return [n for n in self._nodes()
                if not (n.get("spec") or {}).get("unschedulable") and node_is_ready(n)
                and all((_meta(n).get("labels") or {}).get(k) == v for k, v in selector.items())]

    def _new_pod(self, owner_rt: ResourceType, owner: Obj, name: str, labels: dict[str, str],
                 node: str | None = None) -> None:
        template = (owner.get("spec") or {}).get("template") or {}
        meta = template.get("metadata") or {}
        om = _meta(owner)
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": om.get("namespace", ""),
                "labels": {**(meta.get("labels") or {}), **labels},
                "ownerReferences": [{
                    "apiVersion": owner_rt.api_version(), "kind": owner_rt.kind, "name": om["name"],
                    "uid": om["uid"], "controller": True, "blockOwnerDeletion": True,
                }],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        if meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(meta["annotations"])
        if node:
            pod["spec"]["nodeName"] = node
        self.store.create(self.rt["Pod"], om.get("namespace", ""), pod, internal=True)

    def _sync_pod(self, ns: str, name: str) -> None:
        pod = self.store.raw(self.rt["Pod"], ns, name)
        if pod is None or _meta(pod).get("deletionTimestamp"):
            return
        new = copy.deepcopy(pod)
        spec, status = new.setdefault("spec", {}), new.setdefault("status", {})
        created = _meta(pod).get("creationTimestamp") or now_rfc3339()
        node_obj: Obj | None = None
        if not spec.get("nodeName"):
            if self._nodes():
                candidates = self._schedulable(pod)
                if not candidates:
                    status.update(phase="Pending", conditions=[{
                        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": f"0/{len(self._nodes())} nodes are available.",
                        "lastTransitionTime": created}])
                    self.store.write(self.rt["Pod"], pod, new)
                    return
                node_obj = candidates[next(self._rr) % len(candidates)]
                spec["nodeName"] = _meta(node_obj)["name"]
        else:
            node_obj = self.store.raw(self.rt["Node"], "", spec["nodeName"])
        kind, ons, oname = self.top_owner(pod)
        behavior = self.behavior(kind, ons, oname)
        phase = "Running"
        terminated = None
        if kind == "Job":
            job = self.store.raw(self.rt["Job"], ns, oname)
            outcome = self._job_outcome(job) if job is not None else None
            if outcome == "success":
                phase, terminated = "Succeeded", {"exitCode": 0, "reason": "Completed"}
            elif outcome == "failed":
                phase, terminated = "Failed", {"exitCode": 1, "reason": "Error"}
        ready = self._ready_now(pod, behavior) and phase == "Running"
        if node_obj is not None and not node_is_ready(node_obj):
            ready = False
        containers = spec.get("containers") or []
        statuses = []
        for c in containers:
            cid = hashlib.sha1((_meta(pod).get("uid", "") + str(c.get("name"))).encode()).hexdigest()
            cs: Obj = {"name": c.get("name"), "image": c.get("image"), "imageID": "",
                       "containerID": f"containerd://{cid}",
                       "ready": ready, "restartCount": 0, "started": phase == "Running"}
            if terminated is not None:
                cs["state"] = {"terminated": {**terminated, "startedAt": created, "finishedAt": created}}
                cs["started"] = False
            elif behavior.ready == "crash" and kind != "Job":
                cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting"}}
                cs["restartCount"] = 3
                cs["started"] = False
            else:
                cs["state"] = {"running": {"startedAt": created}}
            statuses.append(cs)
        rs = "True" if ready else "False"
        status["phase"] = phase
        status["conditions"] = [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": created},
            {"type": "Initialized", "status": "True", "lastTransitionTime": created},
            {"type": "Ready", "status": rs, "lastTransitionTime": created},
            {"type": "ContainersReady", "status": rs, "lastTransitionTime": created},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
        ]
        status["containerStatuses"] = statuses
        status.setdefault("startTime", created)
        if not status.get("podIP"):
            n = next(self._ips)
            status["podIP"] = f"10.42.{n // 250}.{n % 250 + 1}"
            status["podIPs"] = [{"ip": status["podIP"]}]
        if node_obj is not None:
            addrs = (node_obj.get("status") or {}).get("addresses") or []
            ip = next((a["address"] for a in addrs if a.get("type") == "InternalIP"), "")
            if ip:
                status["hostIP"] = ip
                status["hostIPs"] = [{"ip": ip}]
        self.store.write(self.rt["Pod"], pod, new)

    def _ready_now(self, pod: Obj, behavior: Behavior) -> bool:
        # The readiness mode is latched when a pod is first seen: a later never_ready() rule affects the
        # pods created after it (a new rollout), not pods that are already serving.
        mode = self._pod_mode.setdefault(_meta(pod).get("uid", ""), behavior.ready)
        if mode == "ready":
            return True
        if isinstance(mode, (int, float)) and not isinstance(mode, bool):
            uid = _meta(pod).get("uid", "")
            at = self._ready_at.setdefault(uid, time.monotonic() + float(mode))
            left = at - time.monotonic()
            if left <= 0:
                return True
            ns, name = _meta(pod).get("namespace", ""), _meta(pod)["name"]
            self._schedule_once(f"ready:{uid}", left + 0.01, lambda: self._sync_pod(ns, name))
            return False
        return False

    def _deletion_delay(self, rt: ResourceType, pod: Obj) -> float:
        kind, ns, name = self.top_owner(pod)
        delay = float(self.behavior(kind, ns, name).terminate_after or 0.0)
        if delay > 0:
            uid = _meta(pod).get("uid")
            pns, pname = _meta(pod).get("namespace", ""), _meta(pod)["name"]

            def finish() -> None:
                cur = self.store.raw(self.rt["Pod"], pns, pname)
                if cur is not None and _meta(cur).get("uid") == uid and not _meta(cur).get("finalizers"):
                    self.store.remove_now(self.rt["Pod"], pns, pname)

            self._schedule(delay, finish)
        return delay

    def _owned_pods(self, ns: str, uid: str) -> list[Obj]:
        return [p for p in self.store.raw_items(self.rt["Pod"], ns) if _owned_by(p, uid)]

    def _delete_pod(self, pod: Obj) -> None:
        with contextlib.suppress(ApiError):
            self.store.delete(self.rt["Pod"], _meta(pod).get("namespace", ""), _meta(pod)["name"])

    # ----------------------------------------------------------------------------------------- ReplicaSet

    def _sync_replicaset(self, ns: str, name: str) -> None:
        rs = self.store.raw(self.rt["ReplicaSet"], ns, name)
        if rs is None or _meta(rs).get("deletionTimestamp"):
            return
        want = int((rs.get("spec") or {}).get("replicas", 1))
        pods = self._owned_pods(ns, _meta(rs)["uid"])
        active = [p for p in pods if not _meta(p).get("deletionTimestamp")]
        labels = {}
        tpl_hash = (_meta(rs).get("labels") or {}).get("pod-template-hash")
        if tpl_hash:
            labels["pod-template-hash"] = tpl_hash
        for _ in range(want - len(active)):
            self._new_pod(self.rt["ReplicaSet"], rs, f"{name}-{random_suffix()}", labels)
        if len(active) > want:
            victims = sorted(active, key=lambda p: (pod_ready(p), _meta(p).get("creationTimestamp", "")))
            for pod in victims[: len(active) - want]:
                self._delete_pod(pod)
        active = [p for p in self._owned_pods(ns, _meta(rs)["uid"]) if not _meta(p).get("deletionTimestamp")]
        ready = sum(1 for p in active if pod_ready(p))
        new = copy.deepcopy(rs)
        new["status"] = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": _meta(rs).get("generation", 1),
        }
        self.store.write(self.rt["ReplicaSet"], rs, new)

    # ----------------------------------------------------------------------------------------- Deployment

    def _sync_deployment(self, ns: str, name: str) -> None:
        rt = self.rt["Deployment"]
        dep = self.store.raw(rt, ns, name)
        if dep is None or _meta(dep).get("deletionTimestamp"):
            return
        spec = dep.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        h = template_hash(spec.get("template"))
        rss = [r for r in self.store.raw_items(self.rt["ReplicaSet"], ns) if _owned_by(r, _meta(dep)["uid"])]

        def rev(r: Obj) -> int:
            return int((_meta(r).get("annotations") or {}).get("deployment.kubernetes.io/revision", "0") or 0)

        max_rev = max((rev(r) for r in rss), default=0)
        new_rs = next((r for r in rss if (_meta(r).get("labels") or {}).get("pod-template-hash") == h), None)
        if new_rs is None:
            template = copy.deepcopy(spec.get("template") or {})
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = h
            rs_obj: Obj = {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{h}", "namespace": ns,
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {"deployment.kubernetes.io/revision": str(max_rev + 1),
                                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                                    "deployment.kubernetes.io/max-replicas": str(replicas + 1)},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                         "uid": _meta(dep)["uid"], "controller": True,
                                         "blockOwnerDeletion": True}],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            }
            self.store.create(self.rt["ReplicaSet"], ns, rs_obj, internal=True)
            new_rs = self.store.raw(self.rt["ReplicaSet"], ns, f"{name}-{h}")
            assert new_rs is not None
            rss.append(new_rs)
        else:
            upd = copy.deepcopy(new_rs)
            upd["spec"]["replicas"] = replicas
            ann = _meta(upd).setdefault("annotations", {})
            ann["deployment.kubernetes.io/desired-replicas"] = str(replicas)
            if rev(new_rs) < max_rev:
                ann["deployment.kubernetes.io/revision"] = str(max_rev + 1)
            self.store.write(self.rt["ReplicaSet"], new_rs, upd)
            new_rs = self.store.raw(self.rt["ReplicaSet"], ns, _meta(new_rs)["name"]) or new_rs
        new_uid = _meta(new_rs)["uid"]
        new_pods = [p for p in self._owned_pods(ns, new_uid) if not _meta(p).get("deletionTimestamp")]
        new_ready = sum(1 for p in new_pods if pod_ready(p))
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        if recreate or (new_ready >= replicas and len(new_pods) == replicas):
            for r in rss:
                if _meta(r)["uid"] != new_uid and int((r.get("spec") or {}).get("replicas", 0)) != 0:
                    upd = copy.deepcopy(r)
                    upd["spec"]["replicas"] = 0
                    self.store.write(self.rt["ReplicaSet"], r, upd)
        all_pods = [p for r in rss for p in self._owned_pods(ns, _meta(r)["uid"])
                    if not _meta(p).get("deletionTimestamp")]
        ready = sum(1 for p in all_pods if pod_ready(p))
        behavior = self.behavior("Deployment", ns, name)
        new = copy.deepcopy(dep)
        _meta(new).setdefault("annotations", {})["deployment.kubernetes.io/revision"] = (
            (_meta(new_rs).get("annotations") or {}).get("deployment.kubernetes.io/revision", "1"))
        status: Obj = {
            "observedGeneration": _meta(dep).get("generation", 1),
            "replicas": len(all_pods),
            "updatedReplicas": len(new_pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if replicas - ready > 0:
            status["unavailableReplicas"] = replicas - ready
        conds = list((dep.get("status") or {}).get("conditions") or [])
        if ready >= replicas:
            conds = _set_condition(conds, "Available", "True", "MinimumReplicasAvailable",
                                   "Deployment has minimum availability.")
        else:
            conds = _set_condition(conds, "Available", "False", "MinimumReplicasUnavailable",
                                   "Deployment does not have minimum availability.")
        rs_name = _meta(new_rs)["name"]
        if behavior.ready == "fail":
            conds = _set_condition(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                                   f'ReplicaSet "{rs_name}" has timed out progressing.')
        elif new_ready >= replicas and len(all_pods) == len(new_pods):
            conds = _set_condition(conds, "Progressing", "True", "NewReplicaSetAvailable",
                                   f'ReplicaSet "{rs_name}" has successfully progressed.')
        else:
            conds = _set_condition(conds, "Progressing", "True", "ReplicaSetUpdated",
                                   f'ReplicaSet "{rs_name}" is progressing.')
        status["conditions"] = conds
        new["status"] = status
        self.store.write(rt, dep, new)

    # ---------------------------------------------------------------------------------------- StatefulSet

    def _sync_statefulset(self, ns: str, name: str) -> None:
        rt = self.rt["StatefulSet"]
        sts = self.store.raw(rt, ns, name)
        if sts is None or _meta(sts).get("deletionTimestamp"):
            return
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec.get('template'))}"
        uid = _meta(sts)["uid"]
        rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        sel = {k: v for k, v in ((spec.get("selector") or {}).get("matchLabels") or {}).items()}
        for i in range(replicas):
            pname = f"{name}-{i}"
            pod = self.store.raw(self.rt["Pod"], ns, pname)
            if pod is None:
                for tpl in spec.get("volumeClaimTemplates") or []:
                    pvc_name = f"{(tpl.get('metadata') or {}).get('name')}-{pname}"
                    if self.store.raw(self.rt["PersistentVolumeClaim"], ns, pvc_name) is None:
                        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                               "metadata": {"name": pvc_name, "namespace": ns, "labels": dict(sel)},
                               "spec": copy.deepcopy(tpl.get("spec") or {})}
                        self.store.create(self.rt["PersistentVolumeClaim"], ns, pvc, internal=True)
                self._new_pod(rt, sts, pname, {
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pname,
                    "apps.kubernetes.io/pod-index": str(i),
                })
            elif (_owned_by(pod, uid) and rolling and not _meta(pod).get("deletionTimestamp")
                  and (_meta(pod).get("labels") or {}).get("controller-revision-hash") != revision):
                self._delete_pod(pod)
        for pod in self._owned_pods(ns, uid):
            try:
                ordinal = int(_meta(pod)["name"].rsplit("-", 1)[1])
            except (IndexError, ValueError):
                ordinal = -1
            if (ordinal >= replicas or ordinal < 0) and not _meta(pod).get("deletionTimestamp"):
                self._delete_pod(pod)
        active = [p for p in self._owned_pods(ns, uid) if not _meta(p).get("deletionTimestamp")]
        ready = sum(1 for p in active if pod_ready(p))
        updated = sum(1 for p in active if (_meta(p).get("labels") or {}).get("controller-revision-hash") == revision)
        old_status = sts.get("status") or {}
        current_rev = old_status.get("currentRevision") or revision
        if updated >= replicas and ready >= replicas:
            current_rev = revision
        current = sum(1 for p in active
                      if (_meta(p).get("labels") or {}).get("controller-revision-hash") == current_rev)
        new = copy.deepcopy(sts)
        new["status"] = {
            "observedGeneration": _meta(sts).get("generation", 1),
            "replicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "currentRevision": current_rev,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        self.store.write(rt, sts, new)

    # ------------------------------------------------------------------------------------------ DaemonSet

    def _sync_daemonset(self, ns: str, name: str) -> None:
        rt = self.rt["DaemonSet"]
        ds = self.store.raw(rt, ns, name)
        if ds is None or _meta(ds).get("deletionTimestamp"):
            return
        spec = ds.get("spec") or {}
        revision = template_hash(spec.get("template"))
        selector = (((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")) or {}
        nodes = [_meta(n)["name"] for n in self._nodes()
                 if all((_meta(n).get("labels") or {}).get(k) == v for k, v in selector.items())]
        uid = _meta(ds)["uid"]
        pods = [p for p in self._owned_pods(ns, uid) if not _meta(p).get("deletionTimestamp")]
        by_node: dict[str, list[Obj]] = {}
        for p in pods:
            by_node.setdefault((p.get("spec") or {}).get("nodeName", ""), []).append(p)
        for node in nodes:
            mine = by_node.get(node, [])
            if not mine:
                self._new_pod(rt, ds, f"{name}-{random_suffix()}", {
                    "controller-revision-hash": revision,
                    "pod-template-generation": str(_meta(ds).get("generation", 1))}, node=node)
            for p in mine:
                if (_meta(p).get("labels") or {}).get("controller-revision-hash") != revision:
                    self._delete_pod(p)
        for node, mine in by_node.items():
            if node not in nodes:
                for p in mine:
                    self._delete_pod(p)
        pods = [p for p in self._owned_pods(ns, uid) if not _meta(p).get("deletionTimestamp")]
        ready = sum(1 for p in pods if pod_ready(p))
        updated = sum(1 for p in pods if (_meta(p).get("labels") or {}).get("controller-revision-hash") == revision)
        new = copy.deepcopy(ds)
        new["status"] = {
            "observedGeneration": _meta(ds).get("generation", 1),
            "desiredNumberScheduled": len(nodes),
            "currentNumberScheduled": len({(p.get("spec") or {}).get("nodeName") for p in pods}),
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": updated,
            "numberMisscheduled": 0,
        }
        if len(nodes) - ready > 0:
            new["status"]["numberUnavailable"] = len(nodes) - ready
        self.store.write(rt, ds, new)

    # ------------------------------------------------------------------------------------------------ Job

    def _job_outcome(self, job: Obj) -> str | None:
        for c in (job.get("status") or {}).get("conditions") or []:
            if c.get("status") == "True" and c.get("type") == "Complete":
                return "success"
            if c.get("status") == "True" and c.get("type") == "Failed":
                return "failed"
        uid = _meta(job).get("uid", "")
        if uid in self._job_forced:
            return self._job_forced[uid]
        meta = _meta(job)
        mode = self.behavior("Job", meta.get("namespace", ""), meta["name"]).job
        if mode == "complete":
            return "success"
        if mode == "fail":
            return "failed"
        if isinstance(mode, (int, float)) and not isinstance(mode, bool):
            start = self._job_started.setdefault(uid, time.monotonic())
            left = start + float(mode) - time.monotonic()
            if left <= 0:
                return "success"
            ns, name = meta.get("namespace", ""), meta["name"]
            self._schedule_once(f"job:{uid}", left + 0.01, lambda: self._sync_job(ns, name))
        return None

    def _sync_job(self, ns: str, name: str) -> None:
        rt = self.rt["Job"]
        job = self.store.raw(rt, ns, name)
        if job is None or _meta(job).get("deletionTimestamp") or (job.get("spec") or {}).get("suspend"):
            return
        uid = _meta(job)["uid"]
        outcome = self._job_outcome(job)
        pods = self._owned_pods(ns, uid)
        finished = any(c.get("status") == "True" and c.get("type") in ("Complete", "Failed")
                       for c in (job.get("status") or {}).get("conditions") or [])
        if not pods and not finished:
            self._new_pod(rt, job, f"{name}-{random_suffix()}", {})
        for p in self._owned_pods(ns, uid):
            self._sync_pod(ns, _meta(p)["name"])
        pods = self._owned_pods(ns, uid)
        new = copy.deepcopy(job)
        status = new.setdefault("status", {})
        created = _meta(job).get("creationTimestamp") or now_rfc3339()
        status.setdefault("startTime", created)
        completions = int((job.get("spec") or {}).get("completions") or 1)
        conds = list(status.get("conditions") or [])
        if outcome == "success":
            status.update(active=0, ready=0, succeeded=completions, terminating=0)
            status.setdefault("completionTime", now_rfc3339())
            if not any(c.get("type") == "Complete" for c in conds):
                conds = _set_condition(conds, "SuccessCriteriaMet", "True", "CompletionsReached",
                                       "Reached expected number of succeeded pods")
                conds = _set_condition(conds, "Complete", "True", "CompletionsReached",
                                       "Reached expected number of succeeded pods")
        elif outcome == "failed":
            status.update(active=0, ready=0, failed=int((job.get("spec") or {}).get("backoffLimit", 6)) + 1,
                          terminating=0)
            if not any(c.get("type") == "Failed" for c in conds):
                conds = _set_condition(conds, "FailureTarget", "True", "BackoffLimitExceeded",
                                       "Job has reached the specified backoff limit")
                conds = _set_condition(conds, "Failed", "True", "BackoffLimitExceeded",
                                       "Job has reached the specified backoff limit")
        else:
            running = [p for p in pods if not _meta(p).get("deletionTimestamp")]
            status.update(active=len(running), ready=sum(1 for p in running if pod_ready(p)), terminating=0)
        if conds:
            for c in conds:
                c.pop("lastUpdateTime", None)
                c.setdefault("lastProbeTime", c.get("lastTransitionTime"))
            status["conditions"] = conds
        status.setdefault("uncountedTerminatedPods", {})
        self.store.write(rt, job, new)

    def finish_job(self, name: str, namespace: str, outcome: str) -> None:
        """Force a Job's outcome now: ``"success"`` or ``"failed"``."""
        with self.store.txn():
            job = self.store.raw(self.rt["Job"], namespace, name)
            if job is None:
                raise KeyError(f"no Job {namespace}/{name}")
            self._job_forced[_meta(job)["uid"]] = outcome
            self._sync_job(namespace, name)

    # ----------------------------------------------------------------------------------------------- PDBs

    def pdb_numbers(self, pdb: Obj) -> tuple[int, int, int]:
        """(expected pods, currently healthy, desired healthy) for a PodDisruptionBudget."""
        ns = _meta(pdb).get("namespace", "")
        spec = pdb.get("spec") or {}
        pods = [p for p in self.store.raw_items(self.rt["Pod"], ns)
                if not _meta(p).get("deletionTimestamp")
                and selector_object_matches(spec.get("selector"), _meta(p).get("labels"))]
        expected = len(pods)
        healthy = sum(1 for p in pods if pod_ready(p))
        if spec.get("maxUnavailable") is not None:
            desired = max(0, expected - _int_or_percent(spec["maxUnavailable"], expected, True))
        else:
            desired = _int_or_percent(spec.get("minAvailable", 1), expected, True)
        return expected, healthy, desired

    def _sync_pdbs(self, ns: str) -> None:
        rt = self.rt["PodDisruptionBudget"]
        for pdb in self.store.raw_items(rt, ns):
            expected, healthy, desired = self.pdb_numbers(pdb)
            allowed = max(0, healthy - desired)
            new = copy.deepcopy(pdb)
            old = pdb.get("status") or {}
            conds = _set_condition(list(old.get("conditions") or []), "DisruptionAllowed",
                                   "True" if allowed > 0 else "False",
                                   "SufficientPods" if allowed > 0 else "InsufficientPods",
                                   "" if allowed > 0 else "Insufficient pods")
            for c in conds:
                c.pop("lastUpdateTime", None)
                c["observedGeneration"] = _meta(pdb).get("generation", 1)
            new["status"] = {
                "observedGeneration": _meta(pdb).get("generation", 1),
                "expectedPods": expected,
                "currentHealthy": healthy,
                "desiredHealthy": desired,
                "disruptionsAllowed": allowed,
                "conditions": conds,
            }
            self.store.write(rt, pdb, new)

    def evict(self, ns: str, name: str, body: Obj) -> Obj:
        """Handle ``POST pods/NAME/eviction``: 429 when a PodDisruptionBudget would be violated."""
        pod_rt = self.rt["Pod"]
        with self.store.txn():
            pod = self.store.raw(pod_rt, ns, name)
            if pod is None:
                raise ApiError.not_found(pod_rt, name)
            if not _meta(pod).get("deletionTimestamp"):
                pdbs = [p for p in self.store.raw_items(self.rt["PodDisruptionBudget"], ns)
                        if selector_object_matches((p.get("spec") or {}).get("selector"), _meta(pod).get("labels"))]
                if len(pdbs) > 1:
                    raise ApiError(500, "InternalError",
                                   "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                                   "does not support.")
                if pdbs and pod_ready(pod):
                    pdb = pdbs[0]
                    _, healthy, desired = self.pdb_numbers(pdb)
                    if healthy - desired <= 0:
                        pname = _meta(pdb)["name"]
                        raise ApiError(
                            429, "TooManyRequests",
                            "Cannot evict pod as it would violate the pod's disruption budget.",
                            {"causes": [{"reason": "DisruptionBudget",
                                         "message": f"The disruption budget {pname} needs {desired} healthy pods "
                                                    f"and has {healthy} currently"}]},
                        )
                opts = body.get("deleteOptions") or {}
                self.store.delete(pod_rt, ns, name, grace_seconds=opts.get("gracePeriodSeconds"),
                                  preconditions=opts.get("preconditions"))
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    # ----------------------------------------------------------------------------------- nodes, PVC, LB

    def _node_gone(self, node: str) -> None:
        for pod in self.store.raw_items(self.rt["Pod"]):
            if (pod.get("spec") or {}).get("nodeName") == node:
                self.store.remove_now(self.rt["Pod"], _meta(pod).get("namespace", ""), _meta(pod)["name"])

    def _bind_pvc(self, ns: str, name: str) -> None:
        rt = self.rt["PersistentVolumeClaim"]
        pvc = self.store.raw(rt, ns, name)
        if pvc is None or (pvc.get("status") or {}).get("phase") == "Bound":
            return
        new = copy.deepcopy(pvc)
        spec = new.get("spec") or {}
        new["status"] = {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                         "capacity": dict((spec.get("resources") or {}).get("requests") or {})}
        spec.setdefault("volumeName", f"pvc-{_meta(pvc)['uid']}")
        self.store.write(rt, pvc, new)

    def _service_lb(self, ns: str, name: str) -> None:
        rt = self.rt["Service"]
        svc = self.store.raw(rt, ns, name)
        if svc is None or (svc.get("spec") or {}).get("type") != "LoadBalancer":
            return
        if ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            return
        new = copy.deepcopy(svc)
        n = next(self._lb_ips)
        new.setdefault("status", {})["loadBalancer"] = {"ingress": [{"ip": f"10.77.0.{n}", "ipMode": "VIP"}]}
        self.store.write(rt, svc, new)

    def add_node(
        self,
        name: str,
        *,
        ready: bool = True,
        kubelet_version: str = "v1.35.2",
        labels: dict[str, str] | None = None,
        roles: tuple[str, ...] = (),
        unschedulable: bool = False,
        internal_ip: str | None = None,
    ) -> Obj:
        """Create a realistic Node (k3s-like labels, conditions, nodeInfo, addresses)."""
        count = len(self._nodes()) + 1
        ip = internal_ip or f"10.77.0.{10 + count}"
        node_labels = {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
            **{f"node-role.kubernetes.io/{r}": "true" for r in roles},
            **(labels or {}),
        }
        cond = node_ready_condition(ready)
        if not ready:
            cond.update(status="False", reason="KubeletNotReady", message="container runtime is down")
        node: Obj = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": node_labels},
            "spec": {"podCIDR": f"10.42.{count}.0/24", "podCIDRs": [f"10.42.{count}.0/24"]},
            "status": {
                "conditions": [cond],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": kubelet_version, "kubeProxyVersion": kubelet_version},
            },
        }
        if unschedulable:
            node["spec"]["unschedulable"] = True
        return self.store.create(self.rt["Node"], "", node, internal=True)

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Flip a Node's Ready condition (pods on a NotReady node turn unready)."""
        with self.store.txn():
            node = self.store.raw(self.rt["Node"], "", name)
            if node is None:
                raise KeyError(f"no Node {name}")
            new = copy.deepcopy(node)
            conds = [c for c in (new.get("status") or {}).get("conditions") or [] if c.get("type") != "Ready"]
            cond = node_ready_condition(ready)
            if not ready:
                cond.update(status="False", reason="KubeletNotReady", message="container runtime is down")
            new.setdefault("status", {})["conditions"] = [cond, *conds]
            self.store.write(self.rt["Node"], node, new)

    def set_kubelet_version(self, name: str, version: str) -> None:
        """Set a Node's reported kubelet (and kube-proxy) version."""
        with self.store.txn():
            node = self.store.raw(self.rt["Node"], "", name)
            if node is None:
                raise KeyError(f"no Node {name}")
            new = copy.deepcopy(node)
            info = new.setdefault("status", {}).setdefault("nodeInfo", {})
            info["kubeletVersion"] = version
            info["kubeProxyVersion"] = version
            self.store.write(self.rt["Node"], node, new)
