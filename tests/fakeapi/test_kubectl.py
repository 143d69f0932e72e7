"""Tests of the FAKE Kubernetes API server with the real kubectl binary."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from .plugin import KubeCli
from .server import FakeApiServer

pytestmark = pytest.mark.fakeapi

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: apps
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: apps
data:
  greeting: hello
"""


def _apply(cli: KubeCli, tmp_path: Path, text: str = MANIFEST) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return cli.kubectl("apply", "--server-side", "--validate=false", "-f", str(path))


def test_apply_server_side_then_get(fake_api: FakeApiServer, fake_cli: KubeCli, tmp_path: Path) -> None:
    out = _apply(fake_cli, tmp_path).stdout
    assert "deployment.apps/web serverside-applied" in out
    dep = json.loads(fake_cli.kubectl("get", "deployment", "web", "-n", "apps", "-o", "json",
                                      "--show-managed-fields").stdout)
    assert dep["status"]["readyReplicas"] == 2
    assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in dep["metadata"]["managedFields"])

    fake_api.clear_requests()
    rv = fake_api.store.find("Deployment", "web", "apps")["metadata"]["resourceVersion"]
    _apply(fake_cli, tmp_path)
    assert fake_api.store.find("Deployment", "web", "apps")["metadata"]["resourceVersion"] == rv
    assert fake_api.count("PATCH", agent="kubectl") == 3

    table = fake_cli.kubectl("get", "deploy,cm", "-n", "apps").stdout
    assert "deployment.apps/web   2/2     2            2" in table
    assert "configmap/web-config" in table
    names = fake_cli.kubectl("get", "pods", "-n", "apps", "-l", "app=web", "-o", "name").stdout.split()
    assert len(names) == 2 and all(n.startswith("pod/web-") for n in names)


def test_scale(fake_api: FakeApiServer, fake_cli: KubeCli, tmp_path: Path) -> None:
    _apply(fake_cli, tmp_path)
    fake_cli.kubectl("scale", "deployment/web", "-n", "apps", "--replicas=4")
    assert len(fake_api.store.objects("Pod", "apps")) == 4
    fake_cli.kubectl("scale", "deployment/web", "-n", "apps", "--replicas=0")
    assert fake_api.store.objects("Pod", "apps") == []
    assert fake_api.count("PATCH", r"/deployments/web/scale$") == 2


def test_rollout_status_waits_until_ready(fake_api: FakeApiServer, fake_cli: KubeCli, tmp_path: Path) -> None:
    fake_api.never_ready("Deployment", "web")
    _apply(fake_cli, tmp_path)
    assert fake_api.store.find("Deployment", "web", "apps")["status"]["availableReplicas"] == 0
    rollout = subprocess.Popen(
        ["kubectl", "rollout", "status", "deployment/web", "-n", "apps", "--timeout=30s"],
        env=fake_cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while fake_api.count("GET", r"/deployments$", agent="kubectl", watch=True) == 0:
            assert rollout.poll() is None, "rollout status returned before the deployment was ready"
            assert time.monotonic() < deadline, "kubectl never started watching"
            time.sleep(0.02)
        assert rollout.poll() is None
        fake_api.make_ready("Deployment", "web")
        out, _ = rollout.communicate(timeout=30)
    finally:
        rollout.kill()
    assert rollout.returncode == 0
    assert "Waiting for deployment" in out and 'deployment "web" successfully rolled out' in out

    fake_api.never_ready("Deployment", "web")
    fake_cli.kubectl("set", "image", "deployment/web", "-n", "apps", "web=nginx:1.28")
    stuck = fake_cli.kubectl("rollout", "status", "deployment/web", "-n", "apps", "--timeout=1s", check=False)
    assert stuck.returncode != 0 and "timed out" in stuck.stderr


def test_cordon_drain_with_pdb_and_delete_node(fake_api: FakeApiServer, fake_cli: KubeCli, tmp_path: Path) -> None:
    fake_api.add_node("n1")
    fake_api.add_node("n2")
    _apply(fake_cli, tmp_path, MANIFEST + """\
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: apps
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: web}
""")
    on_n1 = [p["metadata"]["name"] for p in fake_api.store.objects("Pod", "apps")
             if p["spec"]["nodeName"] == "n1"]
    assert len(on_n1) == 1

    fake_cli.kubectl("cordon", "n1")
    assert fake_api.store.find("Node", "n1", "")["spec"]["unschedulable"] is True
    fake_cli.kubectl("uncordon", "n1")
    assert not fake_api.store.find("Node", "n1", "")["spec"].get("unschedulable")

    # minAvailable 2 of 2: the eviction is refused (429) until the budget allows it.
    blocked = fake_cli.kubectl("drain", "n1", "--ignore-daemonsets", "--timeout=1s", check=False)
    assert blocked.returncode != 0
    assert "disruption budget" in blocked.stderr
    assert fake_api.store.find("Pod", on_n1[0], "apps") is not None
    assert fake_api.count("POST", r"/eviction$") >= 1

    fake_cli.kubectl("patch", "pdb", "web", "-n", "apps", "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
    out = fake_cli.kubectl("drain", "n1", "--ignore-daemonsets", "--timeout=30s").stdout
    assert "node/n1 drained" in out
    pods = fake_api.store.objects("Pod", "apps")
    assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == {"n2"}

    fake_cli.kubectl("delete", "node", "n1")
    assert [n["metadata"]["name"] for n in fake_api.store.objects("Node")] == ["n2"]


def test_get_table_for_nodes(fake_api: FakeApiServer, fake_cli: KubeCli) -> None:
    fake_api.add_node("n1", roles=("control-plane",), kubelet_version="v1.34.1+k3s1")
    fake_api.add_node("n2")
    fake_api.set_node_ready("n2", False)
    lines = fake_cli.kubectl("get", "nodes").stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert lines[1].split()[:3] == ["n1", "Ready", "control-plane"] and lines[1].split()[-1] == "v1.34.1+k3s1"
    assert lines[2].split()[:2] == ["n2", "NotReady"]
    started = time.monotonic()
    fake_cli.kubectl("get", "nodes", "-o", "name")
    assert time.monotonic() - started < 30  # sanity only; no timing claims


def test_validation_on_client_side_apply_and_diff(fake_api: FakeApiServer, fake_cli: KubeCli, tmp_path: Path) -> None:
    """Without ``--validate=false`` kubectl defers validation to the server (the fake's OpenAPI v3 says it
    supports fieldValidation); client-side apply and ``kubectl diff`` (server dry-run) work too."""
    path = tmp_path / "manifest.yaml"
    path.write_text(MANIFEST)
    fake_cli.kubectl("apply", "-f", str(path))
    assert "kubectl.kubernetes.io/last-applied-configuration" in (
        fake_api.store.find("ConfigMap", "web-config", "apps")["metadata"]["annotations"])
    rv = fake_api.store.find("ConfigMap", "web-config", "apps")["metadata"]["resourceVersion"]
    assert fake_cli.kubectl("diff", "-f", str(path), check=False).returncode == 0
    path.write_text(MANIFEST.replace("greeting: hello", "greeting: bye"))
    changed = fake_cli.kubectl("diff", "-f", str(path), check=False)
    assert changed.returncode == 1 and "+  greeting: bye" in changed.stdout
    assert fake_api.store.find("ConfigMap", "web-config", "apps")["metadata"]["resourceVersion"] == rv
