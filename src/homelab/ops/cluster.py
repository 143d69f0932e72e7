"""The cluster side of day-2 operations: nodes, pods and PVCs read through ``kubectl``, plus the shared bits.

Why ``kubectl`` and not the Python client: draining must be *the* ``kubectl drain`` (PDB-aware eviction with
retries, DaemonSet and emptyDir handling, the timeout semantics operators know from the runbooks), and
one tool for every call keeps the behaviour identical to what an operator would type by hand. Every call
carries ``--request-timeout`` so a dead API server costs seconds, not a hang.

Also here: where the k3s upgrade history lives, the role -> systemd unit rule, the inventory lookups the
operations share, and the "we cordoned this node" annotation that lets a re-run tell its own cordon from
an operator's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homelab import binaries, redact
from homelab.ops.result import OpResult
from homelab.project import Project

Printer = Callable[[str], None]

CORDONED_BY = "homelab.dev/cordoned-by"
SERVER_UNIT = "k3s.service"
AGENT_UNIT = "k3s-agent.service"
K3S_BIN = "/usr/local/bin/k3s"
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


class KubeError(Exception):
    """A kubectl call failed; the message is one line naming the call and kubectl's last words."""


@dataclass(frozen=True)
class Timeouts:
    """How long each wait may take. Tests shrink these; the defaults suit the lab."""

    drain: float = 300.0  # kubectl drain --timeout (PDB-blocked evictions are retried until then)
    ready: float = 600.0  # a node Ready again (with the expected kubelet version) after its restart
    api: float = 300.0  # the API answering again after the server restarts (NFR2: 5 minutes)
    moved: float = 300.0  # evicted pods Running elsewhere
    install: float = 900.0  # the k3s install script on one host (downloads the binary)
    poll: float = 2.0  # between two looks at the cluster


@dataclass(frozen=True)
class Node:
    """What the operations read from a Node object."""

    name: str
    ready: bool
    version: str  # status.nodeInfo.kubeletVersion, e.g. v1.31.4+k3s1 (k3s reports its own version here)
    unschedulable: bool
    control_plane: bool
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def cordoned_by(self) -> str:
        """The operation that cordoned this node, when it is cordoned and we did it; else ""."""
        return self.annotations.get(CORDONED_BY, "") if self.unschedulable else ""


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    node: str
    phase: str
    ready: bool
    owner_kind: str  # "" for a bare pod
    owner_name: str
    owner_uid: str
    waiting_reasons: tuple[str, ...]
    terminating: bool

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def crash_looping(self) -> bool:
        return "CrashLoopBackOff" in self.waiting_reasons


@dataclass(frozen=True)
class Pvc:
    namespace: str
    name: str
    phase: str
    volume: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_node(obj: Mapping[str, Any]) -> Node:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    labels = meta.get("labels") or {}
    return Node(
        name=str(meta.get("name", "")),
        ready=ready,
        version=str((status.get("nodeInfo") or {}).get("kubeletVersion", "")),
        unschedulable=bool((obj.get("spec") or {}).get("unschedulable")),
        control_plane=any(str(labels.get(label, "")).lower() == "true" for label in CONTROL_PLANE_LABELS),
        annotations=dict(meta.get("annotations") or {}),
    )


def parse_pod(obj: Mapping[str, Any]) -> Pod:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None) or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    waiting = tuple(
        str(((cs.get("state") or {}).get("waiting") or {}).get("reason", ""))
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        if (cs.get("state") or {}).get("waiting")
    )
    return Pod(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        node=str((obj.get("spec") or {}).get("nodeName") or ""),
        phase=str(status.get("phase") or "Pending"),
        ready=ready,
        owner_kind=str(owner.get("kind", "")),
        owner_name=str(owner.get("name", "")),
        owner_uid=str(owner.get("uid", "")),
        waiting_reasons=waiting,
        terminating=bool(meta.get("deletionTimestamp")),
    )


def parse_pvc(obj: Mapping[str, Any]) -> Pvc:
    meta = obj.get("metadata") or {}
    return Pvc(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        phase=str((obj.get("status") or {}).get("phase") or "Pending"),
        volume=str((obj.get("spec") or {}).get("volumeName") or ""),
    )


def _tail(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:limit]


class Kube:
    """``kubectl`` against one kubeconfig."""

    def __init__(self, kubeconfig: Path, kubectl: str | None = None, request_timeout: int = 20) -> None:
        self.kubeconfig = kubeconfig
        self._kubectl = kubectl
        self.request_timeout = request_timeout

    @property
    def kubectl(self) -> str:
        if self._kubectl is None:
            try:
                self._kubectl = binaries.kubectl()
            except binaries.BinaryNotFound as exc:
                raise KubeError(str(exc)) from None
        return self._kubectl

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``kubectl ARGS``; never raises for a non-zero exit (the caller reads returncode/stderr)."""
        argv = [self.kubectl, "--kubeconfig", str(self.kubeconfig), f"--request-timeout={self.request_timeout}s",
                *args]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", f"kubectl {args[0]}: no answer within {timeout:.0f}s")
        except OSError as exc:
            return subprocess.CompletedProcess(argv, 127, "", f"cannot run kubectl: {exc}")

    def check(self, *args: str, timeout: float = 60.0) -> str:
        """``kubectl ARGS``, stdout; raises KubeError with kubectl's last line on failure."""
        proc = self.run(*args, timeout=timeout)
        if proc.returncode != 0:
            raise KubeError(f"kubectl {' '.join(args[:3])}: {_tail(proc.stderr or proc.stdout) or 'failed'}")
        return proc.stdout

    def items(self, *args: str) -> list[dict[str, Any]]:
        out = self.check("get", *args, "-o", "json")
        try:
            data = json.loads(out)
        except ValueError:
            raise KubeError(f"kubectl get {' '.join(args)}: not JSON") from None
        items = data.get("items") if isinstance(data, dict) else None
        return [i for i in items or [] if isinstance(i, dict)]

    def nodes(self) -> list[Node]:
        return [parse_node(obj) for obj in self.items("nodes")]

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes() if n.name == name), None)

    def pods(self, namespace: str | None = None) -> list[Pod]:
        scope = ["-n", namespace] if namespace else ["--all-namespaces"]
        return [parse_pod(obj) for obj in self.items("pods", *scope)]

    def pvcs(self) -> list[Pvc]:
        return [parse_pvc(obj) for obj in self.items("persistentvolumeclaims", "--all-namespaces")]

    def api_ready(self) -> tuple[bool, str]:
        """Whether the API server answers ``/readyz``, and what it said when it did not."""
        proc = self.run("get", "--raw", "/readyz", timeout=self.request_timeout + 5)
        if proc.returncode == 0:
            return True, "ok"
        return False, _tail(proc.stderr or proc.stdout) or f"kubectl exited {proc.returncode}"

    def cordon(self, node: str, by: str) -> None:
        """Cordon ``node``, recording that ``by`` did it (annotation first: a crash in between is harmless)."""
        self.check("annotate", "node", node, f"{CORDONED_BY}={by}", "--overwrite")
        self.check("cordon", node)

    def uncordon(self, node: str) -> None:
        """Uncordon ``node`` and drop our annotation (uncordon first, for the same reason as in ``cordon``)."""
        self.check("uncordon", node)
        self.check("annotate", "node", node, f"{CORDONED_BY}-")

    def drain(self, node: str, timeout: float) -> tuple[bool, str]:
        """``kubectl drain`` honouring PodDisruptionBudgets; (ok, kubectl's output) - never raises."""
        proc = self.run(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", f"--timeout={int(max(timeout, 1))}s",
            timeout=timeout + 60,
        )
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def delete_node(self, node: str) -> None:
        self.check("delete", "node", node, "--ignore-not-found", "--wait=true", timeout=120)


def drain_reason(output: str) -> str:
    """The useful part of a failed ``kubectl drain``: who blocked the eviction, else its last line."""
    blocked = re.findall(r'error when evicting pods/"([^"]+)" -n "([^"]+)"', output)
    if "disruption budget" in output and blocked:
        pods = sorted({f"{ns}/{name}" for name, ns in blocked})
        return f"a PodDisruptionBudget does not allow evicting {', '.join(pods)}"
    if "cannot delete" in output.lower():
        line = next(line for line in output.splitlines() if "cannot delete" in line.lower())
        return line.strip()[:300]
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "kubectl drain failed without output"


def kubeconfig_path(project: Project) -> Path:
    """As ``homelab.runstage.kubeconfig_path``: HOMELAB_KUBECONFIG, else the kubeconfig the k3s stage fetched."""
    override = os.environ.get("HOMELAB_KUBECONFIG")
    return Path(override) if override else project.layout.kubeconfig


def kube_for(project: Project) -> Kube | None:
    """A Kube for the project's cluster, or None when there is no kubeconfig (no API to talk to)."""
    path = kubeconfig_path(project)
    return Kube(path) if path.is_file() else None


def no_api_message(project: Project) -> str:
    path = project.layout.rel(kubeconfig_path(project))
    if (inventory_data(project).get("standins") or {}).get("k3s"):
        return (f"no Kubernetes API in environment {project.layout.env} (stand-in k3s, no kubeconfig at {path}): "
                "this operation needs a cluster (HOMELAB_ENV=lab, or HOMELAB_KUBECONFIG)")
    return f"no kubeconfig at {path}: converge the k3s stage first (it fetches one) or set HOMELAB_KUBECONFIG"


def wait_for(check: Callable[[], tuple[bool, str]], timeout: float, poll: float,
             sleep: Callable[[float], None] = time.sleep) -> tuple[bool, str, float]:
    """Call ``check`` until it returns True or ``timeout`` passes: (ok, its last detail, seconds waited).

    A KubeError inside ``check`` counts as "not yet" (the API restarting is exactly what we wait through).
    """
    started = time.monotonic()
    detail = "not checked"
    while True:
        try:
            ok, detail = check()
        except KubeError as exc:
            ok, detail = False, str(exc)
        waited = time.monotonic() - started
        if ok:
            return True, detail, waited
        if waited >= timeout:
            return False, detail, waited
        sleep(min(poll, max(timeout - waited, 0.05)))


# -- inventory -----------------------------------------------------------------------------------------

def inventory_data(project: Project) -> dict[str, Any]:
    assert project.inventory is not None, "the project has no valid inventory"
    return project.inventory.data


def host_entry(project: Project, name: str) -> dict[str, Any] | None:
    return next((dict(h) for h in inventory_data(project)["hosts"] if h.get("name") == name), None)


def role_of(entry: Mapping[str, Any]) -> str:
    """k3s role of an inventory host: server or agent (the same rule as the k3s stage)."""
    return "server" if "server" in entry.get("roles", []) else "agent"


def unit_for(role: str) -> str:
    """The systemd unit k3s runs as for ``role``: only a server ever has k3s.service."""
    if role == "server":
        return SERVER_UNIT
    if role == "agent":
        return AGENT_UNIT
    raise ValueError(f"unknown k3s role {role!r}")


def server_entry(project: Project) -> dict[str, Any]:
    servers = [dict(h) for h in inventory_data(project)["hosts"] if "server" in h.get("roles", [])]
    if not servers:
        raise ValueError(f"{project.layout.rel(project.layout.inventory)} has no host with role server")
    return servers[0]


def state_dir(project: Project) -> Path:
    """build/<env>/state: records operations keep between runs (upgrade history)."""
    return project.layout.build / "state"


# -- progress lines -----------------------------------------------------------------------------------

def _print(text: str) -> None:
    print(text, flush=True)


class Steps:
    """Prints ``[  12.3s] text`` lines with the time since the operation started, and builds its result.

    One instance per operation run. ``out`` defaults to ``print`` (flushed, so doit shows lines as they
    happen during a long drain); tests pass a list's ``append``.
    """

    def __init__(self, title: str, out: Printer | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out or _print
        self._clock = clock
        self.started = clock()
        self.title = title
        self.say(title)

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def say(self, text: str) -> None:
        # Remote programs echo what they please; redact before anything reaches the terminal.
        self._out(f"[{self.elapsed:7.1f}s] {redact.redact(text)}")

    def done(self, message: str, **details: Any) -> OpResult:
        return self._finish(True, message, details)

    def fail(self, message: str, **details: Any) -> OpResult:
        return self._finish(False, message, details)

    def _finish(self, ok: bool, message: str, details: dict[str, Any]) -> OpResult:
        result = OpResult(ok=ok, message=redact.redact(message), seconds=round(self.elapsed, 2), details=details)
        self._out(f"[{self.elapsed:7.1f}s] {result.line()}")
        return result


def duration(seconds: float) -> str:
    """``42s`` / ``3m07s`` / ``1h02m``: how long something took, for humans."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
