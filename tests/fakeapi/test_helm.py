"""Tests of the FAKE Kubernetes API server with the real helm binary (v4) and a chart made by ``helm create``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .plugin import KubeCli
from .server import FakeApiServer

pytestmark = pytest.mark.fakeapi

FLAGS = ("--disable-openapi-validation",)

HOOK_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "demo.fullname" . }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: busybox:1
        command: ["true"]
"""


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chart made offline by ``helm create`` plus a pre-install/pre-upgrade hook Job."""
    root = tmp_path_factory.mktemp("charts")
    bindir = Path(sys.executable).parent
    if not (bindir / "helm").exists():
        pytest.skip("helm not installed (make kube-binaries)")
    subprocess.run([str(bindir / "helm"), "create", "demo"], cwd=root, check=True, capture_output=True,
                   env={"PATH": str(bindir), "HOME": str(root)})
    (root / "demo" / "templates" / "hook-job.yaml").write_text(HOOK_JOB)
    return root / "demo"


def _upgrade(cli: KubeCli, chart: Path, *extra: str, check: bool = True,
             name: str = "web") -> subprocess.CompletedProcess[str]:
    return cli.helm("upgrade", "--install", name, str(chart), "--wait", "--atomic", "--timeout", "30s",
                    *FLAGS, *extra, check=check)


def _history(cli: KubeCli, name: str = "web") -> list[tuple[int, str, str]]:
    rows = json.loads(cli.helm("history", name, "-o", "json").stdout)
    return [(r["revision"], r["status"], r["description"]) for r in rows]


def test_install_upgrade_rollback_uninstall(fake_api: FakeApiServer, fake_cli: KubeCli, chart: Path) -> None:
    out = _upgrade(fake_cli, chart).stdout
    assert "STATUS: deployed" in out and "REVISION: 1" in out
    secret = fake_api.store.find("Secret", "sh.helm.release.v1.web.v1")
    assert secret is not None and secret["type"] == "helm.sh/release.v1"
    assert secret["metadata"]["labels"] == {**secret["metadata"]["labels"], "owner": "helm", "name": "web",
                                            "status": "deployed", "version": "1"}
    dep = fake_api.store.find("Deployment", "web-demo")
    assert dep["status"]["readyReplicas"] == 1
    assert fake_api.store.find("Job", "web-demo-migrate")["status"]["succeeded"] == 1

    _upgrade(fake_cli, chart)  # same values: helm still records a new revision
    _upgrade(fake_cli, chart, "--set", "replicaCount=3")
    assert fake_api.store.find("Deployment", "web-demo")["spec"]["replicas"] == 3
    assert len(fake_api.store.objects("Pod", "default", "app.kubernetes.io/instance=web")) == 3
    assert [r[:2] for r in _history(fake_cli)] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]

    fake_cli.helm("rollback", "web", "1", "--wait", "--timeout", "30s")
    assert fake_api.store.find("Deployment", "web-demo")["spec"]["replicas"] == 1
    assert _history(fake_cli)[-1] == (4, "deployed", "Rollback to 1")
    releases = json.loads(fake_cli.helm("list", "-o", "json").stdout)
    assert [(r["name"], r["revision"], r["status"]) for r in releases] == [("web", "4", "deployed")]
    status = json.loads(fake_cli.helm("status", "web", "-o", "json").stdout)
    assert status["info"]["status"] == "deployed" and status["version"] == 4
    assert [r.revision for r in fake_api.helm_releases("default")] == [1, 2, 3, 4]
    assert fake_api.helm_releases("default")[2].values == {"replicaCount": 3}

    fake_cli.helm("uninstall", "web", "--wait", "--timeout", "30s")
    assert fake_api.helm_releases() == []
    assert fake_api.store.find("Deployment", "web-demo") is None
    assert fake_api.store.objects("Pod", "default", "app.kubernetes.io/instance=web") == []
    # Hook resources are not part of the release: helm leaves the hook Job behind, as on a real cluster.
    assert fake_api.store.find("Job", "web-demo-migrate") is not None

    # helm template renders offline: the server sees no request at all.
    since = time.time()
    fake_cli.helm("template", "web", str(chart))
    assert fake_api.count(agent="helm", since=since) == 0


def test_wait_into_new_namespace_without_validation_flag(
    fake_api: FakeApiServer, fake_cli: KubeCli, chart: Path
) -> None:
    """``--wait`` watches until the slow Deployment is ready; the fake's minimal OpenAPI v3 lets helm run
    without ``--disable-openapi-validation``."""
    fake_api.ready_after("Deployment", "web-demo", 1.0)
    fake_cli.helm("upgrade", "--install", "web", str(chart), "-n", "apps", "--create-namespace",
                  "--wait", "--timeout", "30s")
    assert fake_api.store.find("Namespace", "apps", "") is not None
    assert fake_api.store.find("Deployment", "web-demo", "apps")["status"]["availableReplicas"] == 1
    assert [(r.namespace, r.status) for r in fake_api.helm_releases()] == [("apps", "deployed")]
    assert fake_api.count("GET", r"/deployments$", agent="helm", watch=True) >= 1


def test_atomic_upgrade_rolls_back_when_never_ready(
    fake_api: FakeApiServer, fake_cli: KubeCli, chart: Path
) -> None:
    _upgrade(fake_cli, chart)
    fake_api.never_ready("Deployment", "web-demo")
    failed = fake_cli.helm("upgrade", "--install", "web", str(chart), "--wait", "--atomic", "--timeout", "5s",
                           "--set", "image.tag=1.28", *FLAGS, check=False)
    assert failed.returncode != 0
    assert "rolled back" in failed.stderr
    assert [r[:2] for r in _history(fake_cli)] == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    dep = fake_api.store.find("Deployment", "web-demo")
    assert not dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.28")
    assert dep["status"]["availableReplicas"] == dep["status"]["replicas"] == 1


def test_atomic_install_failure_leaves_no_release(
    fake_api: FakeApiServer, fake_cli: KubeCli, chart: Path
) -> None:
    fake_api.job_outcome("fail", "*-migrate")
    failed = fake_cli.helm("upgrade", "--install", "web", str(chart), "--wait", "--atomic", "--timeout", "10s",
                           *FLAGS, check=False)
    assert failed.returncode != 0
    assert fake_api.helm_releases() == []
    assert fake_api.store.find("Deployment", "web-demo") is None


def test_pending_upgrade_release_blocks_then_rollback_recovers(
    fake_api: FakeApiServer, fake_cli: KubeCli, chart: Path
) -> None:
    """A release left ``pending-upgrade`` (as after a killed ``helm upgrade``) is produced by rewriting the
    stored release: ``fake_api.set_helm_release_status(name, namespace, "pending-upgrade")``."""
    _upgrade(fake_cli, chart)
    fake_api.set_helm_release_status("web", "default", "pending-upgrade")
    assert json.loads(fake_cli.helm("status", "web", "-o", "json").stdout)["info"]["status"] == "pending-upgrade"

    blocked = _upgrade(fake_cli, chart, check=False)
    assert blocked.returncode != 0
    assert "another operation (install/upgrade/rollback) is in progress" in blocked.stderr

    fake_cli.helm("rollback", "web", "1", "--wait", "--timeout", "30s")
    _upgrade(fake_cli, chart)
    assert [r[:2] for r in _history(fake_cli)][-1] == (3, "deployed")
