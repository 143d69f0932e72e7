"""The Kubernetes driver (homelab.kube): server-side apply, pruning, webhook and readiness waits, on the fake API."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from homelab import kube
from tests.fakeapi.server import FakeApiServer
from tests.helpers import REPO
from tests.unit.test_apply_support import WEBHOOK_CONFIG_CRDS, crd_object, create_objects, unreachable_kubeconfig

pytestmark = pytest.mark.fakeapi

POOL_CRD = crd_object("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools")


def configmap(name: str, namespace: str = "apps", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data or {"a": "1"}}


def pool(name: str = "homelab-pool", namespace: str = "infra") -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"addresses": ["10.77.0.200-10.77.0.220"]}}


def rv(api: FakeApiServer, kind: str, name: str, namespace: str = "apps") -> str:
    return str(api.store.find(kind, name, namespace)["metadata"]["resourceVersion"])


def actions(report: kube.ApplyReport) -> list[tuple[str, str]]:
    return [(kube.key_text(a.key), a.action) for a in report.applied]


def test_apply_creates_then_unchanged_apply_is_a_no_op(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    objects = [configmap("settings"), configmap("other", b="2")]
    first = kube.apply_objects(objects, fake_kubeconfig, release="web")
    assert actions(first) == [("ConfigMap apps/settings", "created"), ("ConfigMap apps/other", "created")]
    assert first.messages == ["created namespace apps: web's manifests live there", "created ConfigMap apps/settings",
                              "created ConfigMap apps/other"]
    stored = fake_api.store.find("ConfigMap", "settings", "apps")
    assert stored["metadata"]["labels"] == {"homelab.dev/release": "web"}
    assert stored["metadata"]["managedFields"][0]["manager"] == "homelab"
    namespace = fake_api.store.find("Namespace", "apps", "")
    assert "homelab.dev/release" not in namespace["metadata"]["labels"]  # never pruned with a release
    before = {n: rv(fake_api, "ConfigMap", n) for n in ("settings", "other")}

    fake_api.clear_requests()
    again = kube.apply_objects(objects, fake_kubeconfig, release="web", previous_kinds=["v1/ConfigMap"])
    assert actions(again) == [("ConfigMap apps/settings", "unchanged"), ("ConfigMap apps/other", "unchanged")]
    assert again.messages == [] and again.pruned == []
    assert {n: rv(fake_api, "ConfigMap", n) for n in ("settings", "other")} == before
    assert fake_api.count("DELETE") == 0 and fake_api.count("POST") == 0

    changed = kube.apply_objects([configmap("settings", a="2"), configmap("other", b="2")], fake_kubeconfig,
                                 release="web")
    assert actions(changed)[0] == ("ConfigMap apps/settings", "configured")
    assert changed.messages == ["configured ConfigMap apps/settings"]
    assert fake_api.store.find("ConfigMap", "settings", "apps")["data"] == {"a": "2"}


def test_removing_a_manifest_prunes_exactly_that_object(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    kube.apply_objects([configmap("keep"), configmap("drop")], fake_kubeconfig, release="web")
    kube.apply_objects([configmap("theirs")], fake_kubeconfig, release="other-release")
    create_objects(fake_api, [configmap("unlabelled")])

    report = kube.apply_objects([configmap("keep")], fake_kubeconfig, release="web", previous_kinds=["v1/ConfigMap"])
    assert report.pruned == [("v1", "ConfigMap", "apps", "drop")]
    assert report.messages == ["pruned ConfigMap apps/drop: no longer in web's manifests"]
    names = sorted(o["metadata"]["name"] for o in fake_api.store.objects("ConfigMap", "apps"))
    assert names == ["keep", "theirs", "unlabelled"]


def test_a_kind_no_longer_rendered_is_pruned_from_the_recorded_kinds(fake_api: FakeApiServer,
                                                                      fake_kubeconfig: Path) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "apps"},
              "stringData": {"t": "x"}}
    kube.apply_objects([configmap("settings"), secret], fake_kubeconfig, release="web")
    # without the recorded kinds, a kind that is no longer rendered at all is not even listed
    assert kube.apply_objects([configmap("settings")], fake_kubeconfig, release="web").pruned == []
    report = kube.apply_objects([configmap("settings")], fake_kubeconfig, release="web",
                                previous_kinds=["v1/ConfigMap", "v1/Secret"])
    assert report.pruned == [("v1", "Secret", "apps", "token")]
    assert fake_api.store.find("Secret", "token", "apps") is None
    assert kube.prune("web", set(), ["v1/ConfigMap"], fake_kubeconfig) == [("v1", "ConfigMap", "apps", "settings")]


def test_data_holding_kinds_are_reported_not_pruned(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "backups", "namespace": "apps"},
             "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch"}}
    kube.apply_objects([claim, namespace, configmap("settings")], fake_kubeconfig, release="web")
    report = kube.apply_objects([configmap("settings")], fake_kubeconfig, release="web",
                                previous_kinds=["v1/PersistentVolumeClaim", "v1/Namespace"])
    assert report.pruned == []
    assert report.messages == [
        "kept Namespace scratch: no longer in web's manifests, but deleting a Namespace deletes what it holds; "
        "delete it by hand if that is intended",
        "kept PersistentVolumeClaim apps/backups: no longer in web's manifests, but deleting a PersistentVolumeClaim "
        "deletes what it holds; delete it by hand if that is intended"]
    assert fake_api.store.find("PersistentVolumeClaim", "backups", "apps") is not None
    assert fake_api.store.find("Namespace", "scratch", "") is not None


def test_same_object_under_another_api_version_is_not_pruned() -> None:
    old = ("metallb.io/v1beta1", "IPAddressPool", "infra", "pool")
    new = ("metallb.io/v1", "IPAddressPool", "infra", "pool")
    assert kube.same_object(old) == kube.same_object(new)


def test_crd_and_its_objects_in_one_batch_apply_in_order(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    cluster_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "reader", "namespace": "infra"},  # resolve adds namespaces; dropped here
                    "rules": []}
    report = kube.apply_objects([pool(), cluster_role, POOL_CRD], fake_kubeconfig, release="metallb")
    assert [k for k, _ in actions(report)] == ["CustomResourceDefinition ipaddresspools.metallb.io",
                                               "ClusterRole reader", "IPAddressPool infra/homelab-pool"]
    assert fake_api.store.find("IPAddressPool", "homelab-pool", "infra") is not None
    assert fake_api.store.find("ClusterRole", "reader", "") is not None


def test_unknown_kind_names_the_missing_release(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    with pytest.raises(kube.KubeError) as exc:
        kube.apply_objects([configmap("first"), pool()], fake_kubeconfig, release="metallb")
    assert str(exc.value) == ("the cluster serves no IPAddressPool in metallb.io/v1beta1: the release that installs "
                              "its CRD must be applied first (add it to needs:)")
    assert fake_api.store.find("ConfigMap", "first", "apps") is None  # nothing applied before the check


def _webhook(api: FakeApiServer, *, ready: bool, failure_policy: str = "Fail") -> None:
    """A MetalLB-like controller: Deployment + Service + ValidatingWebhookConfiguration for metallb.io."""
    if not ready:
        api.never_ready("Deployment", "metallb-controller")
    create_objects(api, [*WEBHOOK_CONFIG_CRDS, POOL_CRD, {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": "infra"}}])
    labels = {"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "controller"}
    container = {"name": "c", "image": "quay.io/metallb/controller:v0.16.1"}
    create_objects(api, [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "metallb-controller", "namespace": "infra"},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "metallb-webhook-service", "namespace": "infra"},
         "spec": {"selector": labels, "ports": [{"port": 443, "targetPort": 9443}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "metallb-webhook-configuration"},
         "webhooks": [{"name": "ipaddresspoolvalidationwebhook.metallb.io", "failurePolicy": failure_policy,
                       "clientConfig": {"service": {"name": "metallb-webhook-service", "namespace": "infra",
                                                    "path": "/validate-metallb-io-v1beta1-ipaddresspool"}},
                       "rules": [{"apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"], "operations": ["CREATE",
                                  "UPDATE"], "resources": ["ipaddresspools"]}],
                       "sideEffects": "None", "admissionReviewVersions": ["v1"]}]},
    ])


def test_webhook_services_are_derived_from_the_cluster(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    _webhook(fake_api, ready=True)
    dyn = kube.connect(fake_kubeconfig)
    hooks = kube.webhook_services(dyn, [pool(), configmap("x")])
    assert hooks == [kube.WebhookService("infra", "metallb-webhook-service",
                                         "ValidatingWebhookConfiguration metallb-webhook-configuration",
                                         ("IPAddressPool",))]
    assert kube.webhook_services(dyn, [configmap("x")]) == []


def test_apply_waits_for_the_webhook_before_its_objects(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    _webhook(fake_api, ready=True)
    report = kube.apply_objects([pool()], fake_kubeconfig, release="metallb")
    assert report.messages == ["created IPAddressPool infra/homelab-pool"]  # ready all along: nothing to say


def test_apply_waits_for_a_webhook_that_becomes_ready(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    fake_api.ready_after("Deployment", "metallb-controller", 1.0)
    _webhook(fake_api, ready=True)
    report = kube.apply_objects([pool()], fake_kubeconfig, release="metallb")
    assert report.messages[0].startswith("webhook Service infra/metallb-webhook-service "
                                         "(ValidatingWebhookConfiguration metallb-webhook-configuration, admits "
                                         "IPAddressPool) ready after ")
    assert report.messages[1:] == ["created IPAddressPool infra/homelab-pool"]


def test_webhook_wait_times_out_with_a_clear_message(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    _webhook(fake_api, ready=False)
    with pytest.raises(kube.KubeError) as exc:
        kube.apply_objects([pool()], fake_kubeconfig, release="metallb", timeout=1.5)
    assert re.sub(r"after \d+s", "after Ns", str(exc.value)) == (
        "timed out after Ns waiting for webhook Service infra/metallb-webhook-service (ValidatingWebhookConfiguration "
        "metallb-webhook-configuration, admits IPAddressPool): 0 ready pod(s) - Deployment metallb-controller 0/1 "
        "ready; its objects were not applied")
    assert fake_api.store.find("IPAddressPool", "homelab-pool", "infra") is None


def test_ignored_webhook_failures_do_not_block(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    _webhook(fake_api, ready=False, failure_policy="Ignore")
    report = kube.apply_objects([pool()], fake_kubeconfig, release="metallb", timeout=1)
    assert report.messages == ["created IPAddressPool infra/homelab-pool"]


def test_apply_retries_while_the_webhook_refuses_connections(fake_api: FakeApiServer, fake_kubeconfig: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _webhook(fake_api, ready=True)
    monkeypatch.setattr(kube.time, "sleep", lambda s: None)
    fake_api.fail("PATCH", r"/ipaddresspools/homelab-pool$", code=500, times=2,
                  message='Internal error occurred: failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io":'
                          ' Post "https://metallb-webhook-service.infra.svc:443/validate": connect: connection refused')
    report = kube.apply_objects([pool()], fake_kubeconfig, release="metallb", timeout=30)
    retries = [m for m in report.messages if "admission webhook not answering yet" in m]
    assert len(retries) == 2 and retries[0].startswith("IPAddressPool infra/homelab-pool: admission webhook not "
                                                       "answering yet (Internal error occurred: failed calling webhook")
    assert report.messages[-1] == "created IPAddressPool infra/homelab-pool"


def test_other_api_errors_fail_at_once_with_one_line(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    fake_api.fail("PATCH", r"/configmaps/settings$", code=422, message="ConfigMap \"settings\" is invalid:\ndata: bad")
    with pytest.raises(kube.KubeError) as exc:
        kube.apply_objects([configmap("settings")], fake_kubeconfig, release="web")
    assert str(exc.value) == 'server-side apply of ConfigMap apps/settings failed: ConfigMap "settings" is invalid: ' \
                             "data: bad"


def test_wait_ready(fake_api: FakeApiServer, fake_kubeconfig: Path) -> None:
    fake_api.never_ready("Deployment", "stuck")
    labels = {"app": "x"}
    for name in ("web", "stuck"):
        create_objects(fake_api, [{"apiVersion": "apps/v1", "kind": "Deployment",
                                   "metadata": {"name": name, "namespace": "default"},
                                   "spec": {"replicas": 2, "selector": {"matchLabels": {**labels, "n": name}},
                                            "template": {"metadata": {"labels": {**labels, "n": name}},
                                                         "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}])
    assert kube.wait_ready("Deployment", "web", "default", fake_kubeconfig, 10).startswith(
        "Deployment default/web ready after ")
    with pytest.raises(kube.KubeError, match=r"^timed out after 1s waiting for Deployment default/stuck: 0/2 ready$"):
        kube.wait_ready("Deployment", "stuck", "default", fake_kubeconfig, 1)
    with pytest.raises(kube.KubeError, match="waiting for Deployment default/absent: does not exist"):
        kube.wait_ready("Deployment", "absent", "default", fake_kubeconfig, 0.5)


def test_unreachable_cluster(tmp_path: Path) -> None:
    kubeconfig = unreachable_kubeconfig(tmp_path)
    with pytest.raises(kube.KubeError, match=r"^cannot reach the cluster of .*kubeconfig: .*Connection refused"):
        kube.apply_objects([configmap("x")], kubeconfig, release="web")
    with pytest.raises(kube.KubeError, match=r"^no kubeconfig at "):
        kube.connect(tmp_path / "missing")


def test_importing_the_drivers_does_not_load_the_kubernetes_client() -> None:
    code = ("import sys; import homelab.apply, homelab.helm, homelab.kube, homelab.binaries; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"
