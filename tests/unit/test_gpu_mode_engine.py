"""The engine side of the GPU modes: the recorded mode, the replica override a converge applies, and
``run_gpu_gaming`` / ``run_gpu_ml`` wired to a real-release project (sandbox inventory) against the FAKE API."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from homelab import paths, redact
from homelab.ops import gpu, gpu_mode, gpu_state
from homelab.project import Project
from homelab.releases import deep_merge
from tests.fakeapi import FakeApiServer
from tests.helpers import make_tree
from tests.unit.test_gpu_mode import KUBECTL, Gateway, GpuHost, cluster

__all__ = ["cluster"]  # the fixture, imported for pytest

pytestmark = pytest.mark.fakeapi


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    tree = make_tree(tmp_path / "repo-copy", real_releases=True)
    for key, value in tree.env().items():
        if key.startswith("HOMELAB_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv(gpu.ENDPOINT_ENV, raising=False)
    redact.clear()
    prj = Project.load(paths.layout("sandbox", tree.root))
    assert prj.ok, [p.line() for p in prj.problems]
    return prj


def test_replica_overrides_follow_the_recorded_mode(project: Project) -> None:
    lay, vllm = project.layout, project.release("vllm")
    assert gpu_state.current_mode(lay) == "ml" and gpu_state.replica_overrides(lay, vllm) == {}
    gpu_mode.write_state(str(gpu_state.state_path(lay)), {"mode": "gaming", "status": "failed"})
    assert gpu_state.current_mode(lay) == "gaming"  # a half-done gaming switch still keeps vLLM off
    override = gpu_state.replica_overrides(lay, vllm)
    merged = deep_merge(vllm.values, override)
    assert [m["replicas"] for m in merged["models"]] == [0, 0, 0]
    assert [m["name"] for m in merged["models"]] == [m["name"] for m in vllm.values["models"]]
    assert merged["models"][0]["hf"] == vllm.values["models"][0]["hf"]  # everything else untouched
    assert gpu_state.replica_overrides(lay, project.release("ollama")) == {}
    assert [m["replicas"] for m in vllm.values["models"]] == [1, 0, 0]  # the release itself is not modified
    gpu_mode.write_state(str(gpu_state.state_path(lay)), {"mode": "ml", "status": "done"})
    assert gpu_state.replica_overrides(lay, vllm) == {}


def test_settings_come_from_the_project(project: Project) -> None:
    settings, notes = gpu.settings_for(project)
    assert (settings.namespace, settings.selector) == ("ml", "app=vllm")
    assert settings.default_replicas == {"vllm-llama-3-1-8b": 1, "vllm-mistral-7b": 0, "vllm-deepseek-coder-6-7b": 0}
    assert settings.endpoint == "https://llm.home.sandbox.test/v1"
    assert settings.api_key == project.secrets.value("inference.litellm_master_key")  # type: ignore[union-attr]
    assert settings.state_file == str(project.layout.build / "state" / "gpu-mode.json")
    assert not settings.vram_check and any(n.startswith("GPU check: stand-in") for n in notes)
    runner = gpu.gpu_host_runner(project)
    assert isinstance(runner, gpu_mode.SshRunner)
    assert runner.argv(["true"])[-3:] == [str(project.layout.build / "ssh" / "config"), "sbx-gpu-worker", "true"]


def test_run_gpu_gaming_and_ml_from_the_engine(project: Project, cluster: FakeApiServer, fake_kubeconfig: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if not KUBECTL.exists():
        pytest.skip("kubectl not installed (make kube-binaries)")
    key = project.secrets.value("inference.litellm_master_key")  # type: ignore[union-attr]
    gateway = Gateway(cluster, key)
    try:
        monkeypatch.setenv("HOMELAB_KUBECONFIG", str(fake_kubeconfig))
        monkeypatch.setenv(gpu.ENDPOINT_ENV, gateway.url)
        out = io.StringIO()
        result = gpu.run_gpu_gaming(project, out)
        assert result.ok, out.getvalue()
        assert result.details["mode"] == "gaming" and result.details["overhead"] < 5
        assert gpu_state.current_mode(project.layout) == "gaming"
        assert gpu.run_gpu_gaming(project, io.StringIO()).details["noop"]
        assert gpu_state.replica_overrides(project.layout, project.release("vllm"))["models"][0]["replicas"] == 0
        result = gpu.run_gpu_ml(project, out)
        assert result.ok, out.getvalue()
        assert gpu_state.current_mode(project.layout) == "ml"
        status = gpu.run_gpu_status(project, out)
        assert status.ok and status.message.startswith("ml mode")
        text = out.getvalue()
        assert key not in text
        assert "GPU check: stand-in" in text and "GPU check skipped" in text
        assert "answers from Ollama" in text and "answers from vLLM" in text
    finally:
        gateway.close()


def test_no_kubeconfig_is_one_line(project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOMELAB_KUBECONFIG", str(tmp_path / "absent"))
    result = gpu.run_gpu_gaming(project, io.StringIO())
    assert not result.ok and "no kubeconfig at" in result.message and "HOMELAB_KUBECONFIG" in result.message


def test_a_switch_on_the_gpu_host_reaches_the_engine_through_the_cluster(
        project: Project, cluster: FakeApiServer, fake_kubeconfig: Path, tmp_path: Path) -> None:
    if not KUBECTL.exists():
        pytest.skip("kubectl not installed (make kube-binaries)")
    host_settings = gpu_mode.Settings(kubeconfig=str(fake_kubeconfig), kubectl=str(KUBECTL), actor="k3s-gpu-worker",
                                      state_file=str(tmp_path / "host-state"), poll_seconds=0.1)
    assert gpu_mode.GpuMode(host_settings, GpuHost(cluster), out=io.StringIO()).gaming().ok  # `gpu-mode gaming`
    assert gpu_state.current_mode(project.layout) == "ml"  # the engine has not heard of it yet
    assert gpu_state.sync_from_cluster(project.layout, fake_kubeconfig, str(KUBECTL)) == "gaming"
    assert gpu_state.current_mode(project.layout) == "gaming"
    assert gpu_state.read(project.layout)["replicas"]["vllm-llama-3-1-8b"] == 1
    # unreachable cluster: the local record stands
    assert gpu_state.sync_from_cluster(project.layout, tmp_path / "absent", str(KUBECTL)) == "gaming"
