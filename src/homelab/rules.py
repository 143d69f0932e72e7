"""Rules across files that no schema can express: the graph, pins, namespaces, references, GPU memory.

Each rule returns Problems; ``doit check`` prints all of them, and any error blocks every action.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from homelab.graph import Graph
from homelab.inventory import Inventory
from homelab.problems import Problem, dotted
from homelab.releases import Release

EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
IMAGE_REF = re.compile(r"^(?P<name>[^@\s]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def _rel(release: Release) -> str:
    return f"{release.rel_dir}/release.yaml"


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"


def needs_problems(releases: list[Release], stage_names: list[str], broken: list[str]) -> list[Problem]:
    """``broken``: release directories whose release.yaml did not load (already reported; not unknown)."""
    problems: list[Problem] = []
    release_names = [r.name for r in releases]
    known = release_names + stage_names + broken
    for r in releases:
        if r.name in stage_names:
            problems.append(Problem(_rel(r), "name", f"{r.name!r} is also a host stage name",
                                    "rename the release; needs: would be ambiguous"))
        for i, need in enumerate(r.needs):
            if need == r.name:
                problems.append(Problem(_rel(r), f"needs[{i}]", "a release cannot need itself", "remove it"))
            elif need not in known:
                problems.append(Problem(_rel(r), f"needs[{i}]", f"unknown needs name {need!r}", _suggest(need, known)))
    return problems


def cycle_problems(graph: Graph, releases: list[Release]) -> list[Problem]:
    cycle = graph.find_cycle()
    if not cycle:
        return []
    first = next((r for r in releases if r.name == cycle[0]), None)
    where = _rel(first) if first else "releases"
    return [Problem(where, "needs", f"dependency cycle: {' -> '.join(cycle)}", "remove one of these needs")]


def root_problems(graph: Graph, releases: list[Release]) -> list[Problem]:
    """Every release must reach the k3s host stage: there is no cluster to apply to before it."""
    problems: list[Problem] = []
    by_name = {r.name: r for r in releases}
    for r in releases:
        seen: set[str] = set()
        todo = [r.name]
        reaches = False
        while todo:
            name = todo.pop()
            if name in seen or name not in graph.nodes:
                continue
            seen.add(name)
            node = graph.nodes[name]
            if node.kind == "host" and node.stage == "k3s":
                reaches = True
                break
            todo.extend(node.deps)
        if not reaches and not graph.find_cycle():
            problems.append(Problem(_rel(by_name[r.name]), "needs", "does not depend on the k3s host stage, "
                                    "directly or through other releases", "add needs: [k3s] or a release that has it"))
    return problems


def chart_problems(root: Path, releases: list[Release]) -> list[Problem]:
    problems: list[Problem] = []
    for r in releases:
        chart = r.chart
        if chart is None:
            if not r.manifests:
                problems.append(Problem(_rel(r), "chart", "release has neither a chart nor manifests",
                                        "add chart: {repo, name, version}, chart: {path} or manifests/*.yaml"))
            continue
        if "version" in chart:
            version = str(chart["version"])
            if not EXACT_VERSION.match(version):
                problems.append(Problem(_rel(r), "chart.version", f"{version!r} is not an exact version",
                                        "pin one release like 1.2.3 (no latest, ranges or wildcards)"))
        if "path" in chart and not (root / chart["path"] / "Chart.yaml").exists():
            problems.append(Problem(_rel(r), "chart.path", f"{chart['path']}/Chart.yaml not found",
                                    "charts we own live in charts/<name>/ with a Chart.yaml"))
    return problems


def _image_problem(where: str, field: str, ref: str) -> Problem | None:
    if "${" in ref:
        return None
    m = IMAGE_REF.match(ref)
    if not m:
        return Problem(where, field, f"{ref!r} is not an image reference", "write registry/name:tag")
    tag, digest = m.group("tag"), m.group("digest")
    if tag == "latest":
        return Problem(where, field, f"image {ref!r} uses the tag latest", "pin an exact version tag or a digest")
    if not tag and not digest:
        return Problem(where, field, f"image {ref!r} has no tag", "pin an exact version tag or a digest")
    return None


def image_problems(releases: list[Release]) -> list[Problem]:
    """Image tags are never latest (or missing) in values and extra manifests."""
    problems: list[Problem] = []
    for r in releases:
        docs: list[tuple[str, Any, tuple[object, ...]]] = [(f"{r.rel_dir}/values.yaml", r.values_file, ()),
                                                         (_rel(r), r.spec.get("values", {}), ("values",))]
        for rel, manifest_docs in r.manifests.items():
            docs += [(rel, doc, (i,)) for i, doc in enumerate(manifest_docs)]
        for where, doc, prefix in docs:
            problems += _images_in(where, doc, prefix)
    return problems


def _images_in(where: str, doc: Any, prefix: tuple[object, ...]) -> list[Problem]:
    problems: list[Problem] = []

    def visit(node: Any, path: tuple[object, ...]) -> None:
        if isinstance(node, dict):
            image = node.get("image")
            if isinstance(image, str):
                p = _image_problem(where, dotted((*path, "image")), image)
                if p:
                    problems.append(p)
            if "repository" in node and "tag" in node and isinstance(node.get("repository"), str):
                tag = str(node["tag"])
                if tag in ("latest", ""):
                    problems.append(Problem(where, dotted((*path, "tag")), f"image {node['repository']} tag is "
                                            f"{tag or 'empty'}", "pin an exact version tag"))
            for key, value in node.items():
                visit(value, (*path, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, (*path, i))

    visit(doc, prefix)
    return problems


def namespace_problems(inv: Inventory, releases: list[Release]) -> list[Problem]:
    problems: list[Problem] = []
    table = inv.namespaces
    for r in releases:
        if r.namespace not in table:
            problems.append(Problem(_rel(r), "namespace", f"{r.namespace!r} is not in the namespace table",
                                    f"use one of {', '.join(table)} or add it to {inv.rel} namespaces"))
        for rel, docs in r.manifests.items():
            for i, doc in enumerate(docs):
                meta = doc.get("metadata")
                ns = meta.get("namespace") if isinstance(meta, dict) else None  # a non-mapping is reported on load
                if isinstance(ns, str) and "${" not in ns and ns not in table:
                    problems.append(Problem(rel, f"[{i}].metadata.namespace", f"{ns!r} is not in the namespace table",
                                            f"use one of {', '.join(table)}"))
    return problems


def placeholder_problems(inv: Inventory, releases: list[Release], broken: list[str]) -> list[Problem]:
    """${ref:} must name a release and one of its exports; ${inv:} must exist in the inventory."""
    problems: list[Problem] = []
    by_name = {r.name: r for r in releases}
    for r in releases:
        for where, ph in r.placeholders():
            if ph.kind == "ref":
                release_name, _, export = ph.target.partition(".")
                producer = by_name.get(release_name)
                if producer is None and release_name in broken:
                    continue
                if producer is None:
                    problems.append(Problem(where, ph.field, f"reference to unknown release {release_name!r}",
                                            _suggest(release_name, list(by_name))))
                elif producer.name == r.name:
                    problems.append(Problem(where, ph.field, "a release cannot reference its own export",
                                            "write the value directly"))
                elif export not in producer.exports:
                    known = list(producer.exports) or ["(none)"]
                    problems.append(Problem(where, ph.field, f"{release_name} exports no {export!r}",
                                            f"exports of {release_name}: {', '.join(known)}"))
            elif ph.kind == "inv":
                try:
                    inv.lookup(ph.target)
                except KeyError:
                    problems.append(Problem(where, ph.field, f"inventory has no {ph.target!r}",
                                            f"see {inv.rel} for the available keys"))
    return problems


def vram_problems(inv: Inventory, releases: list[Release]) -> list[Problem]:
    """Models declared on a GPU node must fit its VRAM: resident models together plus the largest swap slot."""
    problems: list[Problem] = []
    gpu_hosts = {h.name: h for h in inv.hosts_with_role("gpu")}
    demand: dict[str, list[tuple[Release, float, str]]] = {}
    for r in releases:
        gpu = r.spec.get("gpu")
        if not gpu:
            continue
        node = gpu.get("node")
        if node is None:
            if len(gpu_hosts) != 1:
                problems.append(Problem(_rel(r), "gpu.node", f"{len(gpu_hosts)} GPU hosts in {inv.rel}; "
                                        "cannot tell which one this plan is for", "name the host in gpu.node"))
                continue
            node = next(iter(gpu_hosts))
        if node not in gpu_hosts:
            problems.append(Problem(_rel(r), "gpu.node", f"{node!r} is not a host with role gpu in {inv.rel}",
                                    f"GPU hosts: {', '.join(gpu_hosts) or '(none)'}"))
            continue
        resident = [m for m in gpu["models"] if m.get("resident", True)]
        swapped = [m for m in gpu["models"] if not m.get("resident", True)]

        def need(m: dict[str, Any]) -> float:
            return float(m["weights_gib"]) + float(m["kv_cache_gib"]) + float(m["runtime_overhead_gib"])

        total = sum(need(m) for m in resident) + max((need(m) for m in swapped), default=0.0)
        detail = f"{len(resident)} resident model(s)" + (f" + a swap slot for {len(swapped)}" if swapped else "")
        demand.setdefault(node, []).append((r, total, detail))
    for node, items in demand.items():
        gpu_spec = gpu_hosts[node].data["gpu"]
        usable = float(gpu_spec["vram_gib"]) - float(gpu_spec.get("reserved_gib", 0))
        total = sum(t for _, t, _ in items)
        if total > usable + 1e-9:
            for r, t, detail in items:
                problems.append(Problem(
                    _rel(r), "gpu.models",
                    f"{detail} need {t:.1f} GiB on {node} (all plans on it: {total:.1f} GiB) but it has "
                    f"{usable:.1f} GiB usable ({gpu_spec['vram_gib']} GiB - "
                    f"{gpu_spec.get('reserved_gib', 0)} GiB reserved)",
                    "keep fewer models resident (resident: false swaps them in one at a time), quantize further, "
                    "or shrink kv_cache_gib"))
    return problems


def secret_uses(releases: list[Release], stage_secrets: dict[str, list[str]]) -> dict[str, str]:
    """secret name -> 'file field' of its first use (for missing-secret messages)."""
    uses: dict[str, str] = {}
    for r in releases:
        for where, ph in r.placeholders():
            if ph.kind == "secret":
                uses.setdefault(ph.target, f"{where} {ph.field}")
    for stage, names in stage_secrets.items():
        for name in names:
            uses.setdefault(name, f"deploys/stages.yaml {stage}.secrets")
    return uses

