"""``doit drift``: how the live lab differs from what the engine last applied. Strictly read-only.

Three parts, each compared with the stamps (what was last applied), never with the repository's wishes alone:

1. hosts: a pyinfra dry run of every host stage that has a stamp (the runner of ``runstage.host_runner()``, so
   tests use the FAKE runner); every operation that would change is drift;
2. helm: for every release applied with a chart, the live helm history against the stamp's ``helm_revision``:
   a newer revision (someone ran ``helm upgrade`` by hand) or a status other than ``deployed`` is drift;
3. objects: every object of every applied release is rendered again (secret-free, in memory: nothing is
   written) and its live counterpart is read through the kubernetes client; a missing object is drift, and
   so is every field we set whose live value differs (see ``homelab.livecheck`` for what is compared).
   Secret values are never compared or printed: a Secret's ``data``/``stringData`` are dropped on read.

A release whose inputs changed since it was applied is not compared object by object: its rendering is not
what was applied (``doit plan`` names the change). Helm hook objects are skipped: helm deletes many of them
by their own policy, so their absence is not drift. One known source of honest-but-surprising drift: the
offline rendering declares every CRD API we hold a schema for (``homelab.render``), so a chart that tests
``.Capabilities`` and was installed before such an API existed differs until its next upgrade.

Lines (``DriftReport.lines``, printed by the engine in order)::

    drift: vm:sbx-worker-01: files.put /etc/environment
    drift: postgres: helm revision 1 -> 2 (live)
    drift: postgres: Deployment/data/postgres-postgresql: spec.replicas 1 -> 3 (live)
    drift: traefik: IngressRoute/kube-system/traefik-dashboard: missing (live)
    not checked: cluster: no Kubernetes API (...)
    drift: 4 difference(s): 1 host stage(s), 2 release(s)

``DriftReport.exit_code``: 2 when anything drifted; else 1 when something could not be checked because of an
error (host unreachable, API refused, render failed); else 0. A sandbox without a Kubernetes API is not an
error: its cluster part is reported as not checked and the exit code stays 0.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from homelab import livecheck, redact, stamps
from homelab.project import Project
from homelab.releases import Release


@dataclass
class DriftReport:
    """What ``drift_report`` found; ``lines`` is everything to print, in order."""

    drift: list[str] = field(default_factory=list)  # one line per difference ("drift: ...")
    unchecked: list[str] = field(default_factory=list)  # "not checked: ..." caused by an error
    notes: list[str] = field(default_factory=list)  # "note: ..." / "not checked: ..." that are not errors
    hosts_checked: int = 0
    releases_checked: int = 0
    objects_checked: int = 0
    drifted_hosts: set[str] = field(default_factory=set)
    drifted_releases: set[str] = field(default_factory=set)

    @property
    def exit_code(self) -> int:
        """2: drift; 1: no drift seen but something could not be checked (an error); 0: no drift."""
        if self.drift:
            return 2
        return 1 if self.unchecked else 0

    @property
    def summary(self) -> str:
        checked = (f"{self.hosts_checked} host stage(s), {self.releases_checked} release(s), "
                   f"{self.objects_checked} object(s) checked")
        if self.drift:
            return (f"drift: {len(self.drift)} difference(s): {len(self.drifted_hosts)} host stage(s), "
                    f"{len(self.drifted_releases)} release(s) ({checked})")
        if self.unchecked:
            return f"drift: none found, but {len(self.unchecked)} part(s) could not be checked ({checked})"
        return f"drift: none ({checked})"

    @property
    def lines(self) -> list[str]:
        return [redact.redact(line) for line in [*self.drift, *self.unchecked, *self.notes, self.summary]]


def drift_report(project: Project, *, hosts: bool = True, cluster: bool = True) -> DriftReport:
    """Compare the live lab with the stamps; never writes anything, never raises for a lab-side failure."""
    assert project.inventory is not None, "drift needs a valid project (run doit check)"
    report = DriftReport()
    if hosts:
        host_drift(project, report)
    if cluster:
        access = livecheck.cluster_access(project)
        if access.kubeconfig is None and project.layout.env != "sandbox" and applied_releases(project):
            # stamps say releases were applied to a cluster that cannot be read now: that is not "no drift"
            report.unchecked.append(f"not checked: cluster: {access.reason}")
        elif access.kubeconfig is None:
            report.notes.append(f"not checked: cluster: {access.reason}")
        else:
            cluster_drift(project, access.kubeconfig, report)
    return report


# -- hosts ------------------------------------------------------------------------------------------------

def host_drift(project: Project, report: DriftReport) -> None:
    """pyinfra dry run of every host stage with a stamp (the same approach as ``doit plan --hosts``)."""
    assert project.inventory is not None and project.secrets is not None
    from homelab.runstage import host_runner, ssh_config, upstream_facts

    tasks = [n for n in project.graph.topo_order() if project.graph.nodes[n].kind == "host"
             and stamps.read(project.layout.stamps, n) is not None]
    if not tasks:
        report.notes.append("note: hosts: no host stage has been converged yet (nothing to compare)")
        return
    config = ssh_config(project)
    if (config is not None and not config.exists() and "HOMELAB_HOST_RUNNER" not in os.environ):
        # the real runner would time out on every host: say once why none can be reached
        report.unchecked.append(f"not checked: hosts: the sandbox is not up (no {project.layout.rel(config)}; "
                                "python -m homelab.sandbox up)")
        return
    runner = host_runner()
    for name in tasks:
        node = project.graph.nodes[name]
        stage = project.stage(node.stage)
        result = runner.run_stage(project.inventory.data, stage.name, node.host,
                                  secrets={n: project.secrets.value(n) for n in stage.secrets},
                                  upstream=upstream_facts(project, name), ssh_config=config, dry=True)
        report.hosts_checked += 1
        if not result.ok:
            report.unchecked.append(f"not checked: {name}: dry run failed: {result.error}")
            continue
        for op in result.planned:
            # the runner prefixes each operation with its host; the task name already says which host
            text = op.removeprefix(f"{node.host}: ")
            report.drift.append(f"drift: {name}: {text}")
            report.drifted_hosts.add(name)


# -- cluster ------------------------------------------------------------------------------------------------

def applied_releases(project: Project) -> list[tuple[Release, dict[str, Any]]]:
    """(release, stamp) for every release whose stamp says it was applied to a cluster, by name."""
    out = []
    for release in sorted(project.releases, key=lambda r: r.name):
        stamp = stamps.read(project.layout.stamps, release.name)
        if stamp and stamp.get("applied") and (stamp.get("result") or {}).get("applied", True):
            out.append((release, stamp))
    return out


def cluster_drift(project: Project, kubeconfig: Any, report: DriftReport) -> None:
    """Helm revisions and live objects of every applied release."""
    from homelab import kube

    applied = applied_releases(project)
    if not applied:
        report.notes.append("note: cluster: no release has been applied yet (nothing to compare)")
        return
    try:
        dyn = kube.connect(kubeconfig)
    except kube.KubeError as exc:
        report.unchecked.append(f"not checked: cluster: {exc}")
        return
    changed = _inputs_changed(project, [r.name for r, _ in applied])
    renderable = [r for r, _ in applied if r.name not in changed]
    renders = _render_all(project, renderable)
    for release, stamp in applied:
        report.releases_checked += 1
        if release.chart is not None:
            _helm_drift(release, stamp, kubeconfig, report)
        if release.name in changed:
            report.notes.append(f"note: {release.name}: objects not compared: its inputs changed since it was "
                                "applied, so the rendering is not what is live (doit plan names the change)")
            continue
        rendered = renders[release.name]
        if isinstance(rendered, str):
            report.unchecked.append(f"not checked: {release.name}: cannot render: {rendered}")
            continue
        if release.chart is not None and not rendered.chart_rendered:
            report.notes.append(f"note: {release.name}: chart objects not compared: {rendered.note}")
        _object_drift(dyn, release, rendered.objects, report)


def _inputs_changed(project: Project, names: list[str]) -> set[str]:
    from homelab.inputs import input_digest, task_inputs

    out = set()
    for name in names:
        stamp = stamps.read(project.layout.stamps, name) or {}
        if input_digest(task_inputs(project, name)) != stamp.get("input_digest"):
            out.add(name)
    return out


def _render_all(project: Project, releases: list[Release]) -> dict[str, Any]:
    """In-memory renderings (no files written); a RenderError becomes its one-line message."""
    from homelab import render

    def one(release: Release) -> Any:
        try:
            return render.render_objects(project, release)
        except render.RenderError as exc:
            return str(exc)

    # threads: the time goes to helm template subprocesses, which run outside the GIL
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        results = list(pool.map(one, releases))
    return {r.name: out for r, out in zip(releases, results, strict=True)}


def _helm_drift(release: Release, stamp: dict[str, Any], kubeconfig: Any, report: DriftReport) -> None:
    from homelab import helm
    from homelab.binaries import BinaryNotFound

    recorded = (stamp.get("result") or {}).get("helm_revision")
    try:
        rows = helm.history(release.name, release.namespace, kubeconfig)
    except (helm.HelmError, BinaryNotFound) as exc:
        report.unchecked.append(f"not checked: {release.name}: {exc}")
        return
    if not rows:
        report.drift.append(f"drift: {release.name}: helm release missing in namespace {release.namespace} "
                            f"(applied revision {recorded})")
        report.drifted_releases.add(release.name)
        return
    last = rows[-1]
    revision, status = int(last.get("revision", 0)), str(last.get("status", ""))
    if recorded is not None and revision != int(recorded):
        report.drift.append(f"drift: {release.name}: helm revision {recorded} -> {revision} (live)")
        report.drifted_releases.add(release.name)
    if status != "deployed":
        report.drift.append(f"drift: {release.name}: helm status deployed -> {status} (live)")
        report.drifted_releases.add(release.name)


def _object_drift(dyn: Any, release: Release, objects: list[dict[str, Any]], report: DriftReport) -> None:
    hooks = 0
    for obj in objects:
        if livecheck.is_hook(obj):
            hooks += 1
            continue
        resource = livecheck.resource_for(dyn, str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        ref = livecheck.object_ref(obj, release.namespace, bool(resource.namespaced) if resource else True)
        try:
            state, live = livecheck.get_live(dyn, obj, release.namespace)
        except Exception as exc:
            report.unchecked.append(f"not checked: {release.name}: {ref}: {livecheck.describe(exc)}")
            continue
        report.objects_checked += 1
        if state == "unserved":
            report.drift.append(f"drift: {release.name}: {ref}: missing (live: the cluster serves no "
                                f"{obj.get('kind')} in {obj.get('apiVersion')})")
            report.drifted_releases.add(release.name)
            continue
        if live is None:
            if _cleaned_up_job(obj):
                continue
            report.drift.append(f"drift: {release.name}: {ref}: missing (live)")
            report.drifted_releases.add(release.name)
            continue
        for diff in livecheck.compare(obj, live, kind=str(obj.get("kind", ""))):
            report.drift.append(f"drift: {release.name}: {ref}: {diff.path} {livecheck.show(diff.want)} -> "
                                f"{livecheck.show(diff.have)} (live)")
            report.drifted_releases.add(release.name)
    if hooks:
        report.notes.append(f"note: {release.name}: {hooks} helm hook object(s) not compared (helm deletes hooks "
                            "by their own policy)")


def _cleaned_up_job(obj: dict[str, Any]) -> bool:
    """A Job with ``ttlSecondsAfterFinished`` is deleted by Kubernetes once done: its absence is expected."""
    return obj.get("kind") == "Job" and (obj.get("spec") or {}).get("ttlSecondsAfterFinished") is not None
