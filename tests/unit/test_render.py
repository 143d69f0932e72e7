"""Rendering releases offline with real helm on stand-in charts; secrets stay references; atomic output."""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab import charts, paths, render
from homelab.project import Project
from homelab.secrets import Secrets
from tests.helpers import FIXTURES, REPO, Tree, make_tree
from tests.helpers import load_valid as load

HELM = str(REPO / ".venv" / "bin" / "helm")
CANARY = "CANARY-render-pgpass-5e1c9a7b3d"


def build_standin(name: str, version: str, dest: Path, work: Path) -> Path:
    """helm create + the test overlay (tests/fixtures/charts) + helm package at the pinned name and version."""
    src = work / f"{name}-{version}"
    subprocess.run([HELM, "create", str(src)], check=True, capture_output=True)
    (src / "Chart.yaml").write_text((src / "Chart.yaml").read_text().replace(f"name: {src.name}", f"name: {name}"))
    shutil.copytree(FIXTURES / "charts" / "overlay", src, dirs_exist_ok=True)
    subprocess.run([HELM, "package", str(src), "--version", version, "-d", str(dest)], check=True, capture_output=True)
    return dest / f"{name}-{version}.tgz"


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work, store = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("standins")
    return {"database": build_standin("postgresql", "16.4.2", store, work),
            "webapp": build_standin("webapp", "1.0.0", store, work)}






def cached(tree: Tree, cache: Path, standins: dict[str, Path], *releases: str) -> Project:
    """Put stand-ins for the releases' charts into the cache and lock them (no network: they are cached)."""
    for name in releases:
        shutil.copy(standins[name], cache)
    project = load(tree)
    charts.pull(project, list(releases))
    return project


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [o["kind"] for o in objects]


def test_standin_chart_renders_with_release_values(tree: Tree, cache: Path, standins: dict[str, Path]) -> None:
    project = cached(tree, cache, standins, "database")
    out = render.render_release(project, project.release("database"))
    assert out.chart_rendered and out.note == ""
    assert kinds(out.objects) == ["CustomResourceDefinition", "ServiceAccount", "Secret", "ConfigMap", "Service",
                                  "Deployment"]
    assert [f.name for f in out.files] == [
        "00-customresourcedefinition-widgets.example.com.yaml", "01-serviceaccount-database-postgresql.yaml",
        "02-secret-database-auth.yaml", "03-configmap-database-capabilities.yaml",
        "04-service-database-postgresql.yaml", "05-deployment-database-postgresql.yaml"]
    assert all(f.parent == tree.build / "manifests" / "database" for f in out.files)
    deployment = out.objects[5]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/library/postgres:16.4"
    caps = out.objects[3]["data"]
    # --kube-version from the inventory's k3s version, --api-versions from schemas/crds/index.json
    assert caps == {"kubeVersion": "v1.31.4", "serviceMonitorApi": "true", "ingressRouteGroup": "true",
                    "namespace": "data", "releaseDate": "2024-01-01"}
    assert out.objects[2]["stringData"] == {"password": "<secret:database.admin_password>"}
    # chart objects carry no tracking label: Helm tracks them
    assert all(render.RELEASE_LABEL not in (o["metadata"].get("labels") or {}) for o in out.objects)
    assert yaml.safe_load(out.files[5].read_text()) == deployment


def test_secret_files_are_0600_and_others_0644(tree: Tree, cache: Path, standins: dict[str, Path]) -> None:
    project = cached(tree, cache, standins, "database")
    out = render.render_release(project, project.release("database"))
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in out.files}
    assert modes.pop("02-secret-database-auth.yaml") == 0o600
    assert set(modes.values()) == {0o644}


def test_values_file_is_private_and_removed(tree: Tree, cache: Path, standins: dict[str, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    project = cached(tree, cache, standins, "database")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    seen = tmp_path / "values-mode"
    wrapper = tmp_path / "helm-wrapper"
    # records the mode of the -f file while helm runs, then runs the real helm
    wrapper.write_text('#!/bin/sh\nprev=""\nfor a in "$@"; do [ "$prev" = "-f" ] && stat -c %a "$a" >> '
                       f'{seen}; prev="$a"; done\nexec {HELM} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("HOMELAB_HELM", str(wrapper))
    render.render_release(project, project.release("database"))
    assert seen.read_text().split() == ["600"]
    assert list(tmp.iterdir()) == []


def test_canary_secret_never_reaches_build(tree: Tree, cache: Path, standins: dict[str, Path]) -> None:
    project = cached(tree, cache, standins, "database")
    store = Secrets(paths.layout("sandbox", tree.root))
    store.save({**store.load(), "database.admin_password": CANARY})
    project = load(tree)
    results = render.render_all(project)
    assert results["database"][0].chart_rendered
    files = [p for p in tree.build.rglob("*") if p.is_file()]
    assert any(p.name == "02-secret-database-auth.yaml" for p in files)
    for path in files:
        assert CANARY not in path.read_text(errors="replace"), f"canary leaked into {path}"
    secret = tree.build / "manifests" / "database" / "02-secret-database-auth.yaml"
    assert "<secret:database.admin_password>" in secret.read_text()


def test_uncached_chart_renders_extra_manifests_only(tree: Tree, cache: Path) -> None:
    project = load(tree)
    out = render.render_release(project, project.release("webapp"))
    assert not out.chart_rendered
    assert out.note == ("chart webapp 1.0.0 is not in the chart cache: run `doit charts` where the chart repo is "
                        "reachable; extra manifests rendered only")
    assert kinds(out.objects) == ["IngressRoute"] and out.extra == out.objects
    route = out.objects[0]
    assert route["metadata"]["labels"] == {render.RELEASE_LABEL: "webapp"}
    assert route["metadata"]["namespace"] == "apps"
    assert route["spec"]["routes"][0]["match"] == "Host(`webapp.home.sandbox.test`)"
    assert [f.name for f in out.files] == ["00-ingressroute-webapp.yaml"]


def test_release_without_chart_renders_its_manifests(tree: Tree, cache: Path) -> None:
    tree.write("releases/extras/release.yaml", "name: extras\nnamespace: apps\ndescription: manifests only, "
               "no chart at all\nneeds: [webapp]\n")
    tree.write("releases/extras/manifests/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
               "  labels: {app: settings}\ndata: {domain: '${inv:domain}'}\n")
    project = load(tree)
    out, found = render.check_release(project, project.release("extras"))
    assert (out.chart_rendered, out.note, found) == (False, "", [])
    assert out.objects == [{"apiVersion": "v1", "kind": "ConfigMap", "data": {"domain": "home.sandbox.test"},
                            "metadata": {"name": "settings", "namespace": "apps",
                                         "labels": {"app": "settings", render.RELEASE_LABEL: "extras"}}}]


def test_rendering_is_deterministic(tree: Tree, cache: Path, standins: dict[str, Path]) -> None:
    project = cached(tree, cache, standins, "database")

    def snapshot() -> dict[str, bytes]:
        render.render_all(project)
        base = tree.build / "manifests"
        return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}

    first = snapshot()
    assert first and first == snapshot()


def test_output_directory_is_replaced_whole(tree: Tree, cache: Path, standins: dict[str, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    project = cached(tree, cache, standins, "database")
    release_dir = tree.build / "manifests" / "database"
    release_dir.mkdir(parents=True)
    (release_dir / "99-stale-object.yaml").write_text("kind: Stale\n")
    render.render_release(project, project.release("database"))
    assert not (release_dir / "99-stale-object.yaml").exists()
    before = {p.name: p.read_bytes() for p in release_dir.iterdir()}

    # a crash half-way through writing the next rendering leaves the previous one whole
    real_write = render._write
    calls = {"n": 0}

    def crash_on_third(path: Path, text: str, mode: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_write(path, text.replace("postgres:16.4", "postgres:17.0"), mode)

    monkeypatch.setattr(render, "_write", crash_on_third)
    with pytest.raises(OSError, match="disk full"):
        render.render_release(project, project.release("database"))
    assert {p.name: p.read_bytes() for p in release_dir.iterdir()} == before
    assert sorted(p.name for p in release_dir.parent.iterdir()) == ["database"]  # no temp dirs left behind


def test_helm_failure_is_a_violation_not_a_crash(tree: Tree, cache: Path, standins: dict[str, Path]) -> None:
    # the fixture's webapp sets image to a string; helm create's template reads image.repository
    project = cached(tree, cache, standins, "webapp")
    out, found = render.check_release(project, project.release("webapp"))
    assert not out.chart_rendered and out.objects == []
    (violation,) = found
    assert violation.line().startswith("webapp: Chart/webapp: (object): helm template failed: ")
    assert violation.line() == (
        'webapp: Chart/webapp: (object): helm template failed: webapp/templates/deployment.yaml:41:28 executing '
        '"webapp/templates/deployment.yaml" at <.Values.image.repository>: can\'t evaluate field repository in '
        'type interface {}')


def test_check_release_runs_schema_and_policy(tree: Tree, cache: Path, standins: dict[str, Path]) -> None:
    project = cached(tree, cache, standins, "database")
    _, found = render.check_release(project, project.release("database"))
    assert [v.line() for v in found] == [
        "database: Deployment/database-postgresql: spec.template.spec.containers[0].resources: container postgresql "
        "lacks requests.cpu, requests.memory, limits.cpu, limits.memory"]


def test_schema_violation_in_extra_manifest_is_reported(tree: Tree, cache: Path) -> None:
    tree.edit("releases/webapp/manifests/ingressroute.yaml", "entryPoints:", "entryPoint:")
    project = load(tree)
    _, found = render.check_release(project, project.release("webapp"))
    assert [v.line() for v in found] == [
        "webapp: IngressRoute/webapp: spec.entryPoint: unknown field (did you mean 'entryPoints'?)"]


def test_render_all_drops_renderings_of_deleted_releases(tree: Tree, cache: Path) -> None:
    render.render_all(load(tree))
    assert (tree.build / "manifests" / "webapp").is_dir()
    shutil.rmtree(tree.root / "releases" / "webapp")
    results = render.render_all(load(tree))
    assert sorted(results) == ["database", "inference", "storage"]
    assert sorted(p.name for p in (tree.build / "manifests").iterdir()) == ["database", "inference", "storage"]


def test_kube_version_comes_from_the_inventory(tree: Tree) -> None:
    assert render.kube_version(load(tree)) == "1.31.4"


def test_file_names_are_safe_and_ordered() -> None:
    objs: list[dict[str, Any]] = [{"kind": "ConfigMap", "metadata": {"name": "A_b"}}, {"kind": "Secret"}]
    objs += [{"kind": "Service", "metadata": {"name": f"s{i}"}} for i in range(100)]
    names = render.file_names(objs)
    assert names[:2] == ["000-configmap-a-b.yaml", "001-secret-unnamed.yaml"]
    assert names == sorted(names) and len(set(names)) == len(names)


def test_real_releases_render_without_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's own releases: extra manifests and our charts render, validate and pass policy."""
    real = make_tree(tmp_path / "real", real_releases=True)
    for key, value in real.env().items():
        if key.startswith("HOMELAB_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOMELAB_CHART_CACHE", str(tmp_path / "empty-cache"))
    project = load(real)
    results = render.render_all(project)
    assert results
    errors = [v.line() for _, found in results.values() for v in found if v.severity == "error"]
    assert errors == []
    for name, (out, _) in results.items():
        own_chart = "path" in (project.release(name).chart or {})
        assert out.chart_rendered == own_chart, (name, out.note)


def test_summary_lines(tree: Tree, cache: Path) -> None:
    project = load(tree)
    out, found = render.check_release(project, project.release("webapp"))
    assert render.summary(project, out, found) == [
        "webapp: 1 object(s) (0 from the chart, 1 extra) -> build/sandbox/manifests/webapp/, 0 error(s), 0 warning(s)",
        "webapp: note: chart webapp 1.0.0 is not in the chart cache: run `doit charts` where the chart repo is "
        "reachable; extra manifests rendered only"]
