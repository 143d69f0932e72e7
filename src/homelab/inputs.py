"""Each task's inputs, normalized and secret-free, and the input digest built from them.

Host task: the host's inventory entry, the top-level inventory keys its stage reads, the digest of every
file of code it runs, the HMACs of the secrets it uses, and the result digests of its upstream tasks.
Release task: its parsed release.yaml, values.yaml and manifests, the chart pin (or our chart's content
digest), the inventory values and referenced exports it reads, secret HMACs, upstream result digests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homelab import schema, stamps
from homelab.digest import digest, file_digest
from homelab.placeholders import substitute
from homelab.project import Project
from homelab.stages import deploy_files

# Bump when the release driver's behaviour changes in a way that must re-apply every release.
RELEASE_DRIVER_VERSION = 2


def task_inputs(project: Project, task: str) -> dict[str, Any]:
    node = project.graph.nodes[task]
    inputs = host_inputs(project, node.stage, node.host) if node.kind == "host" else release_inputs(project, task)
    inputs["upstream"] = {dep: upstream_digest(project, dep) for dep in node.deps}
    return inputs


def upstream_digest(project: Project, dep: str) -> str:
    """What a task consumes of one upstream task: a host stage's whole result (its facts), a release's
    chart identity (its exports reach consumers through ${ref:} values, which are inputs of their own)."""
    if project.graph.nodes[dep].kind == "release":
        return stamps.chart_digest(project.layout.stamps, dep)
    return stamps.result_digest(project.layout.stamps, dep)


def input_digest(inputs: dict[str, Any]) -> str:
    return digest(inputs)


def host_inputs(project: Project, stage_name: str, host_name: str) -> dict[str, Any]:
    assert project.inventory is not None and project.secrets is not None
    inv = project.inventory
    stage = project.stage(stage_name)
    root = project.layout.root
    return {
        "kind": "host",
        "schema": schema.schema_version(project.schema_dir, "inventory.schema.json"),
        "inventory": {
            "environment": inv.env,
            "host": inv.host(host_name).data,
            **{key: inv.data[key] for key in stage.reads if key in inv.data},
        },
        "code": {_code_key(root, p): file_digest(p) for p in deploy_files(root, stage_name, stage.code)},
        "secrets": {name: project.secrets.hmac(name) for name in stage.secrets},
    }


def _code_key(root: Path, path: Path) -> str:
    """A code file's name in the inputs: repo-relative, or package-relative for the engine's own modules."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return "src/homelab/" + str(path.relative_to(Path(__file__).resolve().parent))


def release_inputs(project: Project, name: str) -> dict[str, Any]:
    assert project.inventory is not None and project.secrets is not None
    release = project.release(name)
    files: dict[str, Any] = {f"{release.rel_dir}/release.yaml": release.spec}
    if (release.dir / "values.yaml").exists():
        files[f"{release.rel_dir}/values.yaml"] = release.values_file
    files.update(release.manifests)
    inventory: dict[str, Any] = {"environment": project.inventory.env}
    refs: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for _, ph in release.placeholders():
        if ph.kind == "inv":
            inventory[ph.target] = project.inventory.lookup(ph.target)
        elif ph.kind == "ref":
            refs[ph.target] = export_value(project, ph.target)
        elif ph.kind == "secret":
            secrets[ph.target] = project.secrets.hmac(ph.target)
    chart = dict(release.chart or {})
    if "path" in chart:
        chart["digest"] = release.chart_digest(project.layout.root)
    else:
        locked = project.chart_lock.get(release.name, {}).get("sha256")
        if locked:
            chart["lock_sha256"] = locked
    inputs: dict[str, Any] = {
        "kind": "release",
        "schema": schema.schema_version(project.schema_dir, "release.schema.json"),
        "driver": RELEASE_DRIVER_VERSION,
        "files": files,
        "chart": chart,
        "inventory": inventory,
        "refs": refs,
        "secrets": secrets,
        # rendered objects are validated against these: a schema fix re-validates every release
        "crd_schemas": _crd_schema_digest(project),
    }
    from homelab.resolve import gpu_mode_overrides

    overrides = gpu_mode_overrides(project, release)
    if overrides:
        inputs["gpu_mode"] = {"mode": "gaming", "values": overrides}
    return inputs


_CRD_CACHE: dict[str, str] = {}


def _crd_schema_digest(project: Project) -> str:
    if "digest" not in _CRD_CACHE:
        base = project.schema_dir / "crds"
        files = sorted(base.glob("*.json")) if base.is_dir() else []
        _CRD_CACHE["digest"] = digest({p.name: file_digest(p) for p in files})
    return _CRD_CACHE["digest"]


def export_value(project: Project, target: str) -> Any:
    """The value of ``RELEASE.EXPORT`` with the producer's inventory placeholders resolved."""
    assert project.inventory is not None
    inv = project.inventory
    release_name, _, export = target.partition(".")
    raw = project.release(release_name).exports[export]["value"]

    def resolve(kind: str, path: str) -> Any:
        if kind == "inv":
            return inv.lookup(path)
        return f"<{kind}:{path}>"

    return substitute(raw, resolve)
