"""``doit verify`` (homelab.verify): the requirement table, the cluster checks against the FAKE Kubernetes API server
(after converging the real releases with stand-in charts, as tests/unit/test_drift.py does), the HTTPS probe
against a local TLS server on 127.0.0.1, and the testinfra part with a synthetic test on the ``local://`` backend.

What the fake cannot be by itself is made explicitly, through its control API and hooks: Nodes with the
inventory's labels, taints, Tailscale addresses and GPU; Certificates Ready (no cert-manager controller runs);
Traefik's LoadBalancer Service with its MetalLB address (k3s ships Traefik, the fake does not); a StatefulSet
standing in for the Bitnami chart's (the stand-in chart makes a Deployment); Prometheus' answer behind the API
server's service proxy (the fake has no proxy); and refusing verify's request without credentials (the fake
accepts requests without a token: kubectl and helm send none over its plain http).
"""

from __future__ import annotations

import copy
import datetime
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab import paths, stamps, verify
from homelab.project import Project
from tests.fakeapi.server import RequestRecord
from tests.helpers import REPO, Tree
from tests.unit.test_apply_support import create_objects
from tests.unit.test_drift import Lab, converged_lab

INVENTORY = yaml.safe_load((REPO / "hosts" / "sandbox.yaml").read_text())
PROMETHEUS_PROXY = "/api/v1/namespaces/monitoring/services/kube-prometheus-stack-prometheus:9090/proxy/api/v1/targets"


def targets(*, down: tuple[str, ...] = ()) -> dict[str, Any]:
    """Prometheus' /api/v1/targets answer: node-exporter on every host, kube-state-metrics, the apiserver."""
    active = [{"labels": {"job": "node-exporter", "instance": h["name"]}, "health": "up"} for h in INVENTORY["hosts"]]
    active += [{"labels": {"job": "kube-state-metrics"}, "health": "up"},
               {"labels": {"job": "apiserver"}, "health": "up"}]
    for target in active:
        if target["labels"].get("instance", target["labels"]["job"]) in down:
            target.update(health="down", lastError="connection refused")
    return {"status": "success", "data": {"activeTargets": active, "droppedTargets": []}}


class Answers:
    """Fake API hooks: Prometheus behind the service proxy, and 401 for requests without credentials."""

    def __init__(self) -> None:
        self.prometheus: dict[str, Any] | None = targets()

    def __call__(self, record: RequestRecord) -> tuple[int, Any] | None:
        # kubectl and helm send no token over the fake's plain http either: refuse only the probe's request
        if "authorization" not in record.headers and record.user_agent.startswith("Python-urllib"):
            return 401, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "Unauthorized",
                         "reason": "Unauthorized", "code": 401}
        if self.prometheus is not None and record.method == "GET" and record.path == PROMETHEUS_PROXY:
            return 200, self.prometheus
        return None


def _put(lab: Lab, obj: dict[str, Any]) -> None:
    lab.api.store.put(obj)


def make_healthy(lab: Lab) -> Answers:
    """What a converged lab has that the fake lacks (see the module docstring)."""
    store = lab.api.store
    for host in INVENTORY["hosts"]:
        roles = ("control-plane", "master") if "server" in host["roles"] else ()
        node = copy.deepcopy(lab.api.add_node(host["name"], labels=dict(host.get("labels") or {}), roles=roles))
        node["status"]["addresses"].append({"type": "ExternalIP", "address": host["tailscale_ip"]})
        if "gpu" in host["roles"]:
            node["status"]["allocatable"] = {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
        taints = []
        for text in host.get("taints") or []:
            key_value, _, effect = text.partition(":")
            key, _, value = key_value.partition("=")
            taints.append({"key": key, "value": value, "effect": effect})
        if taints:
            node["spec"]["taints"] = taints
        _put(lab, node)
    for cert in store.objects("Certificate"):
        cert = copy.deepcopy(cert)
        cert["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}
        _put(lab, cert)
    create_objects(lab.api, [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "traefik", "namespace": "kube-system"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "traefik"}, "ports": [{"name": "websecure",
                                                                                     "port": 443}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-prometheus-stack-prometheus", "namespace": "monitoring"},
         "spec": {"selector": {"app": "prometheus"}, "ports": [{"name": "http", "port": 9090}]}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "data-postgresql-0", "namespace": "data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "nfs-client",
                  "resources": {"requests": {"storage": "20Gi"}}}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "postgresql", "namespace": "data"},
         "spec": {"replicas": 1, "serviceName": "postgresql", "selector": {"matchLabels": {"app": "pg"}},
                  "template": {"metadata": {"labels": {"app": "pg"}},
                               "spec": {"containers": [{"name": "postgresql", "image": "postgres:18"}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                      "accessModes": ["ReadWriteOnce"], "storageClassName": "nfs-client",
                      "resources": {"requests": {"storage": "20Gi"}}}}]}},
    ])
    traefik = copy.deepcopy(store.find("Service", "traefik", "kube-system"))
    traefik["status"] = {"loadBalancer": {"ingress": [{"ip": INVENTORY["network"]["ingress_ip"]}]}}
    _put(lab, traefik)
    answers = Answers()
    lab.api.add_hook(answers)
    return answers


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Answers]]:
    with pytest.MonkeyPatch.context() as mp:
        for lab in converged_lab(tmp_path_factory.mktemp("verify"), mp):
            yield lab, make_healthy(lab)


def _report(lab: Lab, **kwargs: Any) -> verify.VerifyReport:
    return verify.verify_report(lab.project(), **kwargs)


def _wait_ready(lab: Lab) -> None:
    """The fake's controllers create and ready the pods of what make_healthy added (a few polls)."""
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if verify.verify_report(lab.project(), hosts=False).status("FR7") == verify.PASS:
            return
        time.sleep(0.5)


# -- the cluster checks against the fake ------------------------------------------------------------------------

def test_healthy_lab_passes_every_cluster_check(healthy: tuple[Lab, Answers]) -> None:
    lab, _ = healthy
    _wait_ready(lab)
    report = _report(lab)
    failed = [c for c in report.checks if c.status == verify.FAIL]
    assert failed == []
    assert report.exit_code == 0
    for req in ("FR1", "FR2", "FR4", "FR5", "FR7", "FR8", "FR10", "FR11", "FR14", "FR15", "FR16", "FR19", "FR20",
                "FR21", "FR25", "FR26", "FR27", "FR31", "FR32", "FR39", "FR71", "FR100", "FR102", "NFR7", "NFR12",
                "NFR18", "NFR36"):
        assert report.status(req) == verify.PASS, (req, report.row(req).reason)
    # host checks: the test tree has no sandbox up; the probe through the ingress IP is for the lab only
    for req in ("FR47", "FR101", "FR103", "NFR10", "NFR11", "NFR57"):
        assert report.status(req) == verify.NOT_CHECKABLE, req
        assert "the sandbox is not up" in report.row(req).reason
    assert report.row("FR9").reason.startswith("HTTPS through the ingress: the sandbox's ingress IP answers nothing")
    assert report.row("FR29").reason == "needs a human with a phone (the notification must arrive on it)"
    assert report.row("FR4").reason == "nodes Ready: 4/4 inventory host(s) have a Ready Node"
    assert report.row("FR15").reason.startswith("PVCs Bound: ") and report.row("FR15").reason.endswith("Bound")


def test_not_ready_node_fails_fr4_and_the_gpu_rows(healthy: tuple[Lab, Answers]) -> None:
    lab, _ = healthy
    lab.api.set_node_ready("sbx-gpu-worker", False)
    try:
        report = _report(lab, hosts=False)
    finally:
        lab.api.set_node_ready("sbx-gpu-worker", True)
    assert report.status("FR4") == verify.FAIL
    assert report.row("FR4").reason == "nodes Ready: sbx-gpu-worker: NotReady (KubeletNotReady)"
    assert report.status("FR71") == verify.FAIL and report.status("NFR36") == verify.FAIL
    assert report.status("FR1") == verify.PASS
    assert report.exit_code == 1
    assert "failed: nodes Ready: sbx-gpu-worker: NotReady (KubeletNotReady)" in report.lines


def test_missing_label_taint_and_gpu_fail_their_rows(healthy: tuple[Lab, Answers]) -> None:
    lab, _ = healthy
    original = copy.deepcopy(lab.api.store.find("Node", "sbx-gpu-worker", ""))
    changed = copy.deepcopy(original)
    del changed["metadata"]["labels"]["gpu"]
    changed["spec"].pop("taints")
    changed["status"]["allocatable"].pop("nvidia.com/gpu")
    _put(lab, changed)
    try:
        report = _report(lab, hosts=False)
    finally:
        _put(lab, original)
    assert report.row("FR2").reason == ("workers joined: sbx-gpu-worker: label gpu=nvidia missing, taint "
                                        "nvidia.com/gpu=present:NoSchedule missing")
    assert report.status("FR39") == verify.FAIL
    assert report.row("FR39").reason == "GPU allocatable: sbx-gpu-worker: allocatable nvidia.com/gpu is 0 or missing"
    assert report.status("FR4") == verify.PASS


def test_unbound_pvc_fails_fr15(healthy: tuple[Lab, Answers]) -> None:
    lab, _ = healthy
    # the fake binds every claim at once: the list answers with one Pending claim, as an API server would whose
    # provisioner is down
    pending = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "stuck", "namespace": "apps", "uid": "stuck-1", "resourceVersion": "1"},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "nfs-client",
                        "resources": {"requests": {"storage": "1Gi"}}},
               "status": {"phase": "Pending"}}

    def with_pending(record: RequestRecord) -> tuple[int, Any] | None:
        if record.method == "GET" and record.path == "/api/v1/persistentvolumeclaims" and not record.is_watch:
            items = [*lab.api.store.objects("PersistentVolumeClaim"), pending]
            return 200, {"apiVersion": "v1", "kind": "PersistentVolumeClaimList",
                         "metadata": {"resourceVersion": "1"}, "items": items}
        return None

    lab.api.add_hook(with_pending)
    try:
        report = _report(lab, hosts=False)
    finally:
        lab.api.remove_hook(with_pending)
    assert report.status("FR15") == verify.FAIL
    assert report.row("FR15").reason == "PVCs Bound: apps/stuck: Pending"
    assert report.status("FR14") == verify.FAIL  # it asks for the NFS StorageClass
    assert report.exit_code == 1


def test_prometheus_targets_down_and_no_proxy(healthy: tuple[Lab, Answers]) -> None:
    lab, answers = healthy
    answers.prometheus = targets(down=("sbx-worker-02",))
    try:
        report = _report(lab, hosts=False)
        assert report.status("FR26") == verify.FAIL
        assert report.row("FR26").reason == "node-exporter targets: 3/4 node(s) scraped up"
        assert report.row("NFR18").reason == "every target up: 1 down: node-exporter (connection refused)"
        assert report.status("FR27") == verify.PASS
        answers.prometheus = None  # the fake itself: no service proxy
        report = _report(lab, hosts=False)
        for req in ("FR25", "FR26", "FR27", "NFR18"):
            assert report.status(req) == verify.NOT_CHECKABLE, req
        assert report.row("FR26").reason.startswith("Prometheus targets: the API server does not proxy to Service "
                                                    "monitoring/kube-prometheus-stack-prometheus")
    finally:
        answers.prometheus = targets()


def test_anonymous_access_answered_fails_nfr12(healthy: tuple[Lab, Answers]) -> None:
    lab, answers = healthy
    lab.api.remove_hook(answers)
    try:
        report = _report(lab, hosts=False)
    finally:
        lab.api.add_hook(answers)
    assert report.status("NFR12") == verify.FAIL
    assert report.row("NFR12").reason == ("anonymous API access refused: an anonymous request is answered (HTTP 200): "
                                          "anyone reaching the API can read it")


def test_hand_made_helm_revision_fails_fr8(healthy: tuple[Lab, Answers]) -> None:
    lab, _ = healthy
    lab.helm_cli("upgrade", "n8n", str(lab.tree.root / "charts" / "n8n"), "--namespace", "apps", "--reuse-values")
    report = _report(lab, hosts=False)
    assert report.status("FR8") == verify.FAIL
    assert report.row("FR8").reason == "releases deployed: n8n: revision 2, recorded 1"


# -- HTTPS through the ingress: a local TLS server and an injected resolver ----------------------------------------

def _certificate(tmp: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``names`` (cryptography), as PEM files: (ca, cert, key)."""
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "homelab test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths_ = (tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem")
    paths_[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths_[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths_[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return paths_


class TlsServer:
    """A tiny HTTPS server on 127.0.0.1 answering every request with ``status`` (bounded: stops with the test)."""

    def __init__(self, cert: Path, key: Path, status: int = 200) -> None:
        import http.server

        answer = status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_ingress_routes_answer_over_tls(healthy: tuple[Lab, Answers], tmp_path: Path) -> None:
    lab, _ = healthy
    domain = INVENTORY["domain"]
    hosts = sorted({h for _, h, _ in _route_hosts(lab)})
    assert f"traefik.{domain}" in hosts
    ca, cert, key = _certificate(tmp_path, hosts)
    server = TlsServer(cert, key, status=401)  # a basic-auth login answers too
    try:
        context = ssl.create_default_context(cafile=str(ca))
        report = _report(lab, hosts=False, resolver=lambda host: ("127.0.0.1", server.port), tls_context=context)
        assert report.status("FR9") == verify.PASS, report.row("FR9").reason
        assert re.search(r"HTTPS through the ingress: \d+ host\(s\) answer over TLSv1\.[23] with a valid certificate",
                         report.row("FR9").reason)
        assert report.status("NFR7") == verify.PASS
        # a certificate the client does not trust: every host fails NFR7 with the reason
        report = _report(lab, hosts=False, resolver=lambda host: ("127.0.0.1", server.port),
                         tls_context=ssl.create_default_context())
        assert report.status("NFR7") == verify.FAIL
        assert f"traefik.{domain}: certificate not valid" in report.row("NFR7").reason
    finally:
        server.stop()


def _route_hosts(lab: Lab) -> list[tuple[str, str, bool]]:
    from homelab import kube

    cluster = verify._Cluster(lab.project(), kube.connect(lab.kubeconfig), lab.kubeconfig)
    return cluster.route_hosts() or []


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_probe_https_refuses_tls_older_than_1_2(tmp_path: Path) -> None:
    ca, cert, key = _certificate(tmp_path, ["old.example.test"])
    server = TlsServer(cert, key)
    server.httpd.socket.context.maximum_version = ssl.TLSVersion.TLSv1_1  # type: ignore[attr-defined]
    try:
        ok, detail = verify.probe_https("old.example.test", "127.0.0.1", server.port,
                                        ssl.create_default_context(cafile=str(ca)), timeout=5)
    finally:
        server.stop()
    assert not ok and detail.startswith("TLS failed")


# -- without a Kubernetes API (the sandbox) -------------------------------------------------------------------------

def test_sandbox_without_api_is_not_checkable_and_every_spec_id_has_a_row(tree: Tree,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOMELAB_KUBECONFIG", raising=False)
    stamps._READ.clear()
    project = Project.load(paths.layout("sandbox", tree.root))
    report = verify.verify_report(project)
    assert report.exit_code == 0
    assert [r.id for r in report.rows] == [i for i, _ in verify.REQUIREMENTS]
    assert {r.status for r in report.rows} == {verify.NOT_CHECKABLE}
    assert report.row("FR4").reason.startswith("cluster: no Kubernetes API (the sandbox's k3s is a stand-in")
    assert report.row("FR47").reason.startswith("hosts: the sandbox is not up (no build/sandbox/ssh/config")
    assert report.lines[0].split() == ["id", "status", "reason"]
    assert report.lines[-1] == (f"verify: 0 pass, 0 fail, {len(verify.REQUIREMENTS)} not-checkable-here "
                                "(2 check(s), 0 failed)")


def test_requirements_cover_the_spec_inventory() -> None:
    ids = [i for i, _ in verify.REQUIREMENTS]
    assert len(ids) == len(set(ids))
    numbers = {i for i in ids if i.startswith("FR")}
    assert {f"FR{n}" for n in (1, 2, 4, 5, 14, 15, 16, 19, 21, 26, 31, 32, 47, 71, 100, 101, 102, 103)} <= numbers
    assert {"NFR7", "NFR10", "NFR11", "NFR12", "NFR36", "NFR57"} <= set(ids)
    assert set(verify.NOT_AUTOMATED) <= set(ids)
    spec_dirs = [REPO.parent / "shared" / "spec", Path("/work/shared/spec")]
    spec = next((p for d in spec_dirs if d.is_dir() for p in sorted(d.glob("*.txt"))), None)
    if spec is None:
        pytest.skip("the spec (shared/spec) is not beside this checkout")
    found = set(re.findall(r"^- ((?:N)?FR\d+):", spec.read_text(encoding="utf-8"), re.MULTILINE))
    assert found == set(ids)


# -- the testinfra part: a synthetic test on the local:// backend ------------------------------------------------------

SYNTHETIC = '''
import pytest

HOSTS = [pytest.param("sbx-master", id="sbx-master"), pytest.param("sbx-worker-01", id="sbx-worker-01")]


@pytest.fixture
def target():
    import testinfra

    return testinfra.get_host("local://")


@pytest.mark.parametrize("entry", HOSTS)
def test_no_proxy_line(entry, target):
    assert target.file("/etc/os-release").exists


@pytest.mark.parametrize("entry", HOSTS)
def test_base_packages(entry, target):
    if entry == "sbx-worker-01":
        assert target.file("/nonexistent/homelab-verify").exists, "nfs-common is not installed"


@pytest.mark.parametrize("entry", HOSTS)
def test_firewall(entry, target):
    pytest.skip("network.firewall is false in this inventory: ufw is not managed")


'''

SYNTHETIC_GAMING = '''
import pytest


@pytest.mark.parametrize("entry", ["sbx-gpu-worker"])
def test_steam(entry):
    pytest.skip("stand-in nvidia")
'''


def test_live_checks_run_through_pytest_and_map_to_ids(tmp_path: Path, tree: Tree) -> None:
    live = tmp_path / "checkout" / "tests" / "live"
    live.mkdir(parents=True)
    (live / "test_vm.py").write_text(SYNTHETIC)
    (live / "test_gaming.py").write_text(SYNTHETIC_GAMING)
    project = Project.load(paths.layout("sandbox", tree.root))
    checks = verify.host_checks_report(project, live_dir=live, env=dict(__import__("os").environ))
    by_name = {c.name: c for c in checks}
    assert by_name["host test_vm.py::test_no_proxy_line"] == verify.Check(
        "host test_vm.py::test_no_proxy_line", ("FR103",), verify.PASS, "2 host(s) passed")
    failed = by_name["host test_vm.py::test_base_packages"]
    assert failed.status == verify.FAIL and failed.ids == ("FR47", "FR14")
    assert failed.reason.startswith("sbx-worker-01: AssertionError: nfs-common is not installed")
    assert by_name["host test_vm.py::test_firewall"].status == verify.NOT_CHECKABLE
    assert by_name["host test_vm.py::test_firewall"].reason == ("skipped: network.firewall is false in this "
                                                                "inventory: ufw is not managed")
    rows = {r.id: r for r in verify.table(checks)}
    assert rows["FR103"].status == verify.PASS and rows["FR47"].status == verify.FAIL
    assert rows["FR95"].status == verify.NOT_CHECKABLE and rows["FR95"].reason.endswith("skipped: stand-in nvidia")


def test_live_run_without_a_report_is_one_line(tmp_path: Path) -> None:
    live = tmp_path / "tests" / "live"
    live.mkdir(parents=True)
    (live / "conftest.py").write_text("raise SystemExit('broken conftest')\n")
    with pytest.raises(verify.LiveRunError) as caught:
        verify.run_live_checks(live, {"PATH": "/usr/bin:/bin"}, timeout=120)
    assert str(caught.value).startswith("pytest wrote no report")
    assert "\n" not in str(caught.value)


def test_the_real_live_checks_skip_without_hosts(tree: Tree) -> None:
    """tests/live itself through the runner, without HOMELAB_LIVE: every test is collected and skipped."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "HOMELAB_LIVE"}
    outcomes = verify.run_live_checks(REPO / "tests" / "live", {**env, "HOMELAB_ENV": "sandbox"})
    assert outcomes and {o.outcome for o in outcomes} == {"skipped"}
    keys = {o.key for o in outcomes}
    assert keys <= set(verify.HOST_CHECKS), keys - set(verify.HOST_CHECKS)
    assert keys == set(verify.HOST_CHECKS)
    assert sys.executable and subprocess  # the runner uses this interpreter


def test_a_check_that_cannot_read_fails_its_own_ids(healthy: tuple[Lab, Answers],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lab, _ = healthy
    monkeypatch.setenv("HOMELAB_HELM", str(lab.tree.root / "no-such-helm"))
    report = _report(lab, hosts=False)
    assert report.status("FR8") == verify.FAIL
    assert report.row("FR8").reason.startswith("releases: could not read the cluster: BinaryNotFound: ")
    assert report.status("FR4") == verify.PASS  # the other checks still ran


def test_verify_report_runs_the_host_checks_where_the_sandbox_is_up(tmp_path: Path, tree: Tree,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path of ``verify_report``: live_env finds the sandbox's ssh config (a stand-in file here; the
    synthetic checks use the local:// backend and never read it), pytest runs, the rows come from it."""
    monkeypatch.delenv("HOMELAB_KUBECONFIG", raising=False)
    config = tree.build / "ssh" / "config"
    config.parent.mkdir(parents=True)
    config.write_text("# stand-in: the synthetic checks run on local://\n")
    live = tmp_path / "checkout" / "tests" / "live"
    live.mkdir(parents=True)
    (live / "test_vm.py").write_text(SYNTHETIC + "\n\ndef test_env(entry='x'):\n    import os\n"
                                     "    assert os.environ['HOMELAB_LIVE'] == '1'\n"
                                     f"    assert os.environ['HOMELAB_SSH_CONFIG'] == {str(config)!r}\n")
    project = Project.load(paths.layout("sandbox", tree.root))
    report = verify.verify_report(project, live_dir=live,
                                  host_checks={**verify.HOST_CHECKS, "test_vm.py::test_env": ("NFR57",)})
    assert report.status("FR103") == verify.PASS
    assert report.status("NFR57") == verify.PASS, report.row("NFR57").reason
    assert report.status("FR47") == verify.FAIL
    assert report.status("FR4") == verify.NOT_CHECKABLE
    assert report.exit_code == 1
