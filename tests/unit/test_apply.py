"""Applying whole releases (homelab.apply) with the real helm on stand-in charts against the fake API."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import pytest

from homelab import apply, kube, paths, redact, stamps
from homelab.project import Project
from homelab.secrets import Secrets
from tests.helpers import Tree
from tests.helpers import load_valid as load
from tests.unit.test_apply_support import (
    Cluster,
    cluster,
    files_containing,
    serve_k3s_builtins,
    stage_standins,
    unreachable_kubeconfig,
)

__all__ = ["cluster"]  # the fixture, imported for pytest

pytestmark = pytest.mark.fakeapi

CANARY = "CANARY-apply-pgpass-0b9e4d61c2"
APP_SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: app-db
stringData:
  password: ${secret:database.admin_password}
"""






def staged(tree: Tree, cache: Path, tmp_path: Path, *releases: str) -> Project:
    project = load(tree)
    stage_standins(project, cache, tmp_path / "standins", releases)
    return load(tree)


def run(project: Project, cluster: Cluster, name: str, **kwargs: object) -> apply.ApplyResult:
    return apply.apply_release(project, project.release(name), cluster.kubeconfig, **kwargs)  # type: ignore[arg-type]


def record_stamp(project: Project, result: apply.ApplyResult) -> None:
    """What the engine does after a successful apply (the part apply reads back: applied_kinds)."""
    stamps.write(project.layout.stamps, result.release, kind="release", input_digest="i", result_digest="r",
                 inputs={}, result=result.stamp_result(), applied=True)


def test_fresh_install_then_upgrade(tree: Tree, cache: Path, tmp_path: Path, cluster: Cluster) -> None:
    project = staged(tree, cache, tmp_path, "database")
    result = run(project, cluster, "database")
    assert result.ok and result.error == ""
    assert (result.revision, result.status, result.changed) == (1, "deployed", 1)
    assert len(result.messages) == 1
    assert result.messages[0].startswith("helm: installed database (postgresql 16.4.2) into data: revision 1, "
                                         "deployed in ")
    assert [(r.name, r.namespace, r.revision) for r in cluster.api.helm_releases()] == [("database", "data", 1)]
    secret = cluster.api.store.find("Secret", "database-auth", "data")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert password == project.secrets.value("database.admin_password")  # type: ignore[union-attr]
    assert result.stamp_result() == {"helm_revision": 1, "helm_status": "deployed", "applied_objects": [],
                                     "applied_kinds": []}
    # the chart is the verified cached archive: no --version, no repository access
    (argv,) = [a for a in cluster.helm.argv() if a[0] == "upgrade"]
    assert argv[3] == str(cache / "postgresql-16.4.2.tgz") and "--version" not in argv

    again = run(project, cluster, "database")
    assert (again.ok, again.revision) == (True, 2)
    assert again.messages[0].startswith("helm: upgraded database (postgresql 16.4.2) to revision 2, deployed in ")


def test_canary_secret_never_leaves_the_cluster_path(tree: Tree, cache: Path, tmp_path: Path, cluster: Cluster,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    tree.write("releases/database/manifests/app-secret.yaml", APP_SECRET)
    project = staged(tree, cache, tmp_path, "database")
    store = Secrets(paths.layout("sandbox", tree.root))
    store.save({**store.load(), "database.admin_password": CANARY})
    project = load(tree)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))

    result = run(project, cluster, "database")
    assert result.ok, result.error
    # the real value reached the cluster: through helm (chart Secret) and through server-side apply
    for name in ("database-auth", "app-db"):
        data = cluster.api.store.find("Secret", name, "data")["data"]["password"]
        assert base64.b64decode(data).decode() == CANARY
    # ... and nowhere else: not on any helm command line, not in what apply reports or prints, not on disk
    calls = cluster.helm.calls()
    assert calls and all(CANARY not in " ".join(c["argv"]) for c in calls)
    (upgrade_call,) = [c for c in calls if c["argv"][0] == "upgrade"]
    assert upgrade_call["values_mode"] == "0o600"
    assert not Path(upgrade_call["values_file"]).exists() and list(tmp.iterdir()) == []
    assert CANARY not in repr(result)
    out, err = capfd.readouterr()
    assert CANARY not in out + err
    assert files_containing(tmp_path, CANARY) == []
    record_stamp(project, result)
    assert files_containing(tmp_path, CANARY) == []
    redact.clear()


def test_pending_upgrade_is_recovered_then_upgraded(tree: Tree, cache: Path, tmp_path: Path,
                                                    cluster: Cluster) -> None:
    project = staged(tree, cache, tmp_path, "database")
    run(project, cluster, "database")
    run(project, cluster, "database")
    cluster.api.set_helm_release_status("database", "data", "pending-upgrade")
    result = run(project, cluster, "database")
    assert result.ok, result.error
    assert result.messages[0] == ("database: revision 2 was left pending-upgrade by an interrupted helm run: rolled "
                                  "back to revision 1, the last deployed one (now revision 3, deployed)")
    assert result.messages[1].startswith("helm: upgraded database (postgresql 16.4.2) to revision 4, deployed")
    assert (result.revision, result.changed) == (4, 2)
    assert cluster.helm.count("rollback") == 1


def test_never_ready_install_is_rolled_back_with_one_line(tree: Tree, cache: Path, tmp_path: Path,
                                                          cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.write("releases/database/manifests/app-secret.yaml", APP_SECRET)
    project = staged(tree, cache, tmp_path, "database")
    cluster.api.never_ready("Deployment", "database-postgresql")
    monkeypatch.setenv("HOMELAB_APPLY_TIMEOUT", "2s")  # instead of the release's timeout (5m by default)
    result = run(project, cluster, "database")
    assert not result.ok and "\n" not in result.error
    assert result.error.startswith("helm upgrade database failed: release database failed, and has been uninstalled "
                                   "due to rollback-on-failure being set: resource Deployment/data/"
                                   "database-postgresql not ready")
    assert result.error.endswith("[no release is left]")
    assert cluster.api.helm_releases() == []
    assert cluster.api.store.find("Secret", "app-db", "data") is None  # extra manifests wait for a good chart
    (argv,) = [a for a in cluster.helm.argv() if a[0] == "upgrade"]
    assert argv[argv.index("--timeout") + 1] == "2s"


def test_extra_manifests_applied_unchanged_and_pruned(tree: Tree, cache: Path, tmp_path: Path,
                                                      cluster: Cluster) -> None:
    serve_k3s_builtins(cluster.api)
    tree.write("releases/webapp/manifests/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "
               "webapp-settings\ndata:\n  domain: ${inv:domain}\n")
    project = staged(tree, cache, tmp_path, "webapp")
    first = run(project, cluster, "webapp")
    assert first.ok, first.error
    # apply order: what others refer to (ConfigMaps, Secrets, ...) first, then file order
    assert first.objects == ["v1 ConfigMap apps/webapp-settings", "traefik.io/v1alpha1 IngressRoute apps/webapp"]
    assert first.applied_kinds == ["traefik.io/v1alpha1/IngressRoute", "v1/ConfigMap"]
    assert first.messages[1:] == ["created ConfigMap apps/webapp-settings", "created IngressRoute apps/webapp"]
    route = cluster.api.store.find("IngressRoute", "webapp", "apps")
    assert route["metadata"]["labels"]["homelab.dev/release"] == "webapp"
    record_stamp(project, first)
    version = route["metadata"]["resourceVersion"]

    second = run(project, cluster, "webapp")
    assert second.messages[1:] == ["2 extra manifest object(s) unchanged"] and second.changed == 1  # helm only
    assert cluster.api.store.find("IngressRoute", "webapp", "apps")["metadata"]["resourceVersion"] == version
    record_stamp(project, second)

    (tree.root / "releases/webapp/manifests/ingressroute.yaml").unlink()
    project = load(tree)
    third = run(project, cluster, "webapp")
    assert third.ok, third.error
    assert third.pruned == ["traefik.io/v1alpha1 IngressRoute apps/webapp"]
    assert "pruned IngressRoute apps/webapp: no longer in webapp's manifests" in third.messages
    assert third.applied_kinds == ["v1/ConfigMap"]
    assert cluster.api.store.find("IngressRoute", "webapp", "apps") is None
    assert cluster.api.store.find("ConfigMap", "webapp-settings", "apps") is not None


def test_release_without_chart_runs_no_helm(tree: Tree, cluster: Cluster) -> None:
    tree.write("releases/extras/release.yaml", "name: extras\nnamespace: dev\ndescription: manifests only, "
               "no chart at all\nneeds: [storage]\n")
    tree.write("releases/extras/manifests/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
               "data: {domain: '${inv:domain}'}\n")
    project = load(tree)
    result = run(project, cluster, "extras")
    assert result.ok, result.error
    assert (result.revision, result.status) == (None, "")
    assert result.messages == ["created namespace dev: extras's manifests live there", "created ConfigMap dev/settings"]
    assert cluster.helm.count() == 0
    assert cluster.api.store.find("ConfigMap", "settings", "dev")["data"] == {"domain": "home.sandbox.test"}


def test_release_without_manifests_never_connects_the_kubernetes_client(
    tree: Tree, cache: Path, tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = staged(tree, cache, tmp_path, "database")

    def refuse(kubeconfig: Path) -> None:
        raise AssertionError("the kubernetes client was used")

    monkeypatch.setattr(kube, "connect", refuse)
    assert run(project, cluster, "database").ok


def test_chart_missing_from_the_cache_is_an_error(tree: Tree, cache: Path, cluster: Cluster) -> None:
    project = load(tree)
    result = run(project, cluster, "webapp")
    assert not result.ok
    assert result.error == ("webapp: cannot install: chart webapp 1.0.0 is not in the chart cache: run `doit charts` "
                            "where the chart repo is reachable")
    assert cluster.helm.count() == 0


def test_unreachable_cluster_is_one_line(tree: Tree, cache: Path, tmp_path: Path, cluster: Cluster) -> None:
    project = staged(tree, cache, tmp_path, "database")
    result = apply.apply_release(project, project.release("database"), unreachable_kubeconfig(tmp_path))
    assert not result.ok and "\n" not in result.error and "connection refused" in result.error


def test_kubeconfig_path(tree: Tree, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    project = load(tree)
    monkeypatch.delenv("HOMELAB_KUBECONFIG", raising=False)
    assert apply.kubeconfig_path(project) == tree.build / "kubeconfig"
    monkeypatch.setenv("HOMELAB_KUBECONFIG", str(tmp_path / "kc"))
    assert apply.kubeconfig_path(project) == tmp_path / "kc"


def test_previous_kinds_come_from_the_stamp(tree: Tree) -> None:
    project = load(tree)
    assert apply.previous_kinds(project, project.release("webapp")) == []
    result = apply.ApplyResult("webapp", applied_kinds=["v1/ConfigMap"])
    record_stamp(project, result)
    assert apply.previous_kinds(project, project.release("webapp")) == ["v1/ConfigMap"]
