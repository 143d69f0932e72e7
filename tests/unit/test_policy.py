"""Policy rules on rendered objects: one failing fixture per rule and fault, each asserted to its exact line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab import paths, policy
from homelab.project import Project
from homelab.validate import validate_objects
from tests.helpers import FIXTURES, Tree

CASES = sorted((FIXTURES / "policy").glob("*.yaml"))
FAULTS = [c for c in CASES if not c.name.startswith("valid-")]


def _load(case: Path) -> tuple[list[dict[str, Any]], list[str]]:
    text = case.read_text()
    expected = [line.removeprefix("# expect: ") for line in text.splitlines() if line.startswith("# expect: ")]
    return [d for d in yaml.safe_load_all(text) if d], expected


@pytest.fixture
def project(tree: Tree) -> Project:
    p = Project.load(paths.layout("sandbox", tree.root))
    assert p.ok, [x.line() for x in p.problems]
    return p


def test_every_rule_has_a_failing_fixture() -> None:
    rules_with_fixtures = {c.name.split("-", 1)[0] for c in FAULTS}
    assert rules_with_fixtures == set(policy.RULES)


@pytest.mark.parametrize("case", FAULTS, ids=[c.stem for c in FAULTS])
def test_fault_fixture_reports_exactly_its_line(case: Path, project: Project) -> None:
    objects, expected = _load(case)
    assert expected, f"{case.name} has no '# expect:' line"
    lines = [v.line() for v in policy.check(project, project.release("webapp"), objects)]
    assert lines == expected
    # the fixtures are schema-valid, so each one exercises its policy rule and nothing else
    assert validate_objects(objects, "1.31.4", project.schema_dir / "crds") == []


def test_valid_fixture_has_no_violation(project: Project) -> None:
    objects, _ = _load(FIXTURES / "policy" / "valid-everything.yaml")
    assert policy.check(project, project.release("webapp"), objects) == []
    assert validate_objects(objects, "1.31.4", project.schema_dir / "crds") == []


def test_warnings_are_marked_and_errors_are_not(project: Project) -> None:
    objects, _ = _load(FIXTURES / "policy" / "storage-no-class.yaml")
    (found,) = policy.check(project, project.release("webapp"), objects)
    assert found.severity == "warning" and found.line().startswith("warning: webapp: ")
    objects, _ = _load(FIXTURES / "policy" / "storage-wrong-class.yaml")
    (found,) = policy.check(project, project.release("webapp"), objects)
    assert found.severity == "error" and found.line().startswith("webapp: ")


def test_object_without_namespace_lands_in_the_release_namespace(project: Project) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}
    assert policy.check(project, project.release("webapp"), [cm]) == []  # apps is in the table
    ctx = policy.context(project, project.release("webapp"))
    elsewhere = policy.Context("webapp", "nowhere", ctx.namespaces, ctx.storage_class, ctx.pool)
    (found,) = policy.check_objects([cm], elsewhere)
    assert found.line() == ("webapp: ConfigMap/x: metadata.namespace: lands in the release namespace nowhere, "
                            "which is not in the inventory's namespace table")


def test_cluster_scoped_objects_need_no_namespace(project: Project) -> None:
    objs = [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}},
            {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "i"}}]
    ctx = policy.context(project, project.release("webapp"))
    assert policy.check_objects(objs, policy.Context("webapp", "nowhere", ctx.namespaces, "nfs-client", None)) == []


def test_intended_storage_class_comes_from_the_storage_release(project: Project, tree: Tree) -> None:
    assert policy.intended_storage_class(project) == "nfs-client"  # the fixture's storage release exports it
    tree.edit("releases/storage/release.yaml", "storageclass: {type: storageclass, value: nfs-client}",
              "storageclass: {type: storageclass, value: nfs-fast}")
    edited = Project.load(paths.layout("sandbox", tree.root))
    assert policy.intended_storage_class(edited) == "nfs-fast"
    objects, _ = _load(FIXTURES / "policy" / "storage-no-class.yaml")
    assert policy.check(edited, edited.release("webapp"), objects)[0].message.endswith("set nfs-fast")


def test_nfs_provisioner_release_wins(tree: Tree) -> None:
    tree.write("releases/nfs-provisioner/release.yaml", (
        "name: nfs-provisioner\nnamespace: infra\ndescription: the storage release of the real repository\n"
        "needs: [nfs]\nexports:\n  storageclass: {type: storageclass, value: nfs-slow}\n"))
    tree.write("releases/nfs-provisioner/manifests/sc.yaml", (
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: nfs-slow}\nprovisioner: x\n"))
    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok, [p.line() for p in project.problems]
    assert policy.intended_storage_class(project) == "nfs-slow"  # storage exports nfs-client; nfs-provisioner wins


def test_without_a_storage_export_the_class_is_nfs_client(tree: Tree) -> None:
    tree.edit("releases/storage/release.yaml", "exports:\n  storageclass: {type: storageclass, value: nfs-client}\n",
              "")
    project = Project.load(paths.layout("sandbox", tree.root))
    assert project.ok, [p.line() for p in project.problems]
    assert policy.intended_storage_class(project) == "nfs-client"  # nobody exports one: the default


def test_image_digest_is_pinned_enough(project: Project) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "apps"},
           "spec": {"containers": [{"name": "c", "image": "busybox@sha256:" + "a" * 64,
                                    "resources": {"requests": {"cpu": "1m", "memory": "1Mi"},
                                                  "limits": {"cpu": "1m", "memory": "1Mi"}}}]}}
    assert policy.check(project, project.release("webapp"), [pod]) == []
