"""Every real release of the repository applied through the drivers, in graph order, against the fake API.

Remote charts are stand-ins (``helm create`` at the pinned name and version, with the CRDs and admission
webhook the real platform chart provides); our own charts under charts/ are the real ones. This proves the
values, manifests and ordering of the real releases go through helm and server-side apply, and that the
stand-in helpers the engine-level tests reuse are complete.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from homelab import apply, paths, redact, stamps
from homelab.project import Project
from tests.helpers import make_tree
from tests.unit.test_apply_support import Cluster, cluster, serve_k3s_builtins, stage_standins

__all__ = ["cluster"]  # the fixture, imported for pytest

pytestmark = pytest.mark.fakeapi


def test_all_real_releases_apply_in_graph_order(tmp_path: Path, cluster: Cluster,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path / "real", real_releases=True)
    for key, value in tree.env().items():
        if key.startswith("HOMELAB_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOMELAB_CHART_CACHE", str(tmp_path / "cache"))
    redact.clear()
    serve_k3s_builtins(cluster.api)
    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok, [p.line() for p in project.problems]
    stage_standins(project, tmp_path / "cache", tmp_path / "standins")
    project = Project.load(paths.layout("sandbox", tree.root))

    order = [n for n in project.graph.topo_order() if project.graph.nodes[n].kind == "release"]
    failures = {}
    for name in order:
        result = apply.apply_release(project, project.release(name), cluster.kubeconfig)
        if not result.ok:
            failures[name] = result.error
            continue
        stamps.write(project.layout.stamps, name, kind="release", input_digest="i", result_digest="r", inputs={},
                     result=result.stamp_result(), applied=True)
    assert failures == {}

    with_chart = sorted(r.name for r in project.releases if r.chart is not None)
    assert sorted(cluster.helm.releases_upgraded()) == with_chart  # each installed exactly once
    assert sorted(r.name for r in cluster.api.helm_releases()) == with_chart
    assert all(r.revision == 1 and r.status == "deployed" for r in cluster.api.helm_releases())
    for release in project.releases:
        if release.manifests:
            stamp = stamps.read(project.layout.stamps, release.name)
            assert stamp is not None and stamp["result"]["applied_objects"], release.name
            assert stamp["result"]["applied_kinds"], release.name
