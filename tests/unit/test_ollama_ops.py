"""Ollama's post-deploy model pulls and health check against a FAKE Ollama HTTP API on 127.0.0.1
(stand-in for the real server behind the ollama IngressRoute)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from homelab import paths, redact
from homelab.ops import ollama
from homelab.project import Project
from tests.fakes.fake_ollama import FakeOllama
from tests.helpers import Tree, make_tree


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama()
    yield fake
    fake.stop()


@pytest.fixture
def real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Tree, Project]:
    tree = make_tree(tmp_path, real_releases=True)
    for key, value in tree.env().items():
        if key.startswith("HOMELAB_"):
            monkeypatch.setenv(key, value)
    redact.clear()
    return tree, Project.load(paths.layout("sandbox", tree.root))


def test_pull_only_missing_models_then_nothing(real: tuple[Tree, Project], fake_ollama: FakeOllama,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _, project = real
    monkeypatch.setenv("HOMELAB_OLLAMA_URL", fake_ollama.url)
    wanted = ollama.model_list(project)
    assert "llama3.2:1b" in wanted
    fake_ollama.models.add(wanted[0])
    lines: list[str] = []
    first = ollama.pull_models(project, out=lines.append)
    assert first.ok, first.message
    assert fake_ollama.pulls == wanted[1:]
    assert any(f"{wanted[0]}: already present, not pulled" in ln for ln in lines)
    second = ollama.pull_models(project, out=lines.append)
    assert second.ok and fake_ollama.pulls == wanted[1:]  # idempotent: nothing pulled again


def test_health_checks_tags_and_generate(real: tuple[Tree, Project], fake_ollama: FakeOllama,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _, project = real
    monkeypatch.setenv("HOMELAB_OLLAMA_URL", fake_ollama.url)
    missing = ollama.health(project, out=lambda _: None)
    assert not missing.ok and "does not list llama3.2:1b" in missing.message
    fake_ollama.models.add("llama3.2:1b")
    healthy = ollama.health(project, out=lambda _: None)
    assert healthy.ok, healthy.message


def test_unreachable_ollama_is_one_clear_line(real: tuple[Tree, Project], monkeypatch: pytest.MonkeyPatch) -> None:
    _, project = real
    monkeypatch.setenv("HOMELAB_OLLAMA_URL", "http://127.0.0.1:9")
    result = ollama.pull_models(project, out=lambda _: None)
    assert not result.ok and "did not answer" in result.message


def test_converge_pulls_models_once_as_a_post_deploy_task(real: tuple[Tree, Project],
                                                          fake_ollama: FakeOllama) -> None:
    tree, project = real
    first = tree.doit(HOMELAB_OLLAMA_URL=fake_ollama.url)
    assert first.returncode == 0, first.stdout[-2000:]
    assert sorted(fake_ollama.pulls) == sorted(ollama.model_list(project))
    second = tree.doit(HOMELAB_OLLAMA_URL=fake_ollama.url)
    assert "ollama_models" not in second.stdout
    assert len(fake_ollama.pulls) == len(ollama.model_list(project))
    # in the sandbox without an endpoint the task says why nothing was pulled, and then rests
    tree.edit("releases/ollama/release.yaml", "- qwen2.5-coder:1.5b", "- qwen2.5-coder:3b")
    third = tree.doit()
    assert "not pulled: the sandbox has no Ollama endpoint" in third.stdout
    assert "ollama_models" not in tree.doit().stdout
