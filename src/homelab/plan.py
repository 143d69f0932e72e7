"""``doit plan``: every task that would run and why, in graph order. Reads stamps and files only.

A task whose own inputs are unchanged is listed only when an upstream task's result may change: always
for a host stage that runs (its facts are known only afterwards), and for a release only when its
predicted result (exports + chart) differs from its stamp. ``doit plan --hosts`` adds a pyinfra dry run
of every converged host stage (read-only SSH) to show drift on the machines themselves.
"""

from __future__ import annotations

from typing import Any

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
        # what consumers read of a release is its chart identity (exports arrive as ${ref:} inputs)
        if node.kind == "host" or stamp is None or \
                digest(release_result(project, name)["chart"]) != digest(stamp["result"].get("chart", {})):
            result_changes.add(name)
    total = len(order)
    summary = f"plan: {len([ln for ln in lines if not ln.startswith(' ')])} of {total} tasks would run"
    if not lines:
        summary = f"plan: nothing to do, all {total} tasks are up to date"
    return [*lines, summary]


def host_drift_lines(project: Project, runner: Any, ssh_config: Any) -> list[str]:
    """pyinfra dry run of every host stage that has a stamp: what would change on the host right now.

    This contacts the hosts (read-only). A stage that was never applied is already listed by the plan.
    """
    assert project.inventory is not None and project.secrets is not None
    from homelab.runstage import upstream_facts

    lines: list[str] = []
    drifted = 0
    for name in project.graph.topo_order():
        node = project.graph.nodes[name]
        if node.kind != "host" or stamps.read(project.layout.stamps, name) is None:
            continue
        stage = project.stage(node.stage)
        result = runner.run_stage(project.inventory.data, stage.name, node.host,
                                  secrets={n: project.secrets.value(n) for n in stage.secrets},
                                  upstream=upstream_facts(project, name), ssh_config=ssh_config, dry=True)
        if not result.ok:
            lines.append(f"{name}: dry run failed: {result.error}")
            drifted += 1
        elif result.planned:
            drifted += 1
            lines += [f"{name}: drift: {op}" for op in result.planned]
    lines.append(f"hosts: {drifted} host stage(s) drifted" if drifted else "hosts: no drift")
    return lines
