"""Everything the graph is built from, loaded once per run: inventory, stages, releases, secrets, the graph.

``Project.load`` never raises for bad input: it collects Problems. Callers refuse to act while any
error-level problem exists. When every input file is byte-identical to the last run that validated
clean, the parsed inputs come from build/<env>/cache/project.json instead: no YAML parsing, no schema
validation (a 0.2 s import), no rules, no decryption. Validation is a pure function of those bytes, so
the result cannot differ; this keeps the no-op path fast.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from homelab import releases as releases_mod
from homelab.atomic import write_json_atomic
from homelab.graph import Graph, Node
from homelab.inventory import Inventory
from homelab.paths import Layout
from homelab.problems import Problem, errors
from homelab.releases import Release
from homelab.secrets import Secrets
from homelab.stages import Stage

CACHE_VERSION = 4
_STAGE_LISTS = ("after", "on_server", "roles", "reads", "secrets", "code")  # Stage's tuple fields, in order


@dataclass
class Project:
    layout: Layout
    inventory: Inventory | None = None
    stages: list[Stage] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    graph: Graph = field(default_factory=Graph)
    problems: list[Problem] = field(default_factory=list)
    secrets: Secrets | None = None
    chart_lock: dict[str, dict[str, str]] = field(default_factory=dict)  # charts.lock: release -> pin + sha256
    from_cache: bool = False

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
        cache_path = layout.build / "cache" / "project.json"
        fingerprint = _fingerprint(layout)
        cached = _read_cache(cache_path)
        if cached.get("fingerprint") == fingerprint and cached.get("version") == CACHE_VERSION:
            project._from_cache(cached)
            _keep_private(cache_path)
        else:
            project._load()
            if project.ok:
                # the sandbox may just have written its secrets file: fingerprint what is on disk now;
                # 0600 like the stamps: the record holds secret HMACs
                write_json_atomic(cache_path, project._cache_record(_fingerprint(layout)), mode=0o600)
        return project

    # -- the fast path: every input byte-identical to a run that validated clean ------------------------
    def _cache_record(self, fingerprint: str) -> dict[str, Any]:
        assert self.inventory is not None and self.secrets is not None
        from homelab import rules

        uses = rules.secret_uses(self.releases, {s.name: list(s.secrets) for s in self.stages})
        return {
            "version": CACHE_VERSION,
            "fingerprint": fingerprint,
            "inventory": self.inventory.data,
            "stages": [asdict(s) for s in self.stages],
            "releases": [{"name": r.name, "rel_dir": r.rel_dir, "spec": r.spec, "values_file": r.values_file,
                          "manifests": r.manifests} for r in self.releases],
            "warnings": [asdict(p) for p in self.problems],
            "chart_lock": self.chart_lock,
            # HMACs are not secret; caching them keeps pyrage and the decryption off the no-op path
            "hmacs": {name: self.secrets.hmac(name) for name in sorted(uses)},
        }

    def _from_cache(self, cached: dict[str, Any]) -> None:
        lay = self.layout
        self.from_cache = True
        self.inventory = Inventory(env=cached["inventory"]["environment"], rel=lay.rel(lay.inventory),
                                   data=cached["inventory"])
        self.stages = [Stage(s["name"], s["description"], *(tuple(s.get(k, ())) for k in _STAGE_LISTS))
                       for s in cached["stages"]]
        self.releases = [Release(r["name"], lay.root / r["rel_dir"], r["rel_dir"], r["spec"], r["values_file"],
                                 r["manifests"]) for r in cached["releases"]]
        self.problems = [Problem(**p) for p in cached["warnings"]]
        self.chart_lock = dict(cached["chart_lock"])
        self.secrets = Secrets(lay)
        self.secrets.known_hmacs = dict(cached["hmacs"])
        self.graph = build_graph(self.inventory, self.stages, self.releases)

    # -- the full path: parse, validate, check every rule ------------------------------------------------
    def _load(self) -> None:
        from homelab import inventory as inventory_mod
        from homelab import rules
        from homelab import stages as stages_mod
        from homelab.secrets import SecretsError, check_secrets, ensure_sandbox_secrets, sandbox_mode_ok

        lay = self.layout
        self.stages, problems = stages_mod.load(lay.root)
        self.problems += problems
        inv, problems = inventory_mod.load(lay.inventory, lay.rel(lay.inventory), self.schema_dir)
        self.inventory = inv
        self.problems += problems
        self.releases, problems = releases_mod.load_all(lay.root, self.schema_dir)
        self.problems += problems
        self.secrets = Secrets(lay)
        self.problems += self._load_chart_lock()
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
                return
            try:
                ensure_sandbox_secrets(lay, sorted(uses))
            except SecretsError as exc:
                self.problems.append(Problem(lay.rel(lay.secrets_file), "", str(exc),
                                             "the sandbox's secrets were made with another identity: delete "
                                             f"{lay.rel(lay.secrets_file)} and they are generated again"))
                return
        self.problems += check_secrets(lay, uses)


    def _load_chart_lock(self) -> list[Problem]:
        from homelab import charts

        try:
            self.chart_lock = charts.read_lock(self)
        except charts.ChartError as exc:
            return [Problem(charts.LOCK_FILE, "", line, "fix it or delete it and run `doit charts`")
                    for line in [*exc.messages, *exc.errors]]
        return []


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
        # sorted: placeholder order follows dict order, which differs between a fresh and a cached load
        referenced = sorted({ph.target.split(".", 1)[0] for _, ph in r.placeholders() if ph.kind == "ref"})
        release_deps += [p for p in referenced if p != r.name and p not in release_deps]
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
    h = hashlib.sha256(b"homelab-inputs-v2\0")
    paths = [lay.inventory, lay.root / "deploys" / "stages.yaml", lay.root / "charts.lock"]
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


def _keep_private(path: Path) -> None:
    """A cache written before it was made 0600 is not rewritten while its inputs stay the same: tighten it."""
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
