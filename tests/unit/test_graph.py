"""The real repository's graph: the pinned topological order, the design card's chain, and a snapshot of
every task with its dependencies, so any change to the DAG shows up in review.

Refresh the snapshot after an intended change with: UPDATE_SNAPSHOTS=1 pytest tests/unit/test_graph.py
"""

from __future__ import annotations

import itertools
import os

import pytest

from homelab import paths, redact
from homelab.graph import CycleError, Graph, Node
from homelab.project import Project
from tests.helpers import REPO, make_tree

SNAPSHOTS = REPO / "tests" / "snapshots"
# the design card's shape: VM -> tailscale -> k3s -> nfs -> cert-manager -> metallb -> monitoring -> postgres
# -> ollama/vllm -> paperless -> devcontainers
CHAIN = ["vm", "tailscale", "k3s", "nfs", "nfs-provisioner", "cert-manager", "metallb", "monitoring", "postgres",
         "ollama", "vllm", "paperless", "devcontainers"]


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Project]:
    out = {}
    for env in ("sandbox", "lab"):
        tmp = tmp_path_factory.mktemp(env)
        tree = make_tree(tmp, real_releases=True)
        os.environ["HOMELAB_CONFIG_DIR"] = str(tree.config)
        redact.clear()
        out[env] = Project.load(paths.layout(env, tree.root))
    return out


def _position(order: list[str], stage: str) -> tuple[int, int]:
    hits = [i for i, name in enumerate(order) if name == stage or name.startswith(f"{stage}:")]
    assert hits, f"{stage} is not in the graph"
    return min(hits), max(hits)


@pytest.mark.parametrize("env", ["sandbox", "lab"])
def test_design_card_chain_is_the_topological_order(projects: dict[str, Project], env: str) -> None:
    project = projects[env]
    order = project.graph.topo_order()
    for before, after in itertools.pairwise(CHAIN):
        assert _position(order, before)[1] < _position(order, after)[0], f"{before} must finish before {after}"
        # and it is a real edge path, not an accident of tie-breaking
        assert _reaches(project.graph, after, before), f"{after} does not depend on {before}"


def _reaches(graph: Graph, start: str, target: str) -> bool:
    todo = [n for n in graph.nodes if n == start or n.startswith(f"{start}:")]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for dep in graph.nodes[name].deps:
            if dep == target or dep.startswith(f"{target}:"):
                return True
            todo.append(dep)
    return False


def _snapshot_text(project: Project) -> str:
    lines = []
    for name in project.graph.topo_order():
        node = project.graph.nodes[name]
        lines.append(f"{name} [{node.kind}] <- {', '.join(node.deps) or '-'}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("env", ["sandbox", "lab"])
def test_whole_graph_matches_snapshot(projects: dict[str, Project], env: str) -> None:
    text = _snapshot_text(projects[env])
    path = SNAPSHOTS / f"graph-{env}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"the task graph changed: review and refresh {path.relative_to(REPO)}"


def test_every_release_is_valid_in_the_sandbox(projects: dict[str, Project]) -> None:
    assert [p.line() for p in projects["sandbox"].problems] == []


def test_lab_problems_are_only_missing_secrets(projects: dict[str, Project]) -> None:
    others = [p.line() for p in projects["lab"].problems if "is missing (put it into secrets/lab.age" not in p.line()]
    assert others == []


def test_dag_picture_is_current(projects: dict[str, Project]) -> None:
    dot = REPO / "docs" / "dag.dot"
    assert dot.exists(), "run `doit docs` and commit docs/dag.dot and docs/dag.svg"
    assert dot.read_text() == projects["sandbox"].graph.to_dot(), "docs/dag.dot is stale: run `doit docs`"


def test_component_docs_are_current(projects: dict[str, Project]) -> None:
    from homelab import docsgen

    committed = (REPO / "docs" / "components.md").read_text()
    assert committed == docsgen.render(projects["sandbox"]), "docs/components.md is stale: run `doit docs`"
    for release in projects["sandbox"].releases:
        assert f"## {release.name}\n" in committed


def test_topo_order_breaks_ties_by_declaration_and_reports_cycles() -> None:
    g = Graph()
    for name, deps in (("a", []), ("c", []), ("b", ["a"]), ("d", ["b", "c"])):
        g.add(Node(name, "release", name, deps))
    assert g.topo_order() == ["a", "c", "b", "d"]
    g.nodes["a"].deps.append("d")
    # arrows point from a dependency to its user: b needs a, d needs b, a needs d
    assert g.find_cycle() == ["a", "b", "d", "a"]
    with pytest.raises(CycleError):
        g.topo_order()
