"""Everything the graph is built from, loaded once per run: inventory, stages, releases, secrets, the graph.

``Project.load`` never raises for bad input: it collects Problems. Callers refuse to act while any
error-level problem exists. Schema validation (which costs a 0.2 s import) is skipped when every input
file is byte-identical to the last run that validated clean: that keeps the no-op path fast.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from homelab import inventory as inventory_mod
from homelab import releases as releases_mod
from homelab import rules
from homelab import stages as stages_mod
from homelab.atomic import write_json_atomic
from homelab.graph import Graph, Node
from homelab.inventory import Inventory
from homelab.paths import Layout
from homelab.problems import Problem, errors
from homelab.releases import Release
from homelab.secrets import Secrets, check_secrets, ensure_sandbox_secrets, sandbox_mode_ok
from homelab.stages import Stage


@dataclass
class Project:
    layout: Layout
    inventory: Inventory | None = None
    stages: list[Stage] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    graph: Graph = field(default_factory=Graph)
    problems: list[Problem] = field(default_factory=list)
    secrets: Secrets | None = None

    @property
    def ok(self) -> bool:
        return not errors(self.problems)

    @property
    def schema_dir(self) -> Path:
        return self.layout.root / "schemas"

    def release(self, name: str) -> Release:
        return next(r for r in self.releases if r.name == name)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @classmethod
    def load(cls, layout: Layout) -> Project:
        project = cls(layout)
        project._load()
        return project

    # ------------------------------------------------------------------------------------------------
    def _load(self) -> None:
        lay = self.layout
        fingerprint = _fingerprint(lay)
        cache = lay.build / "cache" / "validated.json"
        validated = _read_cache(cache) == fingerprint
        if validated:
            _skip_schema(True)
        try:
            self.stages, problems = stages_mod.load(lay.root)
            self.problems += problems
            inv, problems = inventory_mod.load(lay.inventory, lay.rel(lay.inventory), self.schema_dir)
            self.inventory = inv
            self.problems += problems
            self.releases, problems = releases_mod.load_all(lay.root, self.schema_dir)
            self.problems += problems
        finally:
            _skip_schema(False)
        if self.inventory is None:
            return
        stage_names = [s.name for s in self.stages]
        loaded = {r.name for r in self.releases}
        broken = [n for n in releases_mod.release_dir_names(lay.root) if n not in loaded]
        self.problems += rules.needs_problems(self.releases, stage_names, broken)
        self.graph = build_graph(self.inventory, self.stages, self.releases)
        self.problems += rules.cycle_problems(self.graph, self.releases)
        if not errors(self.problems):
            self.problems += rules.root_problems(self.graph, self.releases)
        self.problems += rules.chart_problems(lay.root, self.releases)
        self.problems += rules.image_problems(self.releases)
        self.problems += rules.namespace_problems(self.inventory, self.releases)
        self.problems += rules.placeholder_problems(self.inventory, self.releases, broken)
        self.problems += rules.vram_problems(self.inventory, self.releases)
        uses = rules.secret_uses(self.releases, {s.name: list(s.secrets) for s in self.stages})
        if lay.env == "sandbox" and sandbox_mode_ok():
            # the sandbox makes its own secrets, but only from inputs that are otherwise valid
            if errors(self.problems):
                self.secrets = Secrets(lay)
                return
            ensure_sandbox_secrets(lay, sorted(uses))
        self.problems += check_secrets(lay, uses)
        self.secrets = Secrets(lay)
        if not errors(self.problems) and not validated:
            write_json_atomic(cache, _fingerprint(lay))


def build_graph(inv: Inventory, stages: list[Stage], releases: list[Release]) -> Graph:
    graph = Graph()
    server = inv.server.name if inv.hosts_with_role("server") else ""
    for stage in stages:
        for host in inv.hosts:
            if not stage.applies_to(host.roles):
                continue
            deps = [f"{dep}:{host.name}" for dep in stage.after]
            if not host.is_server and server:
                deps += [f"{dep}:{server}" for dep in stage.on_server]
            deps = [d for d in deps if _host_task_exists(d, stages, inv)]
            graph.add(Node(f"{stage.name}:{host.name}", "host", f"{stage.description} [{host.name}]",
                           deps, stage=stage.name, host=host.name))
    stage_members: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        stage_members.setdefault(node.stage, []).append(node.name)
    for r in sorted(releases, key=lambda r: r.name):
        release_deps: list[str] = []
        for need in r.needs:
            release_deps += stage_members.get(need, [need] if need not in {s.name for s in stages} else [])
        for _, ph in r.placeholders():
            if ph.kind == "ref":
                producer = ph.target.split(".", 1)[0]
                if producer != r.name and producer not in release_deps:
                    release_deps.append(producer)
        graph.add(Node(r.name, "release", r.description, release_deps))
    return graph


def _host_task_exists(name: str, stages: list[Stage], inv: Inventory) -> bool:
    stage_name, _, host_name = name.partition(":")
    stage = next((s for s in stages if s.name == stage_name), None)
    try:
        return stage is not None and stage.applies_to(inv.host(host_name).roles)
    except KeyError:
        return False


def _fingerprint(lay: Layout) -> str:
    """Digest of every byte that validation depends on."""
    h = hashlib.sha256(b"homelab-validation-v1\0")
    paths = [lay.inventory, lay.root / "deploys" / "stages.yaml"]
    paths += sorted((lay.root / "schemas").glob("*.json"))
    rel_root = lay.root / "releases"
    if rel_root.is_dir():
        paths += sorted(p for p in rel_root.rglob("*") if p.is_file())
    paths += sorted((lay.root / "charts").glob("*/Chart.yaml"))
    paths += [lay.secrets_file, lay.identity_file]
    for p in paths:
        h.update(str(p).encode() + b"\0")
        try:
            h.update(p.read_bytes())
        except OSError:
            h.update(b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def _read_cache(path: Path) -> str:
    try:
        value = json.loads(path.read_text())
        return value if isinstance(value, str) else ""
    except (OSError, ValueError):
        return ""


def _skip_schema(skip: bool) -> None:
    from homelab import schema

    schema.SKIP_VALIDATION = skip
