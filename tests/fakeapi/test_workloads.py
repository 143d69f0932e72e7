"""Tests of the workload simulation and control API of the FAKE Kubernetes API server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from . import helmstore
from .server import FakeApiServer

pytestmark = pytest.mark.fakeapi


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until ``predicate()`` is true (fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.02)


def _workload(kind: str, name: str, replicas: int | None = 1, **spec: object) -> dict:
    body: dict = {
        "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}},
            **spec,
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    if kind == "Job":
        del body["spec"]["selector"]
        body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    return body


def _pods(fake_api: FakeApiServer, app: str) -> list[dict]:
    return fake_api.store.objects("Pod", "default", f"app={app}")


def test_deployment_pods_look_real(fake_api: FakeApiServer) -> None:
    for n in ("n1", "n2", "n3"):
        fake_api.add_node(n)
    fake_api.store.put(_workload("Deployment", "web", replicas=3))
    dep = fake_api.store.find("Deployment", "web")
    assert dep["status"]["readyReplicas"] == dep["status"]["availableReplicas"] == 3
    assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"]
    (rs,) = fake_api.store.objects("ReplicaSet", "default")
    assert rs["metadata"]["name"].startswith("web-")
    assert rs["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
    pods = _pods(fake_api, "web")
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["n1", "n2", "n3"]
    for pod in pods:
        assert pod["metadata"]["name"].startswith(rs["metadata"]["name"] + "-")
        assert len(pod["metadata"]["name"]) == len(rs["metadata"]["name"]) + 6
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["status"]["phase"] == "Running"


def test_statefulset_and_daemonset(fake_api: FakeApiServer) -> None:
    fake_api.add_node("n1")
    fake_api.add_node("n2", unschedulable=True)
    fake_api.store.put(_workload("StatefulSet", "db", replicas=2, serviceName="db", volumeClaimTemplates=[
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                "resources": {"requests": {"storage": "1Gi"}}}}]))
    assert sorted(p["metadata"]["name"] for p in _pods(fake_api, "db")) == ["db-0", "db-1"]
    assert fake_api.store.find("PersistentVolumeClaim", "data-db-0")["status"]["phase"] == "Bound"
    sts = fake_api.store.find("StatefulSet", "db")["status"]
    assert sts["readyReplicas"] == 2 and sts["currentRevision"] == sts["updateRevision"]

    fake_api.store.put(_workload("DaemonSet", "agent", replicas=None))
    pods = _pods(fake_api, "agent")
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["n1", "n2"]  # DaemonSets ignore cordons
    assert fake_api.store.find("DaemonSet", "agent")["status"]["numberReady"] == 2


def test_never_ready_then_ready(fake_api: FakeApiServer) -> None:
    fake_api.never_ready("Deployment", "web")
    fake_api.store.put(_workload("Deployment", "web", replicas=2))
    status = fake_api.store.find("Deployment", "web")["status"]
    assert status["updatedReplicas"] == 2 and status.get("readyReplicas") == 0
    fake_api.make_ready("Deployment", "web")
    assert fake_api.store.find("Deployment", "web")["status"]["readyReplicas"] == 2


def test_ready_after_delay(fake_api: FakeApiServer) -> None:
    fake_api.ready_after("Deployment", "slow", 0.3)
    fake_api.store.put(_workload("Deployment", "slow"))
    assert fake_api.store.find("Deployment", "slow")["status"]["readyReplicas"] == 0
    wait_for(lambda: fake_api.store.find("Deployment", "slow")["status"]["readyReplicas"] == 1)


def test_never_ready_rule_hits_the_next_rollout_only(fake_api: FakeApiServer) -> None:
    fake_api.store.put(_workload("Deployment", "web"))
    fake_api.never_ready("Deployment", "web")
    upgraded = _workload("Deployment", "web")
    upgraded["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    fake_api.store.put(upgraded)
    status = fake_api.store.find("Deployment", "web")["status"]
    # The old pod keeps serving; the new one never becomes ready, so the rollout is stuck.
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (2, 1, 1)
    assert len(fake_api.store.objects("ReplicaSet", "default")) == 2


def test_slow_termination_on_scale_down(fake_api: FakeApiServer) -> None:
    fake_api.slow_termination(0.3, "Deployment", "web")
    fake_api.store.put(_workload("Deployment", "web", replicas=2))
    apps = client.AppsV1Api(fake_api.api_client())
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    pods = _pods(fake_api, "web")
    assert len(pods) == 2 and all(p["metadata"].get("deletionTimestamp") for p in pods)
    wait_for(lambda: _pods(fake_api, "web") == [])


def test_jobs_complete_fail_or_run(fake_api: FakeApiServer) -> None:
    fake_api.store.put(_workload("Job", "migrate", replicas=None))
    job = fake_api.store.find("Job", "migrate")
    assert job["status"]["succeeded"] == 1
    assert {c["type"] for c in job["status"]["conditions"]} == {"Complete", "SuccessCriteriaMet"}
    (pod,) = fake_api.store.objects("Pod", "default", "job-name=migrate")
    assert pod["status"]["phase"] == "Succeeded" and pod["metadata"]["name"].startswith("migrate-")

    fake_api.job_outcome("run", "long*")
    fake_api.store.put(_workload("Job", "long-1", replicas=None))
    fake_api.store.put(_workload("Job", "long-2", replicas=None))
    assert fake_api.store.find("Job", "long-1")["status"]["active"] == 1
    fake_api.complete_job("long-1")
    fake_api.fail_job("long-2")
    assert fake_api.store.find("Job", "long-1")["status"]["succeeded"] == 1
    failed = fake_api.store.find("Job", "long-2")["status"]
    assert any(c["type"] == "Failed" and c["reason"] == "BackoffLimitExceeded" for c in failed["conditions"])


def test_node_readiness_and_kubelet_version(fake_api: FakeApiServer) -> None:
    fake_api.add_node("n1", roles=("control-plane",))
    fake_api.store.put(_workload("Deployment", "web"))
    fake_api.set_node_ready("n1", False)
    assert fake_api.store.find("Deployment", "web")["status"]["readyReplicas"] == 0
    fake_api.set_node_ready("n1", True)
    assert fake_api.store.find("Deployment", "web")["status"]["readyReplicas"] == 1
    fake_api.set_kubelet_version("n1", "v1.36.0")
    node = client.CoreV1Api(fake_api.api_client()).read_node("n1")
    assert node.status.node_info.kubelet_version == "v1.36.0"
    assert node.metadata.labels["node-role.kubernetes.io/control-plane"] == "true"


def test_pods_pending_without_schedulable_node(fake_api: FakeApiServer) -> None:
    fake_api.add_node("n1", unschedulable=True)
    fake_api.store.put(_workload("Deployment", "web"))
    (pod,) = _pods(fake_api, "web")
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    v1 = client.CoreV1Api(fake_api.api_client())
    v1.patch_node("n1", {"spec": {"unschedulable": None}})
    (pod,) = _pods(fake_api, "web")
    assert pod["spec"]["nodeName"] == "n1" and pod["status"]["phase"] == "Running"


def test_eviction_honours_pdb(fake_api: FakeApiServer) -> None:
    fake_api.store.put(_workload("Deployment", "web", replicas=2))
    fake_api.store.put({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                        "metadata": {"name": "web", "namespace": "default"},
                        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    pdb = fake_api.store.find("PodDisruptionBudget", "web")["status"]
    assert (pdb["currentHealthy"], pdb["desiredHealthy"], pdb["disruptionsAllowed"]) == (2, 2, 0)
    v1 = client.CoreV1Api(fake_api.api_client())
    victim = _pods(fake_api, "web")[0]["metadata"]["name"]
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": victim, "namespace": "default"}}
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_pod_eviction(victim, "default", eviction)
    body = json.loads(exc.value.body)
    assert exc.value.status == 429 and body["reason"] == "TooManyRequests"
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"

    client.PolicyV1Api(fake_api.api_client()).patch_namespaced_pod_disruption_budget(
        "web", "default", {"spec": {"minAvailable": 1}})
    v1.create_namespaced_pod_eviction(victim, "default", eviction)
    names = [p["metadata"]["name"] for p in _pods(fake_api, "web")]
    assert victim not in names and len(names) == 2  # the ReplicaSet replaced it


def test_helm_release_status_can_be_rewritten(fake_api: FakeApiServer) -> None:
    body = {"name": "web", "namespace": "default", "version": 1, "info": {"status": "deployed"}}
    fake_api.store.put({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": "sh.helm.release.v1.web.v1", "namespace": "default",
                     "labels": {"owner": "helm", "name": "web", "status": "deployed", "version": "1"}},
        "stringData": {"release": helmstore.encode_payload(body)},
    })
    fake_api.set_helm_release_status("web", "default", "pending-upgrade")
    (rel,) = fake_api.helm_releases("default")
    assert (rel.name, rel.revision, rel.status, rel.labels["status"]) == ("web", 1, "pending-upgrade",
                                                                          "pending-upgrade")
