"""Test fake: discovery documents, /version and server-side Table printing for the fake Kubernetes API server.

Serves the legacy (non-aggregated) discovery format, which kubectl, helm and the Python client all fall
back to, and a few per-kind Table columns so plain ``kubectl get`` output looks familiar.
"""

from __future__ import annotations

import calendar
import hashlib
import time
from typing import Any

from .resources import STANDARD_VERBS, SUBRESOURCE_INFO, Registry, ResourceType

Obj = dict[str, Any]


def version_info(git_version: str) -> Obj:
    """The /version document with every field the clients' models require."""
    core = git_version.lstrip("v").split("+")[0].split("-")[0]
    major, minor = ([*core.split("."), "0", "0"])[:2]
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": str(max(0, int(minor) - 1)) if minor.isdigit() else minor,
        "gitVersion": git_version,
        "gitCommit": hashlib.sha1(git_version.encode()).hexdigest(),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> Obj:
    """GET /api."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_doc(name: str, versions: list[str]) -> Obj:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(registry: Registry) -> Obj:
    """GET /apis."""
    groups = [_group_doc(g, vs) for g, vs in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> Obj | None:
    """GET /apis/GROUP."""
    versions = registry.groups().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def _resource_entry(rt: ResourceType) -> Obj:
    entry: Obj = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(STANDARD_VERBS),
        "storageVersionHash": hashlib.sha256(f"{rt.group}/{rt.plural}".encode()).hexdigest()[:11],
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def api_resource_list(registry: Registry, group: str, version: str) -> Obj | None:
    """GET /api/v1 or /apis/GROUP/VERSION."""
    types = registry.for_group_version(group, version)
    if not types:
        return None
    resources: list[Obj] = []
    for rt in types:
        resources.append(_resource_entry(rt))
        for sub in rt.subresources:
            g, v, kind, verbs = SUBRESOURCE_INFO.get(sub, ("", "", "", ("get",)))
            sub_entry: Obj = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind or rt.kind,
                "verbs": list(verbs),
            }
            if g or v:
                sub_entry["group"] = g
                sub_entry["version"] = v
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# -------------------------------------------------------------------------------------------------- tables


def _age(ts: str | None) -> str:
    """A ``kubectl``-style age (``42s``, ``5m``, ``3h``, ``2d``) for an RFC 3339 timestamp."""
    if not ts:
        return "<unknown>"
    try:
        then = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<unknown>"
    secs = max(0, int(time.time() - then))
    if secs < 120:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "") -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": name, "priority": priority}


def _pod_cells(o: Obj) -> list[Any]:
    st = o.get("status") or {}
    cs = st.get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    phase = st.get("phase", "Pending")
    for c in cs:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting:
            phase = waiting.get("reason", phase)
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        phase = "Terminating"
    restarts = sum(int(c.get("restartCount", 0)) for c in cs)
    return [f"{ready}/{total}", phase, restarts, st.get("podIP", "<none>"),
            (o.get("spec") or {}).get("nodeName", "<none>")]


def _node_cells(o: Obj) -> list[Any]:
    conds = (o.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
    status = "Ready" if ready else "NotReady"
    if (o.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = (o.get("metadata") or {}).get("labels") or {}
    roles = ",".join(sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")))
    version = ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [status, roles or "<none>", version]


def _deploy_cells(o: Obj) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    return [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0)]


def _svc_cells(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ext = ",".join(i.get("ip", i.get("hostname", "")) for i in ingress) or "<none>"
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []) or "<none>"
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"), ext, ports]


def _job_cells(o: Obj) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    status = "Running"
    for c in st.get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
            status = c["type"]
    return [status, f"{st.get('succeeded', 0)}/{spec.get('completions', 1)}"]


TABLES: dict[str, tuple[list[Obj], Any]] = {
    "Pod": ([_col("Ready"), _col("Status"), _col("Restarts", "integer"), _col("IP", priority=1),
             _col("Node", priority=1)], _pod_cells),
    "Node": ([_col("Status"), _col("Roles"), _col("Version")], _node_cells),
    "Deployment": ([_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer")], _deploy_cells),
    "Service": ([_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)")], _svc_cells),
    "Namespace": ([_col("Status")], lambda o: [(o.get("status") or {}).get("phase", "Active")]),
    "StatefulSet": ([_col("Ready")], lambda o: [
        f"{(o.get('status') or {}).get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 1)}"]),
    "ReplicaSet": ([_col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer")], lambda o: [
        (o.get("spec") or {}).get("replicas", 1), (o.get("status") or {}).get("replicas", 0),
        (o.get("status") or {}).get("readyReplicas", 0)]),
    "DaemonSet": ([_col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                   _col("Up-to-date", "integer"), _col("Available", "integer")], lambda o: [
        (o.get("status") or {}).get(k, 0) for k in ("desiredNumberScheduled", "currentNumberScheduled",
                                                   "numberReady", "updatedNumberScheduled", "numberAvailable")]),
    "Job": ([_col("Status"), _col("Completions")], _job_cells),
    "PodDisruptionBudget": ([_col("Min Available"), _col("Max Unavailable"), _col("Allowed Disruptions", "integer")],
                            lambda o: [str((o.get("spec") or {}).get("minAvailable", "N/A")),
                                       str((o.get("spec") or {}).get("maxUnavailable", "N/A")),
                                       (o.get("status") or {}).get("disruptionsAllowed", 0)]),
    "Secret": ([_col("Type"), _col("Data", "integer")], lambda o: [o.get("type", "Opaque"), len(o.get("data") or {})]),
    "ConfigMap": ([_col("Data", "integer")], lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {})]),
    "PersistentVolumeClaim": ([_col("Status"), _col("Volume"), _col("Capacity")], lambda o: [
        (o.get("status") or {}).get("phase", "Pending"), (o.get("spec") or {}).get("volumeName", ""),
        ((o.get("status") or {}).get("capacity") or {}).get("storage", "")]),
}


def to_table(rt: ResourceType, items: list[Obj], resource_version: str, include_object: str) -> Obj:
    """Render objects as a ``meta.k8s.io/v1`` Table (what ``kubectl get`` asks for)."""
    extra_cols, cells_fn = TABLES.get(rt.kind, ([], lambda o: []))
    if rt.crd is not None:
        extra_cols, cells_fn = [], lambda o: []
    columns = [_col("Name", fmt="name"), *extra_cols, _col("Age")]
    # Age sits before IP/Node for pods and before Version for nodes, as in real kubectl output.
    age_at = {"Pod": 3, "Node": 2}.get(rt.kind, len(extra_cols)) if rt.crd is None else 0
    rows = []
    for obj in items:
        meta = obj.get("metadata") or {}
        extra = list(cells_fn(obj))
        cells = [meta.get("name"), *extra[:age_at], _age(meta.get("creationTimestamp")), *extra[age_at:]]
        if include_object == "None":
            row_obj: Obj | None = None
        elif include_object == "Object":
            row_obj = obj
        else:
            row_obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
        row: Obj = {"cells": cells}
        if row_obj is not None:
            row["object"] = row_obj
        rows.append(row)
    columns = [columns[0], *extra_cols[:age_at], columns[-1], *extra_cols[age_at:]]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }


# ------------------------------------------------------------------------------------------------- openapi


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_root(registry: Registry) -> Obj:
    """GET /openapi/v3: one entry per served group/version."""
    paths: Obj = {}
    for group, versions in registry.groups().items():
        for version in versions:
            types = registry.for_group_version(group, version)
            digest = hashlib.sha256(repr([(t.plural, t.kind) for t in types]).encode()).hexdigest()[:16].upper()
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def openapi_v3_group_version(registry: Registry, group: str, version: str) -> Obj | None:
    """GET /openapi/v3/api/v1 or /openapi/v3/apis/GROUP/VERSION: a minimal document.

    It declares, for each kind, a PATCH operation that accepts ``fieldValidation``. kubectl and helm check
    exactly that to decide that the server validates fields itself, and then skip client-side schema
    validation, so they work without ``--validate=false`` / ``--disable-openapi-validation``. Schemas are
    permissive (``x-kubernetes-preserve-unknown-fields``).
    """
    types = registry.for_group_version(group, version)
    if not types:
        return None
    paths: Obj = {}
    schemas: Obj = {}
    prefix = "/" + _gv_path(group, version)
    for rt in types:
        gvk = {"group": rt.group, "version": version, "kind": rt.kind}
        item = f"{prefix}/namespaces/{{namespace}}/{rt.plural}/{{name}}" if rt.namespaced \
            else f"{prefix}/{rt.plural}/{{name}}"
        schema_name = f"io.k8s.fake.{rt.group or 'core'}.{version}.{rt.kind}"
        ref = {"$ref": f"#/components/schemas/{schema_name}"}
        response = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        paths[item] = {
            "get": {"operationId": f"read{rt.kind}", "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk, "responses": response},
            "patch": {
                "operationId": f"patch{rt.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": response,
            },
        }
        schemas[schema_name] = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [gvk],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (fake)", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
