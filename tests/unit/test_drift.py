"""``doit drift`` (homelab.drift) against the FAKE Kubernetes API server, after converging the real releases with
stand-in charts (as tests/unit/test_converge_fakeapi.py does), and host drift through the FAKE host runner.

The lab is converged once for the module (about half a minute); the tests run in file order: the untouched
cluster first, then each test changes the live state and asserts the exact drift lines it causes.
"""

from __future__ import annotations

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
from tests.unit.test_apply_support import HelmRecorder, create_objects, schema_crds, serve_k3s_builtins, stage_standins

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


def _patch(lab: Lab, api_version: str, kind: str, name: str, namespace: str, body: dict[str, Any]) -> None:
    resource = lab.dyn().resources.get(api_version=api_version, kind=kind)
    resource.patch(body=body, name=name, namespace=namespace, content_type="application/merge-patch+json")


def test_hand_made_changes_are_drift_with_their_field_paths(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    # a Deployment scaled by hand (a chart object), a ConfigMap edited (an extra manifest), an IngressRoute deleted
    _patch(lab, "apps/v1", "Deployment", "postgresql", "data", {"spec": {"replicas": 3}})
    _patch(lab, "v1", "ConfigMap", "paperless-ai-config", "docs",
           {"data": {"OLLAMA_TRUNCATE_NUMBER": "900", "PROCESS_PREDEFINED_DOCUMENTS": None}})
    lab.dyn().resources.get(api_version="traefik.io/v1alpha1", kind="IngressRoute").delete(
        name="traefik-dashboard", namespace="kube-system")
    # a second helm upgrade by hand (same chart, same values): a revision the engine did not make
    lab.helm_cli("upgrade", "loki", str(lab.standins["loki"]), "--namespace", "monitoring", "--reuse-values")
    # a release left failed
    lab.api.set_helm_release_status("metallb", "infra", "failed")
    # a managed file changed on a host: the FAKE runner's dry run reports it
    monkeypatch.setenv("FAKE_HOSTRUN_DRIFT", '{"vm:sbx-worker-01": ["files.put /etc/environment"]}')

    report = drift.drift_report(lab.project())

    assert report.drift == [
        "drift: vm:sbx-worker-01: files.put /etc/environment",
        "drift: loki: helm revision 1 -> 2 (live)",
        "drift: metallb: helm status deployed -> failed (live)",
        "drift: paperless-ai: ConfigMap/docs/paperless-ai-config: data.OLLAMA_TRUNCATE_NUMBER 500 -> 900 (live)",
        "drift: paperless-ai: ConfigMap/docs/paperless-ai-config: data.PROCESS_PREDEFINED_DOCUMENTS true -> absent "
        "(live)",
        "drift: postgres: Deployment/data/postgresql: spec.replicas 1 -> 3 (live)",
        "drift: traefik: IngressRoute/kube-system/traefik-dashboard: missing (live)",
    ]
    assert report.exit_code == 2
    assert report.drifted_hosts == {"vm:sbx-worker-01"}
    assert report.drifted_releases == {"loki", "metallb", "paperless-ai", "postgres", "traefik"}
    assert report.lines[-1].startswith("drift: 7 difference(s): 1 host stage(s), 5 release(s) (")
    assert report.lines[: len(report.drift)] == report.drift


def test_secret_values_are_never_compared_or_printed(lab: Lab) -> None:
    canary = "CANARY-drift-secret-9f3e1d"
    import base64

    secret = base64.b64encode(canary.encode()).decode()
    _patch(lab, "v1", "Secret", "traefik-dashboard-auth", "kube-system", {"data": {"users": secret}})
    report = drift.drift_report(lab.project(), hosts=False)
    assert not [line for line in report.lines if "traefik-dashboard-auth" in line or canary in line]
    assert not [line for line in report.lines if secret in line]


def test_release_whose_inputs_changed_is_not_compared_object_by_object(lab: Lab) -> None:
    lab.tree.edit("releases/paperless-ai/manifests/paperless-ai.yaml", 'OLLAMA_TRUNCATE_NUMBER: "500"',
                  'OLLAMA_TRUNCATE_NUMBER: "700"')
    try:
        report = drift.drift_report(lab.project(), hosts=False)
    finally:
        lab.tree.edit("releases/paperless-ai/manifests/paperless-ai.yaml", 'OLLAMA_TRUNCATE_NUMBER: "700"',
                      'OLLAMA_TRUNCATE_NUMBER: "500"')
    assert not [line for line in report.drift if line.startswith("drift: paperless-ai:")]
    assert ("note: paperless-ai: objects not compared: its inputs changed since it was applied, so the rendering "
            "is not what is live (doit plan names the change)") in report.lines


# -- the sandbox: no Kubernetes API, host stages through the FAKE runner ---------------------------------------

@pytest.fixture
def sandbox_tree(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> Tree:
    """The base fixture tree converged by doit with the FAKE host runner and no Kubernetes API."""
    monkeypatch.delenv("HOMELAB_KUBECONFIG", raising=False)
    monkeypatch.setenv("HOMELAB_HOST_RUNNER", "tests.fakes.fake_hostrun")
    result = tree.doit()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    stamps._READ.clear()
    return tree


def _sandbox_project(tree: Tree) -> Project:
    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok, [p.line() for p in project.problems]
    return project


def test_sandbox_checks_hosts_only_and_says_the_cluster_was_not_checked(sandbox_tree: Tree) -> None:
    report = drift.drift_report(_sandbox_project(sandbox_tree))
    assert report.drift == [] and report.unchecked == []
    assert report.exit_code == 0
    assert report.hosts_checked == 18 and report.releases_checked == 0
    assert [line for line in report.lines if line.startswith("not checked:")] == [
        "not checked: cluster: no Kubernetes API (the sandbox's k3s is a stand-in; HOMELAB_KUBECONFIG=... names "
        "a cluster to check)"]


def test_sandbox_host_drift_and_unreachable_hosts(sandbox_tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_HOSTRUN_DRIFT", '{"k3s:sbx-gpu-worker": ["files.template /etc/rancher/k3s/config.yaml",'
                                             ' "systemd.service k3s-agent.service"]}')
    report = drift.drift_report(_sandbox_project(sandbox_tree))
    assert report.drift == ["drift: k3s:sbx-gpu-worker: files.template /etc/rancher/k3s/config.yaml",
                            "drift: k3s:sbx-gpu-worker: systemd.service k3s-agent.service"]
    assert report.exit_code == 2
    monkeypatch.delenv("FAKE_HOSTRUN_DRIFT")
    monkeypatch.setenv("FAKE_HOSTRUN_FAIL", "nfs:sbx-master")
    report = drift.drift_report(_sandbox_project(sandbox_tree))
    assert report.drift == []
    assert report.unchecked == ["not checked: nfs:sbx-master: dry run failed: sbx-master: ssh: connect to host "
                                "refused (fake)"]
    assert report.exit_code == 1


# -- the comparison rules ------------------------------------------------------------------------------------

def test_compare_projects_the_live_object_onto_what_we_set() -> None:
    from homelab.livecheck import ABSENT, FieldDiff, compare

    want = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "x", "labels": {"homelab.dev/release": "r"}, "annotations":
                         {"checksum/secret": "abc"}, "creationTimestamp": None},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                                     "env": [{"name": "PW", "value": "<secret:app.password>"}], "ports": []}],
                     "replicas": 1, "flag": True, "volumes": [{"name": "v", "emptyDir": {}}]}}
    live = {"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running"},
            "metadata": {"name": "p", "namespace": "y", "uid": "1",
                         "labels": {"homelab.dev/release": "r", "extra": "1"},
                         "annotations": {"checksum/secret": "def", "helm": "x"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}},
                                     "env": [{"name": "PW", "value": "hunter2"}], "image": "x"}],
                     "replicas": "1", "flag": 1, "volumes": [{"name": "v", "emptyDir": {}}]}}
    assert compare(want, live, kind="Pod") == [FieldDiff("spec.flag", True, 1)]
    assert compare({"data": {"a": "1"}}, {}, kind="ConfigMap") == [FieldDiff("data", {"a": "1"}, ABSENT)]
    assert compare({"kind": "Secret", "data": {"a": "eA=="}}, {"kind": "Secret"}, kind="Secret") == []
    assert compare({"metadata": {"labels": {"a/b": "1"}}}, {"metadata": {"labels": {"a/b": "2"}}}) == [
        FieldDiff("metadata.labels[a/b]", "1", "2")]
    assert compare({"args": ["a", "b"]}, {"args": ["a"]}) == [FieldDiff("args", ["a", "b"], ["a"])]


def test_show_keeps_values_short() -> None:
    from homelab.livecheck import ABSENT, show

    assert show(3) == "3" and show("v1.2") == "v1.2" and show(ABSENT) == "absent" and show(True) == "true"
    assert show("two words") == '"two words"'
    assert show("line\n" * 30).startswith("<") and "sha256" in show("line\n" * 30)


def test_unreadable_helm_is_not_checked_not_no_drift(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMELAB_HELM", str(lab.tree.root / "no-such-helm"))
    report = drift.drift_report(lab.project(), hosts=False)
    assert [line for line in report.unchecked if line.startswith("not checked: postgres: ")]
    # 1 alone; 2 when the earlier tests' drift is still there: what could not be checked never hides drift
    assert report.exit_code == (2 if report.drift else 1)
