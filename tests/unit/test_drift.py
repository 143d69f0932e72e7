"""``doit drift`` (homelab.drift) against the FAKE Kubernetes API server, after converging the real releases with
stand-in charts (as tests/unit/test_converge_fakeapi.py does), and host drift through the FAKE host runner.

The lab is converged once for the module (about half a minute); the tests run in file order: the untouched
cluster first, then each test changes the live state and asserts the exact drift lines it causes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from homelab import drift, paths, redact, stamps
from homelab.project import Project
from tests.fakeapi import FakeApiServer
from tests.helpers import Tree, make_tree
from tests.unit.test_apply_support import (HelmRecorder, create_objects, schema_crds, serve_k3s_builtins,
                                          stage_standins)

pytestmark = pytest.mark.fakeapi


@dataclass
class Lab:
    """A tree converged against the fake API; ``env`` is what the engine in this process and doit need."""

    tree: Tree
    api: FakeApiServer
    kubeconfig: Path
    helm: HelmRecorder
    env: dict[str, str]
    standins: dict[str, Path]

    def project(self) -> Project:
        stamps._READ.clear()  # doit wrote the stamps in another process
        project = Project.load(paths.layout("sandbox", self.tree.root))
        assert project.ok, [p.line() for p in project.problems]
        return project

    def dyn(self) -> Any:
        from homelab import kube

        return kube.connect(self.kubeconfig)

    def helm_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.helm.path), *args, "--kubeconfig", str(self.kubeconfig)],
                              env=self.tree.env(**self.env), capture_output=True, text=True, timeout=120,
                              check=True)


def converged_lab(tmp: Path, mp: pytest.MonkeyPatch) -> Iterator[Lab]:
    """A fake cluster with every real release converged by ``doit`` (FAKE host runner, stand-in charts)."""
    # the k3s version of hosts/sandbox.yaml: helm template renders offline with it, helm install with the API's
    api = FakeApiServer(server_version="v1.31.4").start()
    try:
        kubeconfig = api.write_kubeconfig(tmp / "cluster" / "kubeconfig")
        recorder = HelmRecorder(tmp / "cluster" / "bin")
        tree = make_tree(tmp, real_releases=True)
        env = {
            "HOMELAB_KUBECONFIG": str(kubeconfig),
            "HOMELAB_HELM": str(recorder.path),
            "HELM_CACHE_HOME": str(tmp / "cluster" / "helm-cache"),
            "HELM_CONFIG_HOME": str(tmp / "cluster" / "helm-config"),
            "HELM_DATA_HOME": str(tmp / "cluster" / "helm-data"),
        }
        for key, value in {**tree.env(**env), **env}.items():
            if key.startswith(("HOMELAB_", "HELM_")):
                mp.setenv(key, value)
        for key in ("KUBECONFIG", "HELM_NAMESPACE", "HELM_KUBECONTEXT", "HELM_DRIVER", "HOMELAB_BUILD_DIR"):
            mp.delenv(key, raising=False)
        redact.clear()
        serve_k3s_builtins(api)
        # as on a lab converged before: charts installed ahead of monitoring see its APIs (offline rendering
        # always does), so .Capabilities checks render alike
        create_objects(api, schema_crds()["monitoring.coreos.com"])
        project = Project.load(paths.layout("sandbox", tree.root))
        assert project.ok, [p.line() for p in project.problems]
        built = stage_standins(project, Path(tree.env()["HOMELAB_CHART_CACHE"]), tmp / "standins")
        run = tree.doit(**env)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        yield Lab(tree, api, kubeconfig, recorder, env, built)
    finally:
        api.stop()
    assert not api.errors, api.errors


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with pytest.MonkeyPatch.context() as mp:
        yield from converged_lab(tmp_path_factory.mktemp("drift"), mp)


def test_untouched_cluster_has_no_drift(lab: Lab) -> None:
    report = drift.drift_report(lab.project())
    print("\n".join(report.lines))
    assert report.drift == []
    assert report.unchecked == []
    assert report.exit_code == 0
    assert report.releases_checked >= 14 and report.objects_checked > 50
    assert report.lines[-1].startswith("drift: none (")
