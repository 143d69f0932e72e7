"""Chart cache and charts.lock: offline, with stand-in archives made by `helm create` + `helm package`.

Nothing here reaches a chart repository: pulls either find the archive in the cache, go to a fake helm
that copies a stand-in (to check the command line), or to a closed local port (to check the failure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from homelab import charts, paths
from homelab.project import Project
from tests.helpers import FIXTURES, REPO, Tree
from tests.helpers import load_valid as load

HELM = str(REPO / ".venv" / "bin" / "helm")


def build_standin(name: str, version: str, dest: Path, work: Path, marker: str = "") -> Path:
    """A stand-in for a remote chart: helm create, the test overlay, helm package at the pinned version."""
    src = work / f"{name}-{version}{marker}"
    subprocess.run([HELM, "create", str(src)], check=True, capture_output=True)
    (src / "Chart.yaml").write_text((src / "Chart.yaml").read_text().replace(f"name: {src.name}", f"name: {name}"))
    shutil.copytree(FIXTURES / "charts" / "overlay", src, dirs_exist_ok=True)
    if marker:  # a different archive under the same name and version: a re-published chart
        (src / "templates" / "marker.txt").write_text(marker)
    dest.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([HELM, "package", str(src), "--version", version, "-d", str(dest)], check=True,
                         capture_output=True, text=True)
    assert out.returncode == 0
    archive = dest / f"{name}-{version}.tgz"
    assert archive.is_file()
    return archive


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("standin-src")
    store = tmp_path_factory.mktemp("standins")
    return {
        "postgresql": build_standin("postgresql", "16.4.2", store / "good", work),
        "postgresql-republished": build_standin("postgresql", "16.4.2", store / "other", work, marker="v2"),
        "webapp": build_standin("webapp", "1.0.0", store / "good", work),
    }


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "chart-cache"
    monkeypatch.setenv("HOMELAB_CHART_CACHE", str(path))
    return path


@pytest.fixture
def no_network_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A helm that records every call and fails: any pull attempt shows up in the log."""
    log = tmp_path / "helm-calls.log"
    script = tmp_path / "helm-offline"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\necho "Error: no network in this test" >&2\nexit 1\n')
    script.chmod(0o755)
    monkeypatch.setenv("HOMELAB_HELM", str(script))
    return log


def fake_pulling_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archive: Path) -> Path:
    """A helm whose `pull` copies ``archive`` to --destination, as a reachable repository would."""
    log = tmp_path / "helm-pulls.log"
    script = tmp_path / "helm-pull"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'dest=""; prev=""\n'
        'for a in "$@"; do [ "$prev" = "--destination" ] && dest="$a"; prev="$a"; done\n'
        f'cp {archive} "$dest/"\n')
    script.chmod(0o755)
    monkeypatch.setenv("HOMELAB_HELM", str(script))
    return log




def lock_entries(tree: Tree) -> dict[str, dict[str, str]]:
    data = yaml.safe_load((tree.root / "charts.lock").read_text())
    entries: dict[str, dict[str, str]] = data["charts"]
    return entries


def test_cached_archive_is_locked_without_network(tree: Tree, cache: Path, standins: dict[str, Path],
                                                  no_network_helm: Path) -> None:
    cache.mkdir()
    shutil.copy(standins["postgresql"], cache)
    project = load(tree)
    messages = charts.pull(project, ["database"])
    digest = charts.sha256_file(cache / "postgresql-16.4.2.tgz")
    assert messages == [f"database: cached chart postgresql 16.4.2, locked sha256 {digest[:12]}"]
    assert lock_entries(tree) == {"database": {"repo": "oci://registry.example.org/charts", "name": "postgresql",
                                               "version": "16.4.2", "sha256": digest}}
    assert not no_network_helm.exists()
    assert charts.locate(project, project.release("database")) == cache / "postgresql-16.4.2.tgz"


def test_unchanged_lock_and_populated_cache_touch_nothing(tree: Tree, cache: Path, standins: dict[str, Path],
                                                          no_network_helm: Path) -> None:
    cache.mkdir()
    shutil.copy(standins["postgresql"], cache)
    project = load(tree)
    charts.pull(project, ["database"])
    lock = tree.root / "charts.lock"
    before = (lock.read_bytes(), lock.stat().st_mtime_ns)
    assert charts.pull(project, ["database"]) == ["database: chart postgresql 16.4.2 cached, matches charts.lock"]
    assert (lock.read_bytes(), lock.stat().st_mtime_ns) == before
    assert not no_network_helm.exists()


def test_cached_archive_differing_from_lock_is_an_error(tree: Tree, cache: Path, standins: dict[str, Path],
                                                        no_network_helm: Path) -> None:
    cache.mkdir()
    shutil.copy(standins["postgresql"], cache)
    project = load(tree)
    charts.pull(project, ["database"])
    locked = (tree.root / "charts.lock").read_text()
    shutil.copy(standins["postgresql-republished"], cache / "postgresql-16.4.2.tgz")
    with pytest.raises(charts.ChartError) as err:
        charts.pull(project, ["database"])
    (line,) = err.value.errors
    assert line.startswith("database: chart postgresql 16.4.2 from oci://registry.example.org/charts (cached) "
                           "has sha256 ")
    assert "charts.lock says" in line and "refusing it" in line
    assert (tree.root / "charts.lock").read_text() == locked  # never silently re-locked
    assert charts.locate(project, project.release("database")) is None
    reason = charts.find(project, project.release("database")).reason
    assert reason.startswith("chart postgresql 16.4.2 in the cache has sha256 ")
    assert reason.endswith("the cached archive is not the locked chart")


def test_missing_archive_is_pulled_with_helm_pull(tree: Tree, cache: Path, standins: dict[str, Path],
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load(tree)
    log = fake_pulling_helm(tmp_path, monkeypatch, standins["postgresql"])
    messages = charts.pull(project, ["database"])
    assert messages[0].startswith("database: pulled chart postgresql 16.4.2, locked sha256 ")
    (call,) = log.read_text().splitlines()
    assert call.startswith("pull oci://registry.example.org/charts/postgresql --version 16.4.2 --destination ")
    assert (cache / "postgresql-16.4.2.tgz").read_bytes() == standins["postgresql"].read_bytes()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp dirs or partial files left

    log2 = fake_pulling_helm(tmp_path, monkeypatch, standins["webapp"])
    log2.unlink(missing_ok=True)
    charts.pull(project, ["webapp"])
    (call,) = log2.read_text().splitlines()
    assert call.startswith("pull webapp --repo https://charts.example.org/apps --version 1.0.0 --destination ")
    assert set(lock_entries(tree)) == {"database", "webapp"}


def test_pulled_archive_differing_from_lock_is_refused(tree: Tree, cache: Path, standins: dict[str, Path],
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load(tree)
    fake_pulling_helm(tmp_path, monkeypatch, standins["postgresql"])
    charts.pull(project, ["database"])
    (cache / "postgresql-16.4.2.tgz").unlink()  # a fresh machine with the committed lock
    fake_pulling_helm(tmp_path, monkeypatch, standins["postgresql-republished"])
    with pytest.raises(charts.ChartError, match=r"database: chart postgresql 16\.4\.2 .*\(pulled\) has sha256"):
        charts.pull(project, ["database"])
    assert not (cache / "postgresql-16.4.2.tgz").exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]


def test_unreachable_repository_is_an_error_naming_the_chart(tree: Tree, cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # real helm against a closed local port: fails fast, contacts nothing outside this machine
    monkeypatch.setenv("HOMELAB_HELM", HELM)
    tree.edit("releases/webapp/release.yaml", "https://charts.example.org/apps", "https://127.0.0.1:9/apps")
    project = load(tree)
    with pytest.raises(charts.ChartError) as err:
        charts.pull(project, ["webapp"])
    (line,) = err.value.errors
    assert line.startswith("webapp: cannot pull chart webapp 1.0.0 from https://127.0.0.1:9/apps: ")
    assert not (tree.root / "charts.lock").exists()


def test_errors_do_not_lose_the_digests_that_worked(tree: Tree, cache: Path, standins: dict[str, Path],
                                                    no_network_helm: Path) -> None:
    cache.mkdir()
    shutil.copy(standins["postgresql"], cache)
    project = load(tree)
    with pytest.raises(charts.ChartError) as err:
        charts.pull(project)  # database is cached; storage, inference and webapp cannot be pulled
    assert len(err.value.errors) == 3
    assert set(lock_entries(tree)) == {"database"}
    assert err.value.messages[0].startswith("database: cached chart postgresql 16.4.2, locked")


def test_version_bump_needs_a_new_lock_entry(tree: Tree, cache: Path, standins: dict[str, Path],
                                             no_network_helm: Path) -> None:
    cache.mkdir()
    shutil.copy(standins["postgresql"], cache)
    charts.pull(load(tree), ["database"])
    tree.edit("releases/database/release.yaml", "version: 16.4.2", "version: 16.4.3")
    project = load(tree)
    assert charts.locate(project, project.release("database")) is None
    assert charts.find(project, project.release("database")).reason.startswith(
        "chart postgresql 16.4.3 is not in the chart cache: run `doit charts`")


def test_cached_but_unlocked_archive_is_not_used(tree: Tree, cache: Path, standins: dict[str, Path]) -> None:
    cache.mkdir()
    shutil.copy(standins["postgresql"], cache)
    project = load(tree)
    assert charts.locate(project, project.release("database")) is None
    assert charts.find(project, project.release("database")).reason == (
        "chart postgresql 16.4.2 is cached but has no entry in charts.lock: run `doit charts` to verify and lock it")


def test_full_pull_drops_entries_of_removed_releases(tree: Tree, cache: Path, standins: dict[str, Path],
                                                     no_network_helm: Path) -> None:
    cache.mkdir()
    shutil.copy(standins["postgresql"], cache)
    shutil.copy(standins["webapp"], cache)
    charts.pull(load(tree), ["database", "webapp"])
    shutil.rmtree(tree.root / "releases" / "webapp")
    project = load(tree)
    with pytest.raises(charts.ChartError) as err:  # storage and inference are not reachable
        charts.pull(project)
    assert "webapp: removed from charts.lock (no remote chart any more)" in err.value.messages
    assert set(lock_entries(tree)) == {"database"}


def test_own_chart_is_located_in_charts_dir(tree: Tree) -> None:
    (tree.root / "charts").mkdir()
    subprocess.run([HELM, "create", str(tree.root / "charts" / "webapp")], check=True, capture_output=True)
    tree.edit("releases/webapp/release.yaml", "chart: {repo: https://charts.example.org/apps, name: webapp, "
              "version: 1.0.0}", "chart: {path: charts/webapp}")
    project = load(tree)
    assert charts.locate(project, project.release("webapp")) == tree.root / "charts" / "webapp"


def test_malformed_lock_is_reported(tree: Tree, cache: Path) -> None:
    tree.write("charts.lock", "charts: [not, a, mapping]\n")
    project = Project.load(paths.layout("sandbox", tree.root))
    assert not project.ok  # a broken lock blocks every action, like any other bad input
    assert [p.line() for p in project.problems] == [
        "charts.lock: (file): charts.lock: expected a mapping with a 'charts' mapping "
        "(fix it or delete it and run `doit charts`)"]
    with pytest.raises(charts.ChartError, match=r"charts\.lock: expected a mapping"):
        charts.read_lock(project)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOMELAB_CHART_CACHE", raising=False)
    assert charts.cache_dir() == Path.home() / ".cache" / "homelab" / "charts"
    monkeypatch.setenv("HOMELAB_CHART_CACHE", "/x/y")
    assert charts.cache_dir() == Path("/x/y")


def test_repo_lock_file_parses() -> None:
    # the committed lock must always be readable (entries appear once `doit charts` ran with network)
    data = yaml.safe_load((REPO / "charts.lock").read_text())
    assert data["version"] == charts.LOCK_VERSION and isinstance(data["charts"], dict)
    assert os.access(REPO / "charts.lock", os.R_OK)
