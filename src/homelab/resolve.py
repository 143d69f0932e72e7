"""Resolving a release's placeholders for rendering (secrets as references) or applying (secret values)."""

from __future__ import annotations

from typing import Any

from homelab.inputs import export_value
from homelab.placeholders import substitute
from homelab.project import Project
from homelab.releases import Release


def secret_reference(name: str) -> str:
    """What a secret looks like in rendered output, plans and build/: its name, never its value."""
    return f"<secret:{name}>"


def resolver(project: Project, *, with_secrets: bool) -> Any:
    assert project.inventory is not None and project.secrets is not None
    inv, secrets = project.inventory, project.secrets

    def resolve(kind: str, target: str) -> Any:
        if kind == "inv":
            return inv.lookup(target)
        if kind == "ref":
            return export_value(project, target)
        return secrets.value(target) if with_secrets else secret_reference(target)

    return resolve


def gpu_mode_overrides(project: Project, release: Release) -> dict[str, Any]:
    """In gaming mode, the vLLM release's values with every model at replicas 0 ({} otherwise).

    A converge must never bring vLLM back while the GPU is lent to Steam. The state file is checked before
    importing the GPU code, which stays off the no-op path when no switch was ever recorded.
    """
    if release.name != "vllm" or not (project.layout.build / "state" / "gpu-mode.json").exists():
        return {}
    from homelab.ops import gpu_state

    return gpu_state.replica_overrides(project.layout, release)


def resolved_values(project: Project, release: Release, *, with_secrets: bool = False) -> dict[str, Any]:
    from homelab.releases import deep_merge

    base = deep_merge(release.values, gpu_mode_overrides(project, release))
    values: dict[str, Any] = substitute(base, resolver(project, with_secrets=with_secrets))
    return values


def resolved_manifests(project: Project, release: Release, *, with_secrets: bool = False) -> list[dict[str, Any]]:
    resolve = resolver(project, with_secrets=with_secrets)
    docs: list[dict[str, Any]] = []
    for rel in sorted(release.manifests):
        for doc in release.manifests[rel]:
            out = substitute(doc, resolve)
            if _namespaced(out):
                out.setdefault("metadata", {}).setdefault("namespace", release.namespace)
            docs.append(out)
    return docs


_CLUSTER_SCOPED = {"Namespace", "ClusterIssuer", "ClusterRole", "ClusterRoleBinding", "StorageClass",
                   "RuntimeClass", "CustomResourceDefinition", "PersistentVolume", "PriorityClass",
                   "IngressClass", "Node"}


def _namespaced(doc: dict[str, Any]) -> bool:
    return doc.get("kind") not in _CLUSTER_SCOPED
