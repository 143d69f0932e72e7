"""Tests of the FAKE Kubernetes API server with the real kubernetes Python client."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from .server import FakeApiServer

pytestmark = pytest.mark.fakeapi


def _deployment(name: str, replicas: int = 1, image: str = "nginx:1.27") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
        },
    }


def test_version_and_discovery(fake_api: FakeApiServer) -> None:
    api = fake_api.api_client()
    info = client.VersionApi(api).get_code()
    assert info.git_version == "v1.35.2" and info.major == "1" and info.minor == "35"
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apps", "batch", "policy", "networking.k8s.io", "apiextensions.k8s.io"} <= groups
    resources = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    assert resources["deployments"].short_names == ["deploy"]
    assert resources["deployments/scale"].kind == "Scale"
    assert "watch" in resources["deployments"].verbs


def test_configmap_crud_and_status_errors(fake_api: FakeApiServer) -> None:
    v1 = client.CoreV1Api(fake_api.api_client())
    created = v1.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp

    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}})
    body = json.loads(exc.value.body)
    assert (exc.value.status, body["kind"], body["reason"], body["code"]) == (409, "Status", "AlreadyExists", 409)
    assert body["message"] == 'configmaps "cfg" already exists'

    stale = v1.read_namespaced_config_map("cfg", "default")
    v1.patch_namespaced_config_map("cfg", "default", {"data": {"b": "2"}})
    assert v1.read_namespaced_config_map("cfg", "default").data == {"a": "1", "b": "2"}
    stale.data = {"c": "3"}
    with pytest.raises(ApiException) as exc:
        v1.replace_namespaced_config_map("cfg", "default", stale)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"

    fresh = v1.read_namespaced_config_map("cfg", "default")
    fresh.data = {"c": "3"}
    assert v1.replace_namespaced_config_map("cfg", "default", fresh).data == {"c": "3"}

    v1.delete_namespaced_config_map("cfg", "default")
    with pytest.raises(ApiException) as exc:
        v1.read_namespaced_config_map("cfg", "default")
    body = json.loads(exc.value.body)
    assert (exc.value.status, body["reason"], body["details"]["kind"]) == (404, "NotFound", "configmaps")

    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map("missing-ns", {"metadata": {"name": "x"}})
    assert exc.value.status == 404


def test_server_side_apply_creates_and_detects_noop(fake_api: FakeApiServer) -> None:
    dyn = DynamicClient(fake_api.api_client())
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    manifest = _deployment("web", replicas=2)
    manifest["metadata"]["labels"]["tier"] = "front"

    first = deployments.server_side_apply(manifest, field_manager="homelab", namespace="default")
    assert first.metadata.generation == 1
    assert first.metadata.managedFields[0]["manager"] == "homelab"
    assert first.metadata.managedFields[0]["operation"] == "Apply"

    # The simulated controller has written status since; an unchanged apply must not write again.
    rv = fake_api.store.find("Deployment", "web")["metadata"]["resourceVersion"]
    again = deployments.server_side_apply(manifest, field_manager="homelab", namespace="default")
    assert again.metadata.resourceVersion == rv
    assert fake_api.store.find("Deployment", "web")["metadata"]["resourceVersion"] == rv

    # Dropping a field the manager applied removes it; changing the spec bumps the generation.
    del manifest["metadata"]["labels"]["tier"]
    manifest["spec"]["replicas"] = 3
    changed = deployments.server_side_apply(manifest, field_manager="homelab", namespace="default")
    assert changed.metadata.resourceVersion != rv
    assert "tier" not in changed.metadata.labels
    assert changed.spec.replicas == 3 and changed.metadata.generation == 2


def test_server_side_apply_conflict_and_force(fake_api: FakeApiServer) -> None:
    api = fake_api.api_client()
    dyn = DynamicClient(api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.server_side_apply(_deployment("web", replicas=2), field_manager="homelab", namespace="default")
    client.AppsV1Api(api).patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})

    with pytest.raises(ApiException) as exc:
        deployments.server_side_apply(_deployment("web", replicas=2), field_manager="homelab",
                                      namespace="default")
    body = json.loads(exc.value.body)
    assert exc.value.status == 409 and body["reason"] == "Conflict"
    assert body["details"]["causes"][0]["field"] == ".spec.replicas"

    forced = deployments.server_side_apply(_deployment("web", replicas=2), field_manager="homelab",
                                           namespace="default", force_conflicts=True)
    assert forced.spec.replicas == 2


def test_label_and_field_selectors(fake_api: FakeApiServer) -> None:
    v1 = client.CoreV1Api(fake_api.api_client())
    for name, labels in {"a": {"app": "web", "env": "prod"}, "b": {"app": "web", "env": "dev"},
                         "c": {"app": "db"}, "d": {}}.items():
        v1.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    def names(selector: str = "", fields: str = "") -> list[str]:
        items = v1.list_namespaced_config_map("default", label_selector=selector, field_selector=fields).items
        return [i.metadata.name for i in items]

    assert names("app=web") == ["a", "b"]
    assert names("app==web,env!=prod") == ["b"]
    assert names("env in (prod,dev)") == ["a", "b"]
    assert names("app notin (web)") == ["c", "d"]
    assert names("env") == ["a", "b"]
    assert names("!app") == ["d"]
    assert names(fields="metadata.name=c") == ["c"]
    assert names("app=web", "metadata.name!=a") == ["b"]


def test_merge_strategic_and_json_patch(fake_api: FakeApiServer) -> None:
    api = fake_api.api_client()
    apps = client.AppsV1Api(api)
    dep = _deployment("web")
    dep["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox:1"})
    apps.create_namespaced_deployment("default", dep)

    # Strategic merge: containers merge by name.
    apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "nginx:1.28"}]}}}})
    containers = apps.read_namespaced_deployment("web", "default").spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("app", "nginx:1.28"), ("sidecar", "busybox:1")]

    # JSON patch (a list body).
    apps.patch_namespaced_deployment("web", "default", [
        {"op": "replace", "path": "/spec/replicas", "value": 2},
        {"op": "add", "path": "/metadata/labels/extra", "value": "yes"},
    ])
    got = apps.read_namespaced_deployment("web", "default")
    assert got.spec.replicas == 2 and got.metadata.labels["extra"] == "yes"
    assert got.metadata.generation == 3


def test_scale_and_status_subresources(fake_api: FakeApiServer) -> None:
    fake_api.add_node("n1")
    api = fake_api.api_client()
    apps, v1 = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("web", replicas=1))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 1 and scale.status.selector == "app=web"

    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert len(v1.list_namespaced_pod("default", label_selector="app=web").items) == 3
    assert apps.read_namespaced_deployment_status("web", "default").status.ready_replicas == 3

    # Writes to the main resource ignore .status; the status subresource writes only .status.
    apps.patch_namespaced_deployment("web", "default", {"status": {"readyReplicas": 99}})
    assert apps.read_namespaced_deployment("web", "default").status.ready_replicas == 3
    dep = apps.patch_namespaced_deployment_status("web", "default", {"status": {"collisionCount": 7}})
    assert dep.status.collision_count == 7


def test_crd_registers_kind(fake_api: FakeApiServer) -> None:
    api = fake_api.api_client()
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object",
                                                         "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }
    created = client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    assert {c.type for c in created.status.conditions} == {"Established", "NamesAccepted"}

    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object("example.com", "v1", "default", "widgets", {
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}})
    got = custom.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w1")
    assert got["spec"] == {"size": 3} and got["metadata"]["generation"] == 1
    assert [i["metadata"]["name"] for i in
            custom.list_cluster_custom_object("example.com", "v1", "widgets")["items"]] == ["w1"]
    with urllib.request.urlopen(f"{fake_api.url}/apis/example.com/v1") as resp:
        resources = {r["name"] for r in json.load(resp)["resources"]}
    assert resources == {"widgets", "widgets/status"}

    client.ApiextensionsV1Api(api).delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as exc:
        custom.list_cluster_custom_object("example.com", "v1", "widgets")
    assert exc.value.status == 404


def test_namespace_deletion_deletes_contents(fake_api: FakeApiServer) -> None:
    v1 = client.CoreV1Api(fake_api.api_client())
    v1.create_namespace({"metadata": {"name": "apps"}})
    v1.create_namespaced_config_map("apps", {"metadata": {"name": "cfg"}})
    v1.create_namespaced_secret("apps", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert v1.read_namespaced_secret("s", "apps").data == {"k": "dg=="}
    v1.delete_namespace("apps")
    assert fake_api.store.objects("ConfigMap", "apps") == []
    assert fake_api.store.find("Namespace", "apps", "") is None


def test_delete_cascades_to_owned_objects(fake_api: FakeApiServer) -> None:
    apps = client.AppsV1Api(fake_api.api_client())
    apps.create_namespaced_deployment("default", _deployment("web", replicas=2))
    assert len(fake_api.store.objects("ReplicaSet", "default")) == 1
    assert len(fake_api.store.objects("Pod", "default")) == 2
    apps.delete_namespaced_deployment("web", "default")
    assert fake_api.store.objects("ReplicaSet", "default") == []
    assert fake_api.store.objects("Pod", "default") == []


def test_watch_streams_changes(fake_api: FakeApiServer) -> None:
    v1 = client.CoreV1Api(fake_api.api_client())
    v1.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def consume() -> None:
        for event in w.stream(v1.list_namespaced_config_map, "default", timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    while not seen:
        threading.Event().wait(0.02)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "new"}})
    v1.patch_namespaced_config_map("new", "default", {"data": {"x": "1"}})
    v1.delete_namespaced_config_map("new", "default")
    t.join(timeout=10)
    assert seen == [("ADDED", "before"), ("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")]


def test_request_log_counts_and_injected_failures(fake_api: FakeApiServer) -> None:
    v1 = client.CoreV1Api(fake_api.api_client())
    fake_api.clear_requests()
    v1.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}})
    v1.patch_namespaced_config_map("cfg", "default", {"data": {"a": "1"}})
    v1.patch_namespaced_config_map("cfg", "default", {"data": {"a": "2"}})
    assert fake_api.count("PATCH", r"/configmaps/cfg$") == 2
    assert fake_api.count("POST") == 1
    assert fake_api.count(agent="helm") == 0

    fake_api.fail("PATCH", r"/configmaps/cfg$", code=503)
    with pytest.raises(ApiException) as exc:
        v1.patch_namespaced_config_map("cfg", "default", {"data": {"a": "3"}})
    assert exc.value.status == 503
    v1.patch_namespaced_config_map("cfg", "default", {"data": {"a": "3"}})
    assert [r.status for r in fake_api.requests if r.method == "PATCH"] == [200, 200, 503, 200]
