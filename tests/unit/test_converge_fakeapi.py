"""Converging the real releases against the FAKE Kubernetes API server (tests/fakeapi), with stand-in charts
for the remote charts that cannot be pulled here and the FAKE host runner for the host stages.

Real parts: doit, the engine, helm 4 (through a recording wrapper), the kubernetes client, our charts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homelab import paths, redact
from homelab.project import Project
from tests.helpers import Tree, make_tree
from tests.unit.test_apply_support import Cluster, cluster, serve_k3s_builtins, stage_standins

__all__ = ["cluster"]  # the fixture is imported so pytest finds it here

CHARTED = ["cert-manager", "devcontainers", "dev-proxy", "gpu-operator", "inference-gateway", "loki", "metallb",
           "monitoring", "n8n", "nfs-provisioner", "ollama", "paperless", "postgres", "vllm"]


@pytest.fixture
def lab(tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> tuple[Tree, Cluster]:
    tree = make_tree(tmp_path, real_releases=True)
    env = tree.env(**cluster.env)
    for key in ("HOMELAB_REPO", "HOMELAB_CONFIG_DIR", "HOMELAB_CHART_CACHE"):
        monkeypatch.setenv(key, env[key])
    redact.clear()
    serve_k3s_builtins(cluster.api)
    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok, [p.line() for p in project.problems]
    stage_standins(project, Path(env["HOMELAB_CHART_CACHE"]), tmp_path / "standins")
    return tree, cluster


def _run(tree: Tree, cluster: Cluster, *args: str, **extra: str):  # type: ignore[no-untyped-def]
    return tree.doit(*args, **{**cluster.env, **extra})


def _ran(stdout: str) -> list[str]:
    return [line[2:].strip() for line in stdout.splitlines() if line.startswith("> ")]


def test_fresh_converge_installs_each_release_once_and_second_runs_no_helm(lab: tuple[Tree, Cluster]) -> None:
    tree, cluster = lab
    first = _run(tree, cluster)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert sorted(cluster.helm.releases_upgraded()) == sorted(CHARTED)
    assert {r.name for r in cluster.api.helm_releases()} >= set(CHARTED)
    stamp = json.loads((tree.build / "stamps" / "postgres.json").read_text())
    assert stamp["applied"] is True and stamp["result"]["helm_revision"] == 1
    cluster.helm.clear()
    second = _run(tree, cluster)
    assert second.returncode == 0
    assert cluster.helm.count() == 0  # not even helm template: nothing changed
    assert _ran(second.stdout) == []


def test_one_value_change_upgrades_exactly_that_release(lab: tuple[Tree, Cluster]) -> None:
    tree, cluster = lab
    assert _run(tree, cluster).returncode == 0
    cluster.helm.clear()
    tree.edit("releases/postgres/values.yaml", "size: 20Gi", "size: 25Gi")
    plan = _run(tree, cluster, "plan")
    assert "postgres: releases/postgres/values.yaml primary.persistence.size 20Gi -> 25Gi" in plan.stdout
    run = _run(tree, cluster)
    assert run.returncode == 0, run.stdout[-3000:]
    assert cluster.helm.releases_upgraded() == ["postgres"]
    assert _ran(run.stdout) == ["postgres"]
    stamp = json.loads((tree.build / "stamps" / "postgres.json").read_text())
    assert stamp["result"]["helm_revision"] == 2


def test_release_stuck_in_pending_upgrade_is_recovered(lab: tuple[Tree, Cluster]) -> None:
    tree, cluster = lab
    assert _run(tree, cluster).returncode == 0
    tree.edit("releases/loki/values.yaml", "retention_period: 168h", "retention_period: 169h")
    assert _run(tree, cluster).returncode == 0  # revision 2, so there is a deployed revision to return to
    cluster.api.set_helm_release_status("loki", "monitoring", "pending-upgrade")
    tree.edit("releases/loki/values.yaml", "retention_period: 169h", "retention_period: 170h")
    run = _run(tree, cluster)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "pending-upgrade" in run.stdout
    assert "loki" in _ran(run.stdout)


def test_failed_install_rolls_back_and_skips_dependents_only(lab: tuple[Tree, Cluster]) -> None:
    tree, cluster = lab
    cluster.api.never_ready("Deployment", "postgres*")
    cluster.api.never_ready("StatefulSet", "postgres*")
    run = _run(tree, cluster, HOMELAB_APPLY_TIMEOUT="3s")
    assert run.returncode != 0
    assert "FAILED postgres:" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    stamps = tree.build / "stamps"
    assert not (stamps / "postgres.json").exists()
    for dependent in ("ollama", "vllm", "n8n", "paperless", "devcontainers"):
        assert not (stamps / f"{dependent}.json").exists(), dependent
        assert dependent not in cluster.helm.releases_upgraded()
    for independent in ("loki", "gpu-operator", "traefik", "metallb"):
        assert (stamps / f"{independent}.json").exists(), independent
    assert not [r for r in cluster.api.helm_releases() if r.name == "postgres" and r.status == "deployed"]
    assert "skipped ollama: upstream postgres did not converge" in run.stdout


def test_converge_in_gaming_mode_never_brings_vllm_back(lab: tuple[Tree, Cluster]) -> None:
    from homelab.ops import gpu_mode

    tree, cluster = lab
    assert _run(tree, cluster).returncode == 0
    state = tree.build / "state" / "gpu-mode.json"

    def vllm_replicas() -> dict[str, int]:
        deployments = cluster.api.store.objects("Deployment", "ml", "app=vllm")
        return {d["metadata"]["name"]: d["spec"].get("replicas", 1) for d in deployments}

    assert any(n > 0 for n in vllm_replicas().values())
    gpu_mode.write_state(str(state), {"mode": "gaming", "status": "done", "replicas": {}})
    plan = _run(tree, cluster, "plan")
    assert "vllm: GPU mode is now gaming (vLLM replicas 0)" in plan.stdout
    run = _run(tree, cluster)
    assert run.returncode == 0, run.stdout[-2000:]
    assert _ran(run.stdout) == ["vllm"]  # its consumers see the same exports: early cut-off
    assert vllm_replicas() and all(n == 0 for n in vllm_replicas().values())
    # an unrelated vLLM edit while gaming still converges with 0 replicas
    tree.edit("releases/vllm/release.yaml", "timeout: 15m", "timeout: 16m")
    edited = _run(tree, cluster)
    assert _ran(edited.stdout) == ["vllm"]
    assert all(n == 0 for n in vllm_replicas().values())
    gpu_mode.write_state(str(state), {"mode": "ml", "status": "done", "replicas": {}})
    back = _run(tree, cluster)
    assert back.returncode == 0
    assert any(n > 0 for n in vllm_replicas().values())
