"""Release files (releases/<name>/release.yaml, optional values.yaml and manifests/*.yaml): loading and schema.

A release is data only. Its values are release.yaml ``values`` deep-merged over values.yaml, so small
overrides can sit next to the chart pin while long value files stay separate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homelab import schema
from homelab.placeholders import Placeholder, find, malformed
from homelab.problems import Problem

SCHEMA = "release.schema.json"


@dataclass
class Release:
    name: str
    dir: Path
    rel_dir: str
    spec: dict[str, Any]  # parsed release.yaml
    values_file: dict[str, Any]  # parsed values.yaml ({} when absent)
    manifests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # rel path -> documents
    # derived once per run: the graph, the inputs and the rules all ask for them
    _placeholders: list[tuple[str, Placeholder]] | None = field(default=None, repr=False, compare=False)
    _chart_digest: str | None = field(default=None, repr=False, compare=False)

    @property
    def namespace(self) -> str:
        ns: str = self.spec["namespace"]
        return ns

    @property
    def description(self) -> str:
        text: str = self.spec["description"]
        return text

    @property
    def needs(self) -> list[str]:
        needs: list[str] = self.spec.get("needs", [])
        return needs

    @property
    def chart(self) -> dict[str, Any] | None:
        chart: dict[str, Any] | None = self.spec.get("chart")
        return chart

    @property
    def values(self) -> dict[str, Any]:
        return deep_merge(self.values_file, self.spec.get("values", {}))

    @property
    def exports(self) -> dict[str, dict[str, Any]]:
        exports: dict[str, dict[str, Any]] = self.spec.get("exports", {})
        return exports

    def placeholders(self) -> list[tuple[str, Placeholder]]:
        """(file, placeholder) for every placeholder in release.yaml, values.yaml and manifests."""
        if self._placeholders is None:
            self._placeholders = self._find_placeholders()
        return self._placeholders

    def _find_placeholders(self) -> list[tuple[str, Placeholder]]:
        out: list[tuple[str, Placeholder]] = []
        out += [(f"{self.rel_dir}/release.yaml", p) for p in find(self.spec)]
        out += [(f"{self.rel_dir}/values.yaml", p) for p in find(self.values_file)]
        for rel, docs in self.manifests.items():
            out += [(rel, p) for p in find(docs)]
        return out

    def chart_digest(self, root: Path) -> str:
        """Content digest of a chart we own (every file under charts/<name>/); '' for remote charts."""
        chart = self.chart or {}
        if "path" not in chart:
            return ""
        if self._chart_digest is None:
            base = root / chart["path"]
            h = hashlib.sha256()
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    h.update(str(p.relative_to(base)).encode() + b"\0" + p.read_bytes() + b"\0")
            self._chart_digest = h.hexdigest()
        return self._chart_digest


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_one(root: Path, release_dir: Path, schema_dir: Path) -> tuple[Release | None, list[Problem]]:
    from homelab.yamlio import load_yaml_documents, load_yaml_file

    rel_dir = str(release_dir.relative_to(root))
    rel = f"{rel_dir}/release.yaml"
    spec, problems = load_yaml_file(release_dir / "release.yaml", rel)
    if problems:
        return None, problems
    problems = schema.validate(spec, schema_dir, SCHEMA, rel)
    if "name" in spec and spec["name"] != release_dir.name:
        problems.append(Problem(rel, "name", f"{spec['name']!r} differs from its directory {release_dir.name!r}",
                                f"set name: {release_dir.name} or rename the directory"))
    values_file: dict[str, Any] = {}
    vpath = release_dir / "values.yaml"
    if vpath.exists():
        loaded, vproblems = load_yaml_file(vpath, f"{rel_dir}/values.yaml", allow_empty=True)
        problems += vproblems
        values_file = loaded or {}
    manifests: dict[str, list[dict[str, Any]]] = {}
    mdir = release_dir / "manifests"
    if mdir.is_dir():
        for mpath in sorted(mdir.glob("*.yaml")):
            mrel = str(mpath.relative_to(root))
            docs, mproblems = load_yaml_documents(mpath, mrel)
            problems += mproblems
            for i, doc in enumerate(docs):
                for key in ("apiVersion", "kind", "metadata"):
                    if key not in doc:
                        problems.append(Problem(mrel, f"[{i}].{key}", "required key is missing",
                                                "every manifest needs apiVersion, kind and metadata.name"))
                    elif key == "metadata" and not isinstance(doc[key], dict):
                        problems.append(Problem(mrel, f"[{i}].metadata", f"expected a mapping, found "
                                                f"{type(doc[key]).__name__}", "metadata: {name: ..., namespace: ...}"))
                    elif key != "metadata" and not isinstance(doc[key], str):
                        problems.append(Problem(mrel, f"[{i}].{key}", f"expected a string, found "
                                                f"{type(doc[key]).__name__}", "e.g. apiVersion: v1, kind: ConfigMap"))
            manifests[mrel] = docs
    unknown = sorted(p.name for p in release_dir.iterdir()
                     if p.name not in ("release.yaml", "values.yaml", "manifests") and not p.name.startswith("."))
    for name in unknown:
        problems.append(Problem(f"{rel_dir}/{name}", "", "unexpected file in a release directory",
                                "only release.yaml, values.yaml and manifests/ are read"))
    documents: list[tuple[str, Any]] = [(f"{rel_dir}/release.yaml", spec), (f"{rel_dir}/values.yaml", values_file)]
    documents += list(manifests.items())
    for where, doc in documents:
        for fld, text in malformed(doc):
            problems.append(Problem(where, fld, f"malformed placeholder in {text!r}",
                                    "use ${secret:NAME}, ${ref:RELEASE.EXPORT} or ${inv:dotted.path}"))
    # a broken values.yaml or manifest keeps the release itself in the graph, so one bad file yields one
    # problem instead of a cascade of "unknown needs" errors in every consumer
    if [p for p in problems if p.severity == "error" and p.path == rel]:
        return None, problems
    return Release(spec["name"], release_dir, rel_dir, spec, values_file, manifests), problems


def release_dir_names(root: Path) -> list[str]:
    base = root / "releases"
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []


def load_all(root: Path, schema_dir: Path) -> tuple[list[Release], list[Problem]]:
    releases: list[Release] = []
    problems: list[Problem] = []
    base = root / "releases"
    if not base.is_dir():
        return [], [Problem("releases", "", "directory not found", "create releases/<name>/release.yaml")]
    for release_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        release, found = load_one(root, release_dir, schema_dir)
        problems += found
        if release is not None:
            releases.append(release)
    return releases, problems
