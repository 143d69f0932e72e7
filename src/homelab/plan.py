"""``doit plan``: every task that would run and why, in graph order. Reads stamps and files only.

A task whose own inputs are unchanged but whose upstream will run is listed as "waits for upstream":
whether it really reruns depends on whether the upstream's *result* changes (early cut-off).
"""

from __future__ import annotations

from homelab import stamps
from homelab.digest import digest
from homelab.explain import reasons
from homelab.inputs import task_inputs
from homelab.project import Project


def plan_lines(project: Project) -> list[str]:
    assert project.inventory is not None
    from homelab.runstage import release_result

    order = project.graph.topo_order()
    will_run: set[str] = set()
    # tasks whose result may change: host stages that run (facts are only known after running) and
    # releases whose predicted result (exports + chart) differs from the stamp
    result_changes: set[str] = set()
    lines: list[str] = []
    for name in order:
        node = project.graph.nodes[name]
        inputs = task_inputs(project, name)
        stamp = stamps.read(project.layout.stamps, name)
        own = reasons(stamp["inputs"] if stamp else None, inputs, project.inventory.rel)
        upstream_changing = [d for d in node.deps if d in result_changes]
        own = [r for r in own if not r.startswith(("upstream ", "new upstream "))]
        if own:
            lines.append(f"{name}: {own[0]}")
            lines += [f"{' ' * len(name)}  {r}" for r in own[1:]]
        elif upstream_changing:
            lines.append(f"{name}: upstream {', '.join(upstream_changing)} may change its result")
        else:
            continue
        will_run.add(name)
        if node.kind == "host" or stamp is None or digest(release_result(project, name)) != stamp["result_digest"]:
            result_changes.add(name)
    total = len(order)
    summary = f"plan: {len([ln for ln in lines if not ln.startswith(' ')])} of {total} tasks would run"
    if not lines:
        summary = f"plan: nothing to do, all {total} tasks are up to date"
    return [*lines, summary]
