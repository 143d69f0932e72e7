"""The lab's rules for rendered objects, beyond what a schema can say. One Violation per finding.

Rules (errors unless noted):
- tls: every Traefik IngressRoute has ``spec.tls``; every Ingress has a non-empty ``spec.tls``.
- resources: every container and init container of a Pod or workload sets requests and limits for cpu
  and memory (one node runs everything; an unbounded pod starves the others).
- image: every container image is pinned: a tag that is not ``latest``, or a digest.
- storage: PersistentVolumeClaims and StatefulSet volumeClaimTemplates use the intended StorageClass
  (the nfs-provisioner release's ``storageclass`` export, else ``nfs-client``). A claim without
  ``storageClassName`` gets the cluster default: a *warning*, because k3s ships its own default
  (local-path) and a second default class silently wins by creation time.
- namespace: every namespaced object lands in a namespace of the inventory's namespace table
  (objects without ``metadata.namespace`` land in the release's namespace, as Helm applies them).
- loadbalancer: a Service of type LoadBalancer asks for addresses inside ``network.metallb_pool``
  (``spec.loadBalancerIP`` or the MetalLB ``loadBalancerIPs`` annotation). Asking for none is a
  *warning*: MetalLB then picks any free pool address, which can change when the Service is recreated
  and breaks DNS records pointing at it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from homelab.problems import dotted
from homelab.project import Project
from homelab.releases import Release
from homelab.violations import Violation, for_object

DEFAULT_STORAGE_CLASS = "nfs-client"
STORAGE_RELEASE = "nfs-provisioner"
LB_ANNOTATIONS = ("metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs")

# Kinds without a namespace. Objects of other kinds are treated as namespaced.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "CSIDriver", "CSINode", "VolumeAttachment",
    "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "APIService", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "PriorityClass", "RuntimeClass", "IngressClass",
    "ClusterIssuer", "CertificateSigningRequest", "FlowSchema", "PriorityLevelConfiguration", "IPAddress",
    "ServiceCIDR", "DeviceClass", "ResourceSlice", "ClusterPolicy", "NodeFeatureRule", "ClusterTriggerAuthentication",
})

# Where a kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


@dataclass(frozen=True)
class Context:
    """What the rules need to know beyond the object itself."""

    release: str
    namespace: str  # the release's namespace (objects without one land there)
    namespaces: frozenset[str]  # the inventory's namespace table
    storage_class: str
    pool: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None


Rule = Callable[[dict[str, Any], Context], Iterator[Violation]]


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, container) for every container and init container of a pod-bearing object."""
    path = POD_SPEC_PATHS.get(str(obj.get("kind")))
    if path is None:
        return
    spec = _get(obj, path)
    if not isinstance(spec, dict):
        return
    for key in ("initContainers", "containers"):
        items = spec.get(key)
        for i, container in enumerate(items if isinstance(items, list) else []):
            if isinstance(container, dict):
                yield dotted((*path, key, i)), container


# -- the rules ---------------------------------------------------------------------------------------------

def rule_tls(obj: dict[str, Any], ctx: Context) -> Iterator[Violation]:
    kind = obj.get("kind")
    api = str(obj.get("apiVersion", ""))
    if kind == "IngressRoute" and api.startswith(("traefik.io/", "traefik.containo.us/")):
        if _get(obj, ("spec", "tls")) is None:
            yield for_object(ctx.release, obj, "spec.tls", "IngressRoute has no TLS: set spec.tls "
                                                            "(secretName from a cert-manager Certificate)")
    elif kind == "Ingress":
        tls = _get(obj, ("spec", "tls"))
        if not isinstance(tls, list) or not tls:
            yield for_object(ctx.release, obj, "spec.tls", "Ingress has no TLS: add a spec.tls entry")


def rule_resources(obj: dict[str, Any], ctx: Context) -> Iterator[Violation]:
    for where, container in _containers(obj):
        resources = container.get("resources")
        resources = resources if isinstance(resources, dict) else {}
        missing = []
        for group in ("requests", "limits"):
            values = resources.get(group)
            values = values if isinstance(values, dict) else {}
            missing += [f"{group}.{r}" for r in ("cpu", "memory") if values.get(r) in (None, "")]
        if missing:
            yield for_object(ctx.release, obj, f"{where}.resources",
                             f"container {container.get('name', '?')} lacks {', '.join(missing)}")


def rule_image(obj: dict[str, Any], ctx: Context) -> Iterator[Violation]:
    from homelab.rules import IMAGE_REF

    for where, container in _containers(obj):
        image = container.get("image")
        name = container.get("name", "?")
        if not isinstance(image, str) or not image:
            yield for_object(ctx.release, obj, f"{where}.image", f"container {name} has no image")
            continue
        m = IMAGE_REF.match(image)
        if not m:
            yield for_object(ctx.release, obj, f"{where}.image", f"{image!r} is not an image reference")
        elif m.group("digest"):
            continue
        elif not m.group("tag"):
            yield for_object(ctx.release, obj, f"{where}.image", f"image {image} has no tag: pin a version or digest")
        elif m.group("tag") == "latest":
            yield for_object(ctx.release, obj, f"{where}.image", f"image {image} uses the tag latest: "
                                                                  "pin a version or digest")


def _claim_specs(obj: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(field path of storageClassName, claim name, claim spec) of a PVC or a StatefulSet's templates."""
    kind = obj.get("kind")
    if kind == "PersistentVolumeClaim":
        spec = obj.get("spec")
        yield "spec.storageClassName", str(_get(obj, ("metadata", "name"))), spec if isinstance(spec, dict) else {}
    elif kind == "StatefulSet":
        templates = _get(obj, ("spec", "volumeClaimTemplates"))
        for i, tpl in enumerate(templates if isinstance(templates, list) else []):
            spec = tpl.get("spec") if isinstance(tpl, dict) else None
            yield (f"spec.volumeClaimTemplates[{i}].spec.storageClassName", str(_get(tpl, ("metadata", "name"))),
                   spec if isinstance(spec, dict) else {})


def rule_storage(obj: dict[str, Any], ctx: Context) -> Iterator[Violation]:
    for where, claim, spec in _claim_specs(obj):
        if "storageClassName" not in spec or spec["storageClassName"] is None:
            yield for_object(ctx.release, obj, where,
                             f"claim {claim} has no storageClassName and gets the cluster's default class: "
                             f"set {ctx.storage_class}", severity="warning")
        elif spec["storageClassName"] != ctx.storage_class:
            yield for_object(ctx.release, obj, where,
                             f"claim {claim} uses StorageClass {spec['storageClassName']!r}, "
                             f"not {ctx.storage_class!r}")


def rule_namespace(obj: dict[str, Any], ctx: Context) -> Iterator[Violation]:
    kind = obj.get("kind")
    if kind == "Namespace":
        name = _get(obj, ("metadata", "name"))
        if name not in ctx.namespaces:
            yield for_object(ctx.release, obj, "metadata.name",
                             f"namespace {name} is not in the inventory's namespace table")
        return
    if kind in CLUSTER_SCOPED:
        return
    ns = _get(obj, ("metadata", "namespace"))
    if ns is None:
        ns, where = ctx.namespace, "metadata.namespace"
        if ns in ctx.namespaces:
            return
        yield for_object(ctx.release, obj, where, f"lands in the release namespace {ns}, which is not in the "
                                                  "inventory's namespace table")
    elif ns not in ctx.namespaces:
        yield for_object(ctx.release, obj, "metadata.namespace",
                         f"namespace {ns} is not in the inventory's namespace table")


def rule_loadbalancer(obj: dict[str, Any], ctx: Context) -> Iterator[Violation]:
    if obj.get("kind") != "Service" or _get(obj, ("spec", "type")) != "LoadBalancer" or ctx.pool is None:
        return
    start, end = ctx.pool
    pool = f"{start}-{end}"
    asked: list[tuple[str, str]] = []
    ip = _get(obj, ("spec", "loadBalancerIP"))
    if ip:
        asked.append(("spec.loadBalancerIP", str(ip)))
    annotations = _get(obj, ("metadata", "annotations"))
    for key in LB_ANNOTATIONS:
        value = annotations.get(key) if isinstance(annotations, dict) else None
        if value:
            asked += [(f"metadata.annotations.{key}", part.strip()) for part in str(value).split(",") if part.strip()]
    if not asked:
        yield for_object(ctx.release, obj, "spec.type",
                         f"LoadBalancer Service asks for no address: MetalLB picks any free one from {pool}, "
                         f"which can change; set the {LB_ANNOTATIONS[0]} annotation", severity="warning")
        return
    for where, text in asked:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            yield for_object(ctx.release, obj, where, f"{text!r} is not an IP address")
            continue
        if not (isinstance(addr, ipaddress.IPv4Address) and start <= addr <= end):
            yield for_object(ctx.release, obj, where, f"{text} is outside the MetalLB pool {pool}")


RULES: dict[str, Rule] = {
    "tls": rule_tls,
    "resources": rule_resources,
    "image": rule_image,
    "storage": rule_storage,
    "namespace": rule_namespace,
    "loadbalancer": rule_loadbalancer,
}


# -- entry points -------------------------------------------------------------------------------------------

def intended_storage_class(project: Project) -> str:
    """The storage release's ``storageclass`` export (placeholders resolved), else nfs-client.

    The storage release is nfs-provisioner; failing that, the one release exporting a value of type
    storageclass (test trees name it differently).
    """
    from homelab.inputs import export_value

    exporters = [r for r in project.releases
                 if any(e.get("type") == "storageclass" for e in r.exports.values())]
    chosen = next((r for r in exporters if r.name == STORAGE_RELEASE), exporters[0] if len(exporters) == 1 else None)
    if chosen is None:
        return DEFAULT_STORAGE_CLASS
    key = "storageclass" if "storageclass" in chosen.exports else next(
        k for k, e in sorted(chosen.exports.items()) if e.get("type") == "storageclass")
    return str(export_value(project, f"{chosen.name}.{key}"))


def context(project: Project, release: Release) -> Context:
    assert project.inventory is not None
    pool_data = project.inventory.data.get("network", {}).get("metallb_pool")
    pool = None
    if isinstance(pool_data, dict):
        try:
            pool = (ipaddress.IPv4Address(pool_data["start"]), ipaddress.IPv4Address(pool_data["end"]))
        except (KeyError, ValueError):
            pool = None
    return Context(release.name, release.namespace, frozenset(project.inventory.namespaces),
                   intended_storage_class(project), pool)


def check_objects(objects: list[dict[str, Any]], ctx: Context) -> list[Violation]:
    found: list[Violation] = []
    for obj in objects:
        if isinstance(obj, dict):
            for rule in RULES.values():
                found += rule(obj, ctx)
    return found


def check(project: Project, release: Release, objects: list[dict[str, Any]]) -> list[Violation]:
    """Every policy violation of a release's rendered objects, object by object, rule by rule."""
    return check_objects(objects, context(project, release))
