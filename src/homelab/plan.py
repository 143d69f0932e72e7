"""``doit plan``: every task that would run and why, in graph order. Reads stamps and files only.

A task whose own inputs are unchanged but whose upstream will run is listed as "waits for upstream":
whether it really reruns depends on whether the upstream's *result* changes (early cut-off).
"""

from __future__ import annotations

from homelab import stamps
from homelab.explain import reasons
from homelab.inputs import task_inputs
from homelab.project import Project


def plan_lines(project: Project) -> list[str]:
    assert project.inventory is not None
    order = project.graph.topo_order()
    will_run: set[str] = set()
    lines: list[str] = []
    for name in order:
        inputs = task_inputs(project, name)
        stamp = stamps.read(project.layout.stamps, name)
        own = reasons(stamp["inputs"] if stamp else None, inputs, project.inventory.rel)
        own = [r for r in own if not r.startswith(("upstream ", "new upstream "))]
        upstream_running = [d for d in project.graph.nodes[name].deps if d in will_run]
        if own:
            will_run.add(name)
            lines.append(f"{name}: {own[0]}")
            lines += [f"{' ' * len(name)}  {r}" for r in own[1:]]
        elif upstream_running:
            will_run.add(name)
            lines.append(f"{name}: upstream {', '.join(upstream_running)} will run; reruns only if its result changes")
    total = len(order)
    summary = f"plan: {len([ln for ln in lines if not ln.startswith(' ')])} of {total} tasks would run"
    if not lines:
        summary = f"plan: nothing to do, all {total} tasks are up to date"
    return [*lines, summary]
