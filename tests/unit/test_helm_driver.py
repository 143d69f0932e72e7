"""The Helm driver (homelab.helm) and binary lookup (homelab.binaries) with the real helm v4 against the fake API."""

from __future__ import annotations

import stat
import sys
import tempfile
from pathlib import Path

import pytest

from homelab import binaries, helm, redact
from tests.unit.test_apply_support import Cluster, build_standin, cluster, files_containing, unreachable_kubeconfig

__all__ = ["cluster"]  # the fixture, imported for pytest

pytestmark = pytest.mark.fakeapi

CANARY = "CANARY-helm-driver-7f3a9c2e51"
FAIL_TEMPLATE = '{{- if .Values.failWith }}{{ fail (printf "refusing %s" .Values.failWith) }}{{- end }}\n'


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``helm create webapp`` + the test overlay (auth Secret from values) + a template that can fail on demand."""
    work = tmp_path_factory.mktemp("chart")
    src = build_standin("webapp", "1.0.0", work, work, package=False)
    (src / "templates" / "fail.yaml").write_text(FAIL_TEMPLATE)
    return src


def upgrade(cluster: Cluster, chart: Path, values: dict[str, object] | None = None, *, name: str = "web",
            namespace: str = "apps", timeout: str = "30s") -> helm.HelmOutcome:
    return helm.upgrade(name, namespace, chart, None, values or {}, cluster.kubeconfig, timeout)


def statuses(cluster: Cluster, name: str = "web", namespace: str = "apps") -> list[tuple[int, str]]:
    return [(int(r["revision"]), str(r["status"])) for r in helm.history(name, namespace, cluster.kubeconfig)]


def test_fresh_install_creates_revision_1_then_upgrades(cluster: Cluster, chart: Path) -> None:
    first = upgrade(cluster, chart)
    assert first.ok and first.error == ""
    assert (first.revision, first.status, first.installed) == (1, "deployed", True)
    assert cluster.api.store.find("Namespace", "apps", "") is not None  # --create-namespace
    assert cluster.api.store.find("Deployment", "web-webapp", "apps")["status"]["availableReplicas"] == 1
    assert [(r.name, r.revision, r.status) for r in cluster.api.helm_releases("apps")] == [("web", 1, "deployed")]

    second = upgrade(cluster, chart, {"replicaCount": 2})
    assert (second.ok, second.revision, second.status, second.installed) == (True, 2, "deployed", False)
    assert statuses(cluster) == [(1, "superseded"), (2, "deployed")]
    assert cluster.api.store.find("Deployment", "web-webapp", "apps")["spec"]["replicas"] == 2


def test_command_line_flags(cluster: Cluster, chart: Path) -> None:
    upgrade(cluster, chart, timeout="45s")
    argv = next(a for a in cluster.helm.argv() if a[0] == "upgrade")
    assert argv[:4] == ["upgrade", "--install", "web", str(chart)]
    for flag in ("--create-namespace", "--rollback-on-failure", "--wait", "--hide-notes"):
        assert flag in argv
    assert "--atomic" not in argv  # deprecated in helm v4: it prints a warning
    assert argv[argv.index("--namespace") + 1] == "apps" and argv[argv.index("--timeout") + 1] == "45s"
    assert argv[argv.index("--kubeconfig") + 1] == str(cluster.kubeconfig)
    assert "--version" not in argv
    values_file = argv[argv.index("-f") + 1]
    assert Path(values_file).name.startswith("homelab-values-")
    cmd = helm.upgrade_command("web", "apps", "oci://r/c", "1.2.3", "/tmp/v.yaml", "5m", atomic=False, wait=False)
    assert "--rollback-on-failure" not in cmd and "--wait" not in cmd
    assert cmd[cmd.index("--version") + 1] == "1.2.3"


def test_status_history_and_missing_release(cluster: Cluster, chart: Path) -> None:
    assert helm.status("web", "apps", cluster.kubeconfig) is None
    assert helm.history("web", "apps", cluster.kubeconfig) == []
    upgrade(cluster, chart, {"auth": {"postgresPassword": CANARY}})
    state = helm.status("web", "apps", cluster.kubeconfig)
    assert state is not None
    assert (state["name"], state["namespace"], state["revision"], state["status"]) == ("web", "apps", 1, "deployed")
    assert state["chart"] == "webapp-1.0.0" and state["revisions"] == 1
    # built from helm history: neither values nor the rendered manifest (which holds the Secret)
    assert "manifest" not in state and "config" not in state and CANARY not in str(state)


def test_pending_upgrade_is_rolled_back_then_upgraded(cluster: Cluster, chart: Path) -> None:
    upgrade(cluster, chart)
    upgrade(cluster, chart, {"replicaCount": 2})
    assert helm.recover_if_stuck("web", "apps", cluster.kubeconfig) is None  # deployed: nothing to do
    cluster.api.set_helm_release_status("web", "apps", "pending-upgrade")
    blocked = upgrade(cluster, chart)
    assert not blocked.ok and "another operation (install/upgrade/rollback) is in progress" in blocked.error

    message = helm.recover_if_stuck("web", "apps", cluster.kubeconfig, "30s")
    assert message == ("web: revision 2 was left pending-upgrade by an interrupted helm run: rolled back to "
                       "revision 1, the last deployed one (now revision 3, deployed)")
    after = upgrade(cluster, chart, {"replicaCount": 3})
    assert (after.ok, after.revision, after.status) == (True, 4, "deployed")
    assert statuses(cluster)[-2:] == [(3, "superseded"), (4, "deployed")]


def test_pending_install_at_revision_1_is_uninstalled(cluster: Cluster, chart: Path) -> None:
    upgrade(cluster, chart)
    cluster.api.set_helm_release_status("web", "apps", "pending-install")
    message = helm.recover_if_stuck("web", "apps", cluster.kubeconfig, "30s")
    assert message == ("web: revision 1 was left pending-install by an interrupted helm run and nothing of it "
                       "was ever deployed: uninstalled it so the install starts clean")
    assert cluster.helm.count("uninstall") == 1 and cluster.api.helm_releases("apps") == []
    again = upgrade(cluster, chart)
    assert (again.ok, again.revision, again.installed) == (True, 1, True)


def test_pending_rollback_without_a_deployed_revision_is_an_error(cluster: Cluster, chart: Path) -> None:
    upgrade(cluster, chart)
    cluster.api.set_helm_release_status("web", "apps", "failed")
    cluster.api.set_helm_release_status("web", "apps", "pending-rollback")
    with pytest.raises(helm.HelmError, match=r"no earlier deployed revision to roll back to: inspect it with "
                                             r"`helm history web -n apps`"):
        helm.recover_if_stuck("web", "apps", cluster.kubeconfig)


def test_never_ready_install_fails_and_leaves_no_release(cluster: Cluster, chart: Path) -> None:
    cluster.api.never_ready("Deployment", "web-webapp")
    outcome = upgrade(cluster, chart, timeout="2s")
    assert not outcome.ok and outcome.revision is None and outcome.status == ""
    assert "\n" not in outcome.error
    assert outcome.error.startswith("helm upgrade web failed: release web failed, and has been uninstalled due to "
                                    "rollback-on-failure being set: resource Deployment/apps/web-webapp not ready")
    assert outcome.error.endswith("[no release is left]")
    assert cluster.api.helm_releases("apps") == []
    assert cluster.api.store.find("Deployment", "web-webapp", "apps") is None


def test_never_ready_upgrade_is_rolled_back(cluster: Cluster, chart: Path) -> None:
    upgrade(cluster, chart)
    cluster.api.never_ready("Deployment", "web-webapp")
    outcome = upgrade(cluster, chart, {"image": {"tag": "broken"}}, timeout="2s")
    assert not outcome.ok and "\n" not in outcome.error
    assert "has been rolled back due to rollback-on-failure being set" in outcome.error
    assert outcome.error.endswith("[release is at revision 3 (deployed)]")
    assert (outcome.revision, outcome.status) == (3, "deployed")
    assert statuses(cluster) == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    image = cluster.api.store.find("Deployment", "web-webapp", "apps")["spec"]["template"]["spec"]["containers"][0]
    assert not image["image"].endswith(":broken")


def test_values_reach_helm_only_through_a_private_temp_file(cluster: Cluster, chart: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    redact.clear()
    redact.register("webapp.password", CANARY)
    outcome = upgrade(cluster, chart, {"auth": {"postgresPassword": CANARY}})
    assert outcome.ok
    # the value did reach the cluster (the chart's Secret), so the canary is real
    assert cluster.api.store.find("Secret", "web-auth", "apps")["data"]["password"]
    calls = cluster.helm.calls()
    assert all(CANARY not in " ".join(c["argv"]) for c in calls)
    (call,) = [c for c in calls if c["argv"][0] == "upgrade"]
    assert call["values_mode"] == "0o600"
    assert not Path(call["values_file"]).exists() and list(tmp.iterdir()) == []
    assert CANARY not in " ".join(outcome.command) + outcome.stdout + outcome.stderr + outcome.error
    assert "<values-file>" in outcome.command
    out, err = capfd.readouterr()
    assert CANARY not in out + err
    assert files_containing(tmp_path, CANARY) == []
    redact.clear()


def test_helm_errors_are_redacted(cluster: Cluster, chart: Path, tmp_path: Path) -> None:
    redact.clear()
    redact.register("webapp.password", CANARY)
    outcome = upgrade(cluster, chart, {"failWith": CANARY})
    assert not outcome.ok
    assert "refusing <redacted:webapp.password>" in outcome.error
    assert CANARY not in outcome.error + outcome.stderr + outcome.stdout
    assert files_containing(tmp_path, CANARY) == []
    redact.clear()


def test_uninstall_is_idempotent(cluster: Cluster, chart: Path) -> None:
    upgrade(cluster, chart)
    assert helm.uninstall("web", "apps", cluster.kubeconfig, "30s") == "web: uninstalled from namespace apps"
    assert cluster.api.helm_releases("apps") == []
    assert helm.uninstall("web", "apps", cluster.kubeconfig, "30s") == "web: uninstalled from namespace apps"


def test_unreachable_cluster_is_one_line(chart: Path, tmp_path: Path) -> None:
    kubeconfig = unreachable_kubeconfig(tmp_path)
    outcome = helm.upgrade("web", "apps", chart, None, {}, kubeconfig, "5s")
    assert not outcome.ok and "\n" not in outcome.error and "connection refused" in outcome.error
    with pytest.raises(helm.HelmError, match="connection refused"):
        helm.history("web", "apps", kubeconfig)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("1m30s", 90),
                                               ("500ms", 0.5)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert helm.parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        helm.parse_duration("5 minutes")


def test_error_line_keeps_helm_error_and_drops_noise() -> None:
    stderr = ('level=WARN msg="upgrade failed" name=web error="boom"\nError: UPGRADE FAILED: release web failed\n'
              "context deadline exceeded\nUse --debug flag to render out invalid YAML\n")
    assert helm.error_line(stderr) == "UPGRADE FAILED: release web failed; context deadline exceeded"
    assert helm.error_line("", "exit 1") == "exit 1"


# -- binaries ------------------------------------------------------------------------------------------------

def test_binary_override_must_be_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOMELAB_HELM", str(tmp_path / "nope"))
    with pytest.raises(binaries.BinaryNotFound, match=r"^helm not found: HOMELAB_HELM=.*nope is not an executable"):
        binaries.helm()
    tool = tmp_path / "my-helm"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(stat.S_IRWXU)
    monkeypatch.setenv("HOMELAB_HELM", str(tool))
    assert binaries.helm() == str(tool)


def test_binary_lookup_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HOMELAB_KUBECTL", raising=False)
    repo = tmp_path / "repo"
    (repo / ".venv" / "bin").mkdir(parents=True)
    monkeypatch.setenv("HOMELAB_REPO", str(repo))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "elsewhere" / "python"))
    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "kubectl").write_text("#!/bin/sh\n")
    (on_path / "kubectl").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert binaries.kubectl() == str(on_path / "kubectl")
    venv_tool = repo / ".venv" / "bin" / "kubectl"
    venv_tool.write_text("#!/bin/sh\n")
    venv_tool.chmod(0o755)
    assert binaries.kubectl() == str(venv_tool)


def test_missing_binary_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HOMELAB_HELM", raising=False)
    monkeypatch.setenv("HOMELAB_REPO", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(binaries.BinaryNotFound) as exc:
        binaries.helm()
    assert str(exc.value) == "helm not found: run `make setup` (or set HOMELAB_HELM)"
