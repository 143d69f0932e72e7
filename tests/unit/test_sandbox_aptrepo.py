"""The apt repo build: keyed on the package list, incremental, exact (no root: the chroot step is faked).

The fake stands in for the nspawn+apt step only: it "downloads" tiny real .debs (built with dpkg-deb) into
the pool and prints apt's simulation lines; indexing with dpkg-scanpackages is real.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from homelab.sandbox import aptrepo
from homelab.sandbox.config import Paths
from homelab.sandbox.errors import SandboxError
from homelab.sandbox.image import Image

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("dpkg-scanpackages") is None,
    reason="needs dpkg-deb and dpkg-scanpackages (apt-get install dpkg-dev)",
)

# What apt would resolve for each requested package: the package plus its dependencies.
CLOSURE = {"jq": ["libonig5", "jq"], "curl": ["libcurl4", "curl"], "tree": ["tree"]}


def build_deb(directory: Path, name: str, version: str = "1.0-1") -> Path:
    root = directory / f"src-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.test>\n"
        f"Description: test package {name}\n"
    )
    out = directory / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)], check=True, capture_output=True)
    shutil.rmtree(root)
    return out


class FakeApt:
    """Replaces the chroot run: records what was downloaded, like apt into the bound pool."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> None:
        self.downloaded: list[str] = []
        self.fail = fail
        self.real_run = aptrepo.run
        monkeypatch.setattr(aptrepo, "run", self)

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if argv[0] != "systemd-nspawn":
            return self.real_run(argv, **kwargs)
        if self.fail:
            return subprocess.CompletedProcess(list(argv), 100, "", "E: Unable to locate package nope\n")
        pool = Path(next(a for a in argv if a.endswith(":/var/cache/apt/archives")).split("=", 1)[1].split(":")[0])
        packages = list(argv[argv.index("-c") + 3 :])
        lines = []
        for name in sorted({dep for p in packages for dep in CLOSURE[p]}):
            if not (pool / f"{name}_1.0-1_all.deb").exists():
                build_deb(pool, name)
                self.downloaded.append(name)
            lines.append(f"Inst {name} (1.0-1 Debian:12/stable [all])")
        return subprocess.CompletedProcess(list(argv), 0, "\n".join(lines) + "\n", "")


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(repo_root=tmp_path, build=tmp_path / "build" / "sandbox", cache=tmp_path / "cache")


IMAGE = Image(path=Path("/nonexistent/bookworm-base"), build_id="img-1")


def served(repo: Path) -> set[str]:
    return {p.name for p in repo.glob("*.deb")}


def test_builds_an_indexed_flat_repo(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeApt(monkeypatch)
    repo, summary = aptrepo.ensure(paths, "bookworm", IMAGE, ["jq"])
    assert served(repo) == {"jq_1.0-1_all.deb", "libonig5_1.0-1_all.deb"}
    index = (repo / "Packages").read_text()
    assert "Package: jq\n" in index and "Filename: ./jq_1.0-1_all.deb\n" in index
    assert (repo / "Packages.gz").exists() and "Packages.gz" in (repo / "Release").read_text()
    assert summary == "2 .debs for 1 packages (2 downloaded)"


def test_unchanged_list_does_nothing(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeApt(monkeypatch)
    aptrepo.ensure(paths, "bookworm", IMAGE, ["jq"])
    fake = FakeApt(monkeypatch, fail=True)  # would fail if the chroot ran again
    assert aptrepo.ensure(paths, "bookworm", IMAGE, ["jq"])[1] == "up to date"
    assert fake.downloaded == []


def test_adding_a_package_downloads_only_that(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeApt(monkeypatch)
    aptrepo.ensure(paths, "bookworm", IMAGE, ["jq"])
    fake = FakeApt(monkeypatch)
    repo, summary = aptrepo.ensure(paths, "bookworm", IMAGE, ["curl", "jq"])
    assert sorted(fake.downloaded) == ["curl", "libcurl4"]
    assert len(served(repo)) == 4 and summary.endswith("(2 downloaded)")


def test_removing_a_package_drops_it_from_the_repo(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeApt(monkeypatch)
    aptrepo.ensure(paths, "bookworm", IMAGE, ["curl", "jq"])
    repo, _ = aptrepo.ensure(paths, "bookworm", IMAGE, ["jq"])
    assert served(repo) == {"jq_1.0-1_all.deb", "libonig5_1.0-1_all.deb"}
    assert "curl" not in (repo / "Packages").read_text()


def test_a_new_image_re_resolves(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeApt(monkeypatch)
    aptrepo.ensure(paths, "bookworm", IMAGE, ["tree"])
    FakeApt(monkeypatch, fail=True)
    with pytest.raises(SandboxError, match="Unable to locate package"):
        aptrepo.ensure(paths, "bookworm", Image(path=IMAGE.path, build_id="img-2"), ["tree"])


def test_failed_resolution_keeps_the_served_repo(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeApt(monkeypatch)
    repo, _ = aptrepo.ensure(paths, "bookworm", IMAGE, ["jq"])
    before = (repo / "Packages").read_text()
    FakeApt(monkeypatch, fail=True)
    with pytest.raises(SandboxError):
        aptrepo.ensure(paths, "bookworm", IMAGE, ["jq", "tree"])
    assert (repo / "Packages").read_text() == before
    assert [p.name for p in repo.parent.iterdir() if p.name.startswith(".repo.")] == []
