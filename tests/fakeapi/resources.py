"""Test fake: the resource types the fake Kubernetes API server serves (built-in kinds and CRD-registered ones).

A :class:`ResourceType` says where a kind lives (group, versions, plural), whether it is namespaced and which
subresources it has. :class:`Registry` holds the built-in table plus kinds registered at run time by
CustomResourceDefinitions, and resolves the names tests use (``"Deployment"``, ``"deploy"``, ``"pods"``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource (a plural under a group), possibly served at several versions."""

    group: str
    versions: tuple[str, ...]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    crd: str | None = None
    # CRD scale subresource paths (specReplicasPath, statusReplicasPath, labelSelectorPath), JSON-path-ish.
    scale_paths: tuple[str, str, str] | None = None
    generation: bool = True
    list_kind: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """The storage key: (group, plural)."""
        return (self.group, self.plural)

    @property
    def preferred_version(self) -> str:
        """The first served version."""
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        """``group/version`` (or just ``version`` for the core group)."""
        v = version or self.preferred_version
        return f"{self.group}/{v}" if self.group else v

    @property
    def qualified(self) -> str:
        """``plural.group`` as used in API error messages (``deployments.apps``), or ``plural`` for core."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        """Whether the resource has a ``/status`` subresource (main writes then ignore ``.status``)."""
        return "status" in self.subresources


def _rt(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: Iterable[str] = (),
    sub: Iterable[str] = (),
    generation: bool = True,
    categories: Iterable[str] = (),
) -> ResourceType:
    return ResourceType(
        group=group,
        versions=(version,),
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=tuple(short),
        categories=tuple(categories),
        subresources=tuple(sub),
        generation=generation,
    )


ALL = ("all",)

BUILTIN: tuple[ResourceType, ...] = (
    # core/v1
    _rt("", "v1", "namespaces", "Namespace", False, ["ns"], ["status", "finalize"], generation=False),
    _rt("", "v1", "nodes", "Node", False, ["no"], ["status"], generation=False),
    _rt("", "v1", "pods", "Pod", True, ["po"], ["status", "eviction", "log", "binding"], categories=ALL),
    _rt("", "v1", "services", "Service", True, ["svc"], ["status"], generation=False, categories=ALL),
    _rt("", "v1", "endpoints", "Endpoints", True, ["ep"], generation=False),
    _rt("", "v1", "configmaps", "ConfigMap", True, ["cm"], generation=False),
    _rt("", "v1", "secrets", "Secret", True, generation=False),
    _rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], ["status"], generation=False),
    _rt("", "v1", "persistentvolumes", "PersistentVolume", False, ["pv"], ["status"], generation=False),
    _rt("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"], ["token"], generation=False),
    _rt("", "v1", "events", "Event", True, ["ev"], generation=False),
    _rt("", "v1", "limitranges", "LimitRange", True, ["limits"], generation=False),
    _rt("", "v1", "resourcequotas", "ResourceQuota", True, ["quota"], ["status"], generation=False),
    _rt("", "v1", "replicationcontrollers", "ReplicationController", True, ["rc"], ["scale", "status"]),
    # apps/v1
    _rt("apps", "v1", "deployments", "Deployment", True, ["deploy"], ["scale", "status"], categories=ALL),
    _rt("apps", "v1", "statefulsets", "StatefulSet", True, ["sts"], ["scale", "status"], categories=ALL),
    _rt("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"], ["status"], categories=ALL),
    _rt("apps", "v1", "replicasets", "ReplicaSet", True, ["rs"], ["scale", "status"], categories=ALL),
    _rt("apps", "v1", "controllerrevisions", "ControllerRevision", True, generation=False),
    # batch/v1
    _rt("batch", "v1", "jobs", "Job", True, [], ["status"], categories=ALL),
    _rt("batch", "v1", "cronjobs", "CronJob", True, ["cj"], ["status"], categories=ALL),
    # autoscaling/v2
    _rt("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ["hpa"], ["status"]),
    # networking
    _rt("networking.k8s.io", "v1", "ingresses", "Ingress", True, ["ing"], ["status"]),
    _rt("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    _rt("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ["netpol"]),
    _rt("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, generation=False),
    # policy
    _rt("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], ["status"]),
    # storage / node / scheduling / coordination
    _rt("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ["sc"], generation=False),
    _rt("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False, generation=False),
    _rt("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False, generation=False),
    _rt("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ["pc"], generation=False),
    _rt("coordination.k8s.io", "v1", "leases", "Lease", True, generation=False),
    # rbac
    _rt("rbac.authorization.k8s.io", "v1", "roles", "Role", True, generation=False),
    _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, generation=False),
    _rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, generation=False),
    _rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, generation=False),
    # apiextensions
    _rt(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
        ["crd", "crds"], ["status"],
    ),
)

# Subresource discovery metadata: name -> (group, version, kind, verbs). Empty group/version = the parent's.
SUBRESOURCE_INFO: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "status": ("", "", "", ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "log": ("", "v1", "Pod", ("get",)),
    "binding": ("", "v1", "Binding", ("create",)),
    "finalize": ("", "v1", "Namespace", ("update",)),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
}

# Discovery order of groups (core first), as the real API server lists them.
GROUP_ORDER = (
    "",
    "apiextensions.k8s.io",
    "apps",
    "events.k8s.io",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
)


@dataclass
class Registry:
    """Thread-safe table of served resource types; CRDs add and remove entries at run time."""

    _types: dict[tuple[str, str], ResourceType] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        for rt in BUILTIN:
            self._types[rt.key] = rt

    def all(self) -> list[ResourceType]:
        """Every served type, in group discovery order (built-ins, then CRD groups by name)."""
        with self._lock:
            types = list(self._types.values())

        def order(rt: ResourceType) -> tuple[int, str, str]:
            idx = GROUP_ORDER.index(rt.group) if rt.group in GROUP_ORDER else len(GROUP_ORDER)
            return (idx, rt.group, rt.plural)

        return sorted(types, key=order)

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions (preferred first), in discovery order."""
        out: dict[str, list[str]] = {}
        for rt in self.all():
            versions = out.setdefault(rt.group, [])
            for v in rt.versions:
                if v not in versions:
                    versions.append(v)
        return out

    def for_group_version(self, group: str, version: str) -> list[ResourceType]:
        """Types served at ``group/version``."""
        return [rt for rt in self.all() if rt.group == group and version in rt.versions]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at ``group/version/plural``, or None."""
        with self._lock:
            rt = self._types.get((group, plural))
        if rt is None or version not in rt.versions:
            return None
        return rt

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        """The type stored under (group, plural), or None."""
        with self._lock:
            return self._types.get(key)

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        """The type of ``kind`` in ``group``, or None."""
        for rt in self.all():
            if rt.group == group and rt.kind == kind:
                return rt
        return None

    def for_object(self, obj: dict[str, Any]) -> ResourceType | None:
        """The type for an object's ``apiVersion`` and ``kind``."""
        api_version = str(obj.get("apiVersion", ""))
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        return self.by_kind(group, str(obj.get("kind", "")))

    def resolve(self, name: str) -> ResourceType:
        """Resolve a test-friendly name: kind, plural, singular or short name, optionally ``.group``-qualified.

        Raises KeyError when nothing matches.
        """
        want = name.strip()
        group: str | None = None
        if "/" in want:  # "apps/v1/Deployment" or "v1/Pod"
            parts = want.split("/")
            group = parts[0] if len(parts) == 3 else ""
            want = parts[-1]
        elif "." in want:
            want, _, group = want.partition(".")
        low = want.lower()
        for rt in self.all():
            if group is not None and rt.group != group:
                continue
            if low in (rt.kind.lower(), rt.plural, rt.singular) or low in rt.short_names:
                return rt
        raise KeyError(f"no served resource type named {name!r}")

    def register(self, rt: ResourceType) -> None:
        """Serve a new (CRD-defined) type, replacing any previous definition of the same group/plural."""
        with self._lock:
            self._types[rt.key] = rt

    def unregister(self, key: tuple[str, str]) -> None:
        """Stop serving a CRD-defined type."""
        with self._lock:
            rt = self._types.get(key)
            if rt is not None and rt.crd is not None:
                del self._types[key]


def crd_resource_types(crd: dict[str, Any]) -> ResourceType | None:
    """The resource type a CustomResourceDefinition defines (None if it has no served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    if not versions or not names.get("plural") or not names.get("kind"):
        return None
    # The storage version is preferred in discovery; the rest follow in declared order.
    versions.sort(key=lambda v: 0 if v.get("storage") else 1)
    subs: list[str] = []
    scale_paths: tuple[str, str, str] | None = None
    for v in versions:
        sr = v.get("subresources") or {}
        if "status" in sr and "status" not in subs:
            subs.append("status")
        if "scale" in sr and "scale" not in subs:
            subs.append("scale")
            sc = sr["scale"] or {}
            scale_paths = (
                sc.get("specReplicasPath", ".spec.replicas"),
                sc.get("statusReplicasPath", ".status.replicas"),
                sc.get("labelSelectorPath", ""),
            )
    return ResourceType(
        group=str(spec.get("group", "")),
        versions=tuple(str(v["name"]) for v in versions),
        plural=str(names["plural"]),
        singular=str(names.get("singular") or names["kind"].lower()),
        kind=str(names["kind"]),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=tuple(subs),
        crd=str((crd.get("metadata") or {}).get("name", "")),
        scale_paths=scale_paths,
        list_kind=str(names.get("listKind") or ""),
    )
