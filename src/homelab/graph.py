"""The build graph: one node per (host stage, host) and one per release, with their edges.

Release ``needs:`` may name releases or host stages (a host stage name means every host's task of that
stage). ``${ref:RELEASE.EXPORT}`` placeholders add edges too. Order is deterministic: Kahn's algorithm
breaking ties by declaration order (host stages as in deploys/stages.yaml, hosts as in the inventory,
releases by name), so the pinned order in the tests only changes when the graph does.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Node:
    name: str
    kind: str  # "host" | "release"
    description: str
    deps: list[str] = field(default_factory=list)
    stage: str = ""  # host nodes: the stage
    host: str = ""  # host nodes: the host


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)

    def add(self, node: Node) -> None:
        self.nodes[node.name] = node

    def topo_order(self) -> list[str]:
        """Deterministic topological order; raises CycleError listing one cycle."""
        rank = {name: i for i, name in enumerate(self.nodes)}
        indegree = {name: 0 for name in self.nodes}
        users: dict[str, list[str]] = {name: [] for name in self.nodes}
        for node in self.nodes.values():
            for dep in node.deps:
                if dep in self.nodes:
                    indegree[node.name] += 1
                    users[dep].append(node.name)
        ready = sorted((n for n, d in indegree.items() if d == 0), key=rank.__getitem__)
        order: list[str] = []
        while ready:
            current = ready.pop(0)
            order.append(current)
            for user in users[current]:
                indegree[user] -= 1
                if indegree[user] == 0:
                    ready.append(user)
            ready.sort(key=rank.__getitem__)
        if len(order) != len(self.nodes):
            raise CycleError(self.find_cycle())
        return order

    def find_cycle(self) -> list[str]:
        """One cycle as a list of node names, first repeated at the end; [] when acyclic."""
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(name: str) -> list[str]:
            state[name] = 1
            stack.append(name)
            for dep in self.nodes[name].deps:
                if dep not in self.nodes:
                    continue
                if state.get(dep) == 1:
                    return [*stack[stack.index(dep):], dep]
                if dep not in state:
                    found = visit(dep)
                    if found:
                        return found
            stack.pop()
            state[name] = 2
            return []

        for name in self.nodes:
            if name not in state:
                cycle = visit(name)
                if cycle:
                    return list(reversed(cycle))
        return []

    def upstream(self, name: str) -> list[str]:
        return list(self.nodes[name].deps)

    def downstream_closure(self, names: set[str]) -> set[str]:
        out = set(names)
        changed = True
        while changed:
            changed = False
            for node in self.nodes.values():
                if node.name not in out and any(d in out for d in node.deps):
                    out.add(node.name)
                    changed = True
        return out

    def to_dot(self) -> str:
        """Graphviz DOT with host stages grouped per stage and releases as boxes."""
        lines = ["digraph homelab {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
        stages: dict[str, list[Node]] = {}
        for node in self.nodes.values():
            if node.kind == "host":
                stages.setdefault(node.stage, []).append(node)
        for stage, members in stages.items():
            lines.append(f'  subgraph "cluster_{stage}" {{ label="{stage}"; style=rounded; color=gray;')
            for m in members:
                lines.append(f'    "{m.name}" [label="{m.host}", shape=ellipse];')
            lines.append("  }")
        for node in self.nodes.values():
            if node.kind == "release":
                lines.append(f'  "{node.name}" [shape=box, style=filled, fillcolor="#e8f0fe"];')
        for node in self.nodes.values():
            for dep in node.deps:
                lines.append(f'  "{dep}" -> "{node.name}";')
        lines.append("}")
        return "\n".join(lines) + "\n"


class CycleError(Exception):
    def __init__(self, cycle: list[str]) -> None:
        super().__init__(" -> ".join(cycle))
        self.cycle = cycle
