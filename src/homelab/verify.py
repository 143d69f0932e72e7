"""``doit verify``: does the converged lab meet the spec? A table of requirement ids -> pass / fail /
not-checkable-here, each with a short reason. Strictly read-only: it reads hosts and the cluster, never changes them.

Two sources of evidence:

- **hosts**: the testinfra checks in ``tests/live`` (one file per host stage), run by pytest in a subprocess
  against the selected environment's hosts. ``tests/live`` contacts hosts only with ``HOMELAB_LIVE=1``; verify
  sets it because running ``doit verify`` *is* the operator's explicit request to read the hosts of the selected
  environment. The sandbox's hosts are reached through its ssh config (``HOMELAB_SSH_CONFIG``) and only when the
  sandbox is up; another environment's hosts through the inventory's addresses (the lab only when the operator
  selected ``HOMELAB_ENV=lab``). Each test function supports the ids in ``HOST_CHECKS``.
- **cluster** (kubernetes client, imported lazily): nodes Ready with the inventory's labels, taints and
  Tailscale addresses, GPU allocatable on gpu hosts; PVCs Bound, the NFS StorageClass the default; PostgreSQL's
  StatefulSet ready on NFS; cert-manager Certificates Ready; every release deployed at the helm revision its stamp
  recorded; workloads ready; namespaces present; the ingress LoadBalancer address from MetalLB; IngressRoutes
  under the domain and answering over TLS 1.2+ (a network probe: only outside the sandbox, or through an injected
  resolver); Prometheus targets up (through the API server's service proxy); anonymous API requests refused.

Ids without an automated check are listed with the reason (``NOT_AUTOMATED``: a drill, a measurement, a person).
An id's status: fail when any check supporting it failed, pass when at least one passed and none failed, else
not-checkable-here with the reason. ``VerifyReport.exit_code`` is 1 when anything failed, else 0.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homelab import livecheck, redact, stamps
from homelab.paths import Layout
from homelab.project import Project

PASS, FAIL, NOT_CHECKABLE = "pass", "fail", "not-checkable-here"
LIVE_TIMEOUT = 900.0  # seconds for the whole testinfra run (the lab's four hosts over SSH)
PROBE_TIMEOUT = 8.0  # seconds for one network probe (TLS handshake + HTTP answer, anonymous API request)

# testinfra test (file::function in tests/live) -> the ids it supports
HOST_CHECKS: dict[str, tuple[str, ...]] = {
    "test_vm.py::test_os_release_matches_inventory": ("FR1", "FR2"),
    "test_vm.py::test_base_packages": ("FR47", "FR14"),
    "test_vm.py::test_unattended_upgrades_security_only_no_reboot": ("FR47", "NFR11"),
    "test_vm.py::test_no_proxy_line": ("FR103",),
    "test_vm.py::test_kubernetes_sysctls": ("FR1", "FR2"),
    "test_vm.py::test_firewall": (),
    "test_tailscale.py::test_tailscale_ipv4_in_tailnet": ("FR5", "FR100"),
    "test_tailscale.py::test_tailscale_daemon_or_standin": ("FR100", "NFR57"),
    "test_tailscale.py::test_auth_key_file_private": ("FR100",),
    "test_tailscale.py::test_tailscale_package_unless_standin": ("FR100",),
    "test_k3s.py::test_pinned_version": ("FR1", "FR2", "FR44"),
    "test_k3s.py::test_config_over_tailscale": ("FR71", "FR101", "FR102"),
    "test_k3s.py::test_token_file_private_and_not_in_units": ("FR2",),
    "test_k3s.py::test_server": ("FR1", "NFR10", "NFR12"),
    "test_k3s.py::test_manual_etcd_snapshot": ("FR45",),
    "test_k3s.py::test_agent": ("FR2", "FR100"),
    "test_nfs.py::test_nfs_client": ("FR14", "FR17"),
    "test_nfs.py::test_snapshot_mount": ("FR17", "FR45"),
    "test_gpu.py::test_gpu_config_files": ("FR39", "FR71", "FR74"),
    "test_gpu.py::test_nvidia_packages_and_persistenced": ("FR39", "NFR37"),
    "test_gaming.py::test_gpu_mode_wrapper_and_config": ("FR97", "FR98", "FR99"),
    "test_gaming.py::test_steam": ("FR95", "FR96"),
}


@dataclass(frozen=True)
class Check:
    """One automated check and the requirement ids it supports."""

    name: str
    ids: tuple[str, ...]
    status: str  # PASS, FAIL or NOT_CHECKABLE
    reason: str


@dataclass(frozen=True)
class Row:
    """One requirement id in the table."""

    id: str
    title: str
    status: str
    reason: str


@dataclass
class VerifyReport:
    """Every check that ran and the table built from them; ``lines`` is what the engine prints."""

    checks: list[Check] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when any check failed, else 0 (not-checkable is not a failure)."""
        return 1 if any(c.status == FAIL for c in self.checks) else 0

    def row(self, req_id: str) -> Row:
        return next(r for r in self.rows if r.id == req_id)

    def status(self, req_id: str) -> str:
        return self.row(req_id).status

    @property
    def lines(self) -> list[str]:
        counts = {s: sum(1 for r in self.rows if r.status == s) for s in (PASS, FAIL, NOT_CHECKABLE)}
        out = [f"{'id':<6} {'status':<18} reason"]
        out += [f"{r.id:<6} {r.status:<18} {_short(r.reason, 150)}" for r in self.rows]
        failed = [c for c in self.checks if c.status == FAIL]
        out += [f"failed: {c.name}: {_short(c.reason, 300)}" for c in failed]
        out.append(f"verify: {counts[PASS]} pass, {counts[FAIL]} fail, {counts[NOT_CHECKABLE]} not-checkable-here "
                   f"({len(self.checks)} check(s), {len(failed)} failed)")
        return [redact.redact(line) for line in out]


def _short(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# -- the report -----------------------------------------------------------------------------------------------

Resolver = Callable[[str], tuple[str, int]]


def verify_report(project: Project, *, hosts: bool = True, cluster: bool = True, live_dir: Path | None = None,
                  host_checks: Mapping[str, tuple[str, ...]] | None = None, resolver: Resolver | None = None,
                  tls_context: ssl.SSLContext | None = None) -> VerifyReport:
    """Run every check that applies to the selected environment and build the requirement table.

    ``resolver`` maps an IngressRoute host name to the (address, port) to probe; by default outside the sandbox
    every host resolves to the inventory's ingress IP on 443 (SNI carries the name), and in the sandbox the probe
    is not-checkable-here. ``tls_context`` replaces the system trust store (tests use a local CA).
    ``live_dir``/``host_checks`` replace tests/live and its id mapping (tests use a synthetic testinfra test).
    """
    assert project.inventory is not None, "verify needs a valid project (run doit check)"
    report = VerifyReport()
    if hosts:
        report.checks += host_checks_report(project, live_dir=live_dir, mapping=host_checks)
    if cluster:
        report.checks += cluster_checks(project, resolver=resolver, tls_context=tls_context)
    report.rows = table(report.checks)
    return report


def table(checks: list[Check]) -> list[Row]:
    """One row per requirement id of the spec, in the spec's order."""
    rows = []
    for req_id, title in REQUIREMENTS:
        mine = [c for c in checks if req_id in c.ids]
        failed = [c for c in mine if c.status == FAIL]
        passed = [c for c in mine if c.status == PASS]
        if failed:
            rows.append(Row(req_id, title, FAIL, "; ".join(f"{c.name}: {c.reason}" for c in failed)))
        elif passed:
            rows.append(Row(req_id, title, PASS, "; ".join(f"{c.name}: {c.reason}" for c in passed)))
        elif mine:
            rows.append(Row(req_id, title, NOT_CHECKABLE, "; ".join(f"{c.name}: {c.reason}" for c in mine)))
        else:
            rows.append(Row(req_id, title, NOT_CHECKABLE, NOT_AUTOMATED.get(req_id, DEFAULT_REASON)))
    return rows


# -- hosts: tests/live through pytest ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveOutcome:
    """One testinfra test case: ``key`` is ``file::function`` (parameters dropped), ``target`` the parameter."""

    key: str
    target: str
    outcome: str  # passed, failed, skipped
    message: str


def default_live_dir(project: Project) -> Path | None:
    """tests/live of the project's checkout, else of the checkout this engine runs from (test trees lack it)."""
    for root in (project.layout.root, Path(__file__).resolve().parents[2]):
        candidate = root / "tests" / "live"
        if (candidate / "conftest.py").is_file():
            return candidate
    return None


def live_env(layout: Layout) -> tuple[dict[str, str] | None, str]:
    """The environment for tests/live, or None and why the hosts cannot be reached from here.

    ``HOMELAB_LIVE=1``: running verify is the operator's explicit request to read the selected environment's
    hosts (tests/live skips everything without it). The sandbox's hosts are reached through its ssh config, and
    only while the sandbox is up; any other environment's through the inventory's addresses and ssh settings.
    """
    env = dict(os.environ, HOMELAB_ENV=layout.env, HOMELAB_LIVE="1")
    env.pop("HOMELAB_SSH_CONFIG", None)
    if layout.env == "sandbox":
        config = layout.build / "ssh" / "config"  # what homelab.sandbox writes on every `up`
        if not config.is_file():
            return None, f"the sandbox is not up (no {layout.rel(config)}; python -m homelab.sandbox up)"
        env["HOMELAB_SSH_CONFIG"] = str(config)
    return env, ""


def host_checks_report(project: Project, *, live_dir: Path | None = None,
                       mapping: Mapping[str, tuple[str, ...]] | None = None,
                       env: dict[str, str] | None = None) -> list[Check]:
    """Run tests/live against the environment's hosts; one Check per test function."""
    mapping = HOST_CHECKS if mapping is None else mapping
    where = live_dir or default_live_dir(project)
    all_ids = tuple(sorted({i for ids in mapping.values() for i in ids}))
    if where is None:
        return [Check("hosts", all_ids, NOT_CHECKABLE, "tests/live is not in this checkout")]
    if env is None:
        env, why = live_env(project.layout)
        if env is None:
            return [Check("hosts", all_ids, NOT_CHECKABLE, why)]
    try:
        outcomes = run_live_checks(where, env)
    except LiveRunError as exc:
        return [Check("hosts", all_ids, FAIL, str(exc))]
    return host_checks_from(outcomes, mapping)


class LiveRunError(Exception):
    """pytest could not run the live checks (it crashed, timed out or wrote no report); one line."""


def run_live_checks(live_dir: Path, env: dict[str, str], *, timeout: float = LIVE_TIMEOUT) -> list[LiveOutcome]:
    """``pytest <live_dir>`` in a subprocess with a JUnit XML report, parsed into outcomes.

    A subprocess, not pytest.main: tests/live reads HOMELAB_ENV at import and caches the inventory, and the
    engine's own process must not inherit pytest's plugins, warnings filters or captured output.
    """
    root = live_dir.parent.parent if live_dir.parent.name == "tests" else live_dir
    with tempfile.TemporaryDirectory(prefix="homelab-verify-") as tmp:
        xml_path = Path(tmp) / "live.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit2",
               f"--junitxml={xml_path}", str(live_dir)]
        run_env = dict(env)
        run_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
        try:
            proc = subprocess.run(cmd, cwd=root, env=run_env, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise LiveRunError(f"the live checks did not finish within {timeout:.0f}s") from None
        if not xml_path.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            raise LiveRunError(redact.redact(f"pytest wrote no report: {tail[0][:300]}"))
        return parse_junit(xml_path.read_text(encoding="utf-8"))


def parse_junit(text: str) -> list[LiveOutcome]:
    """Outcomes from pytest's JUnit XML (our own subprocess's output, so trusted input)."""
    out = []
    for case in ET.fromstring(text).iter("testcase"):
        module = (case.get("classname") or "").rsplit(".", 1)[-1]
        name = case.get("name") or ""
        function, _, param = name.partition("[")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", child.get("message") or (child.text or "").strip()
                break
            if child.tag == "skipped":
                outcome, message = "skipped", child.get("message") or ""
        out.append(LiveOutcome(f"{module}.py::{function}", param.rstrip("]"), outcome, _short(message, 200)))
    return out


def host_checks_from(outcomes: Iterable[LiveOutcome], mapping: Mapping[str, tuple[str, ...]]) -> list[Check]:
    """One Check per test function: fail if any host failed, pass if any passed, else not-checkable (skips)."""
    by_key: dict[str, list[LiveOutcome]] = {}
    for item in outcomes:
        by_key.setdefault(item.key, []).append(item)
    checks = []
    for key, items in by_key.items():
        ids = mapping.get(key, ())
        failed = [i for i in items if i.outcome == "failed"]
        passed = [i for i in items if i.outcome == "passed"]
        name = f"host {key}"
        if failed:
            where = ", ".join(i.target or "-" for i in failed)
            checks.append(Check(name, ids, FAIL, f"{where}: {failed[0].message}"))
        elif passed:
            checks.append(Check(name, ids, PASS, f"{len(passed)} host(s) passed"))
        else:
            reason = items[0].message.removeprefix("Skipped: ") if items else "not collected"
            checks.append(Check(name, ids, NOT_CHECKABLE, f"skipped: {reason}"))
    return checks


# -- cluster ---------------------------------------------------------------------------------------------------

CLUSTER_IDS = ("FR1", "FR2", "FR4", "FR5", "FR7", "FR8", "FR9", "FR10", "FR11", "FR14", "FR15", "FR16", "FR19",
               "FR20", "FR21", "FR25", "FR26", "FR27", "FR31", "FR32", "FR39", "FR71", "FR100", "FR102", "NFR7",
               "NFR12", "NFR18", "NFR36")


def cluster_checks(project: Project, *, resolver: Resolver | None = None,
                   tls_context: ssl.SSLContext | None = None) -> list[Check]:
    """Every cluster check; all not-checkable-here (with the reason) when there is no Kubernetes API."""
    from homelab import kube

    access = livecheck.cluster_access(project)
    if access.kubeconfig is None:
        return [Check("cluster", CLUSTER_IDS, NOT_CHECKABLE, access.reason)]
    try:
        dyn = kube.connect(access.kubeconfig)
    except kube.KubeError as exc:
        return [Check("cluster", CLUSTER_IDS, FAIL, str(exc))]
    cluster = _Cluster(project, dyn, access.kubeconfig)
    checks: list[Check] = []
    # (name, the ids its checks support, the step): a step that raises still fails its own ids
    steps: list[tuple[str, tuple[str, ...], Callable[[], list[Check]]]] = [
        ("nodes", ("FR1", "FR2", "FR4", "FR5", "FR39", "FR71", "FR100", "FR102", "NFR36"), cluster.nodes),
        ("storage", ("FR14", "FR15", "FR16"), cluster.storage),
        ("PostgreSQL", ("FR31", "FR32"), cluster.postgres),
        ("certificates", ("FR10", "NFR7"), cluster.certificates),
        ("releases", ("FR8",), cluster.releases),
        ("workloads", ("FR7",), cluster.workloads),
        ("namespaces", ("FR11",), cluster.namespaces),
        ("MetalLB", ("FR19",), cluster.load_balancer),
        ("IngressRoutes", ("FR20", "FR21"), cluster.ingress_routes),
        ("HTTPS through the ingress", ("FR9", "FR21", "NFR7"), lambda: cluster.ingress_tls(resolver, tls_context)),
        ("Prometheus", ("FR25", "FR26", "FR27", "NFR18"), cluster.prometheus),
        ("anonymous API access", ("NFR12",), cluster.anonymous_access),
    ]
    for name, ids, step in steps:
        try:
            checks += step()
        except Exception as exc:  # one failing read must not hide the other checks' results
            checks.append(Check(name, ids, FAIL, f"could not read the cluster: {type(exc).__name__}: "
                                                 f"{livecheck.describe(exc)}"))
    return checks


def _ready(obj: dict[str, Any]) -> tuple[bool, str]:
    """Ready condition of a Node or a cert-manager Certificate: (ready, reason when not)."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return True, ""
            return False, str(cond.get("reason") or cond.get("message") or "not Ready")
    return False, "no Ready condition"


def _taint_text(taint: Mapping[str, Any]) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key')}{value}:{taint.get('effect')}"


class _Cluster:
    """The cluster checks, sharing one client and a cache of listed kinds."""

    def __init__(self, project: Project, dyn: Any, kubeconfig: Path) -> None:
        assert project.inventory is not None
        self.project = project
        self.inventory = project.inventory
        self.dyn = dyn
        self.kubeconfig = kubeconfig
        self._lists: dict[tuple[str, str], list[dict[str, Any]] | None] = {}

    def items(self, api_version: str, kind: str) -> list[dict[str, Any]] | None:
        """Every object of a kind in every namespace; None when the cluster does not serve the kind."""
        if (api_version, kind) not in self._lists:
            from homelab import kube

            resource = livecheck.resource_for(self.dyn, api_version, kind)
            self._lists[(api_version, kind)] = None if resource is None else kube._items(resource.get())
        return self._lists[(api_version, kind)]

    def export(self, target: str) -> Any:
        from homelab.inputs import export_value

        try:
            return export_value(self.project, target)
        except (KeyError, StopIteration, ValueError):
            return None

    def raw_get(self, path: str) -> tuple[int, bytes]:
        """GET a raw API path with the client's credentials: (HTTP status, body).

        Not the generated ``connect_get_namespaced_service_proxy_with_path``: it percent-encodes the slashes of
        the proxied path, which the API server's proxy does not take for a path.
        """
        api = self.dyn.client
        method, url, headers, _, _ = api.param_serialize("GET", path, header_params={"Accept": "application/json"},
                                                         auth_settings=["BearerToken"])
        response = api.call_api(method, url, header_params=headers, _request_timeout=PROBE_TIMEOUT)
        response.read()
        return int(response.status), bytes(response.data or b"")

    # -- nodes ---------------------------------------------------------------------------------------------
    def nodes(self) -> list[Check]:
        nodes = {str(n["metadata"]["name"]): n for n in self.items("v1", "Node") or []}
        hosts = self.inventory.hosts
        problems: dict[str, list[str]] = {}
        for host in hosts:
            node = nodes.get(host.name)
            if node is None:
                problems[host.name] = ["no Node (not joined)"]
                continue
            found: list[str] = []
            ready, why = _ready(node)
            if not ready:
                found.append(f"NotReady ({why})")
            labels = (node.get("metadata") or {}).get("labels") or {}
            for key, value in (host.data.get("labels") or {}).items():
                if labels.get(key) != str(value):
                    found.append(f"label {key}={value} missing")
            taints = {_taint_text(t) for t in (node.get("spec") or {}).get("taints") or []}
            for taint in host.data.get("taints") or []:
                if taint not in taints:
                    found.append(f"taint {taint} missing")
            problems[host.name] = found
        not_ready = {h: p for h, p in problems.items() if any(x.startswith(("NotReady", "no Node")) for x in p)}
        checks = [_check("nodes Ready", ("FR4",), not_ready,
                         f"{len(hosts)}/{len(hosts)} inventory host(s) have a Ready Node")]
        server = self.inventory.server
        server_problems = list(problems.get(server.name, []))
        node = nodes.get(server.name)
        node_labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        if node is not None and "node-role.kubernetes.io/control-plane" not in node_labels:
            server_problems.append("no control-plane role label")
        checks.append(_check("control plane", ("FR1",), {server.name: server_problems} if server_problems else {},
                             f"{server.name} Ready with the control-plane role"))
        agents = [h for h in hosts if not h.is_server]
        checks.append(_check("workers joined", ("FR2",), {h.name: problems[h.name] for h in agents
                                                          if problems[h.name]},
                             f"{len(agents)} worker(s) Ready with the inventory's labels and taints"))
        gpus = self.inventory.hosts_with_role("gpu")
        if gpus:
            checks.append(_check("GPU worker joined", ("FR71", "NFR36"),
                                 {h.name: problems[h.name] for h in gpus if problems[h.name]},
                                 f"{', '.join(h.name for h in gpus)} Ready with its labels and taints (the "
                                 "2-minute join after boot is not timed here)"))
            no_gpu = {}
            for host in gpus:
                allocatable = ((nodes.get(host.name) or {}).get("status") or {}).get("allocatable") or {}
                count = livecheck._quantity(allocatable.get("nvidia.com/gpu", 0)) or 0
                if count < 1:
                    no_gpu[host.name] = ["allocatable nvidia.com/gpu is 0 or missing"]
            checks.append(_check("GPU allocatable", ("FR39",), no_gpu,
                                 "nvidia.com/gpu allocatable on every gpu host"))
        checks.append(self._tailscale(nodes))
        return checks

    def _tailscale(self, nodes: Mapping[str, dict[str, Any]]) -> Check:
        net = ipaddress.ip_network(str(self.inventory.data["network"]["tailscale"]["cidr"]))
        bad: dict[str, list[str]] = {}
        for host in self.inventory.hosts:
            node = nodes.get(host.name)
            if node is None:
                bad[host.name] = ["no Node"]
                continue
            external = [a.get("address", "") for a in (node.get("status") or {}).get("addresses") or []
                        if a.get("type") == "ExternalIP"]
            inside = [a for a in external if _in(a, net)]
            if not inside:
                bad[host.name] = [f"no ExternalIP in {net} (has {', '.join(external) or 'none'})"]
        return _check("nodes on Tailscale", ("FR5", "FR100", "FR102"), bad,
                      f"every Node advertises an ExternalIP in {net}")

    # -- storage -------------------------------------------------------------------------------------------
    def storage(self) -> list[Check]:
        claims = self.items("v1", "PersistentVolumeClaim") or []
        unbound = {f"{c['metadata'].get('namespace')}/{c['metadata']['name']}":
                   [str((c.get("status") or {}).get("phase") or "Pending")]
                   for c in claims if (c.get("status") or {}).get("phase") != "Bound"}
        checks = [_check("PVCs Bound", ("FR15",), unbound, f"{len(claims)} PVC(s) Bound")]
        wanted_class = str(self.export("nfs-provisioner.storageclass") or "nfs-client")
        provisioner = self.export("nfs-provisioner.provisioner")
        classes = {str(s["metadata"]["name"]): s for s in self.items("storage.k8s.io/v1", "StorageClass") or []}
        sc = classes.get(wanted_class)
        problems: list[str] = []
        if sc is None:
            problems.append(f"no StorageClass {wanted_class}")
        else:
            annotations = (sc.get("metadata") or {}).get("annotations") or {}
            if annotations.get("storageclass.kubernetes.io/is-default-class") != "true":
                problems.append(f"{wanted_class} is not the default StorageClass")
            others = [n for n, s in classes.items() if n != wanted_class and ((s.get("metadata") or {}).get(
                "annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
            if others:
                problems.append(f"also default: {', '.join(sorted(others))}")
            if provisioner and sc.get("provisioner") != provisioner:
                problems.append(f"provisioner {sc.get('provisioner')}, expected {provisioner}")
        checks.append(_check("default StorageClass", ("FR16",), {wanted_class: problems} if problems else {},
                             f"{wanted_class} is the only default, provisioner {provisioner}"))
        nfs_claims = [c for c in claims if (c.get("spec") or {}).get("storageClassName") == wanted_class]
        nfs_unbound = {k: v for k, v in unbound.items()
                       if any(f"{c['metadata'].get('namespace')}/{c['metadata']['name']}" == k for c in nfs_claims)}
        if not nfs_claims:
            checks.append(Check("NFS volumes", ("FR14",), FAIL, f"no PVC uses StorageClass {wanted_class}"))
        else:
            checks.append(_check("NFS volumes", ("FR14",), nfs_unbound,
                                 f"{len(nfs_claims)} PVC(s) on {wanted_class} Bound"))
        return checks

    def postgres(self) -> list[Check]:
        host = str(self.export("postgres.host") or "postgresql.data.svc.cluster.local")
        name, _, rest = host.partition(".")
        namespace = rest.partition(".")[0] or "data"
        sets = [s for s in self.items("apps/v1", "StatefulSet") or []
                if s["metadata"]["name"] == name and s["metadata"].get("namespace") == namespace]
        if not sets:
            missing = f"no StatefulSet {namespace}/{name}"
            return [Check("PostgreSQL StatefulSet", ("FR31",), FAIL, missing),
                    Check("PostgreSQL on NFS", ("FR32",), FAIL, missing)]
        from homelab import kube

        ready, detail = kube._readiness("StatefulSet", sets[0])
        checks = [Check("PostgreSQL StatefulSet", ("FR31",), PASS if ready else FAIL,
                        f"StatefulSet {namespace}/{name} {detail}")]
        wanted_class = str(self.export("nfs-provisioner.storageclass") or "nfs-client")
        templates = [str((t.get("metadata") or {}).get("name", "")) for t in
                     (sets[0].get("spec") or {}).get("volumeClaimTemplates") or []]
        claims = [c for c in self.items("v1", "PersistentVolumeClaim") or []
                  if c["metadata"].get("namespace") == namespace
                  and any(c["metadata"]["name"].startswith(f"{t}-{name}-") for t in templates)]
        bad = {c["metadata"]["name"]: [f"{(c.get('status') or {}).get('phase')}, class "
                                       f"{(c.get('spec') or {}).get('storageClassName')}"]
               for c in claims if (c.get("status") or {}).get("phase") != "Bound"
               or (c.get("spec") or {}).get("storageClassName") != wanted_class}
        if not claims:
            checks.append(Check("PostgreSQL on NFS", ("FR32",), FAIL, f"no PVC of StatefulSet {namespace}/{name}"))
        else:
            checks.append(_check("PostgreSQL on NFS", ("FR32",), bad,
                                 f"{len(claims)} data PVC(s) Bound on {wanted_class}"))
        return checks

    # -- certificates, releases, workloads, namespaces ---------------------------------------------------------
    def certificates(self) -> list[Check]:
        certs = self.items("cert-manager.io/v1", "Certificate")
        if certs is None:
            return [Check("Certificates Ready", ("FR10", "NFR7"), FAIL, "the cluster serves no cert-manager.io/v1 "
                                                                      "Certificate (cert-manager not installed)")]
        bad = {f"{c['metadata'].get('namespace')}/{c['metadata']['name']}": [_ready(c)[1]]
               for c in certs if not _ready(c)[0]}
        if not certs:
            return [Check("Certificates Ready", ("FR10", "NFR7"), FAIL, "no Certificate exists")]
        return [_check("Certificates Ready", ("FR10", "NFR7"), bad, f"{len(certs)} Certificate(s) Ready")]

    def releases(self) -> list[Check]:
        from homelab import helm

        bad: dict[str, list[str]] = {}
        charted = 0
        for release in sorted(self.project.releases, key=lambda r: r.name):
            stamp = stamps.read(self.project.layout.stamps, release.name)
            if not stamp or not stamp.get("applied"):
                bad[release.name] = ["never applied to this cluster"]
                continue
            if release.chart is None:
                continue
            charted += 1
            recorded = (stamp.get("result") or {}).get("helm_revision")
            rows = helm.history(release.name, release.namespace, self.kubeconfig)
            if not rows:
                bad[release.name] = [f"no helm release in {release.namespace}"]
                continue
            revision, status = int(rows[-1].get("revision", 0)), str(rows[-1].get("status", ""))
            found = []
            if recorded is not None and revision != int(recorded):
                found.append(f"revision {revision}, recorded {recorded}")
            if status != "deployed":
                found.append(f"status {status}")
            if found:
                bad[release.name] = found
        return [_check("releases deployed", ("FR8",), bad,
                       f"{len(self.project.releases)} release(s) applied, {charted} helm release(s) deployed at "
                       "their recorded revision")]

    def workloads(self) -> list[Check]:
        from homelab import kube

        namespaces = set(self.inventory.namespaces) | {r.namespace for r in self.project.releases}
        bad: dict[str, list[str]] = {}
        total = 0
        for kind in ("Deployment", "StatefulSet", "DaemonSet"):
            for item in self.items("apps/v1", kind) or []:
                meta = item.get("metadata") or {}
                if meta.get("namespace") not in namespaces:
                    continue
                total += 1
                ready, detail = kube._readiness(kind, item)
                if not ready:
                    bad[f"{kind} {meta.get('namespace')}/{meta.get('name')}"] = [detail]
        return [_check("workloads ready", ("FR7",), bad, f"{total} workload(s) ready")]

    def namespaces(self) -> list[Check]:
        present = {str(n["metadata"]["name"]) for n in self.items("v1", "Namespace") or []}
        wanted = set(self.inventory.namespaces) | {r.namespace for r in self.project.releases}
        missing = {n: ["missing"] for n in sorted(wanted - present)}
        return [_check("namespaces", ("FR11",), missing, f"{len(wanted)} namespace(s) present")]

    # -- networking --------------------------------------------------------------------------------------------
    def load_balancer(self) -> list[Check]:
        net = self.inventory.data["network"]
        pool = net.get("metallb_pool") or {}
        ingress_ip = str(net.get("ingress_ip", ""))
        services = [s for s in self.items("v1", "Service") or [] if (s.get("spec") or {}).get("type") == "LoadBalancer"]
        addresses = {f"{s['metadata'].get('namespace')}/{s['metadata']['name']}":
                     [i.get("ip", "") for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
                     for s in services}
        if not services:
            return [Check("MetalLB LoadBalancer", ("FR19",), FAIL, "no Service of type LoadBalancer")]
        bad: dict[str, list[str]] = {}
        for name, ips in addresses.items():
            if not ips:
                bad[name] = ["no address assigned (pending)"]
            elif pool and not all(_in_range(ip, str(pool.get("start")), str(pool.get("end"))) for ip in ips):
                bad[name] = [f"{', '.join(ips)} outside the MetalLB pool"]
        if ingress_ip and not any(ingress_ip in ips for ips in addresses.values()):
            bad["ingress"] = [f"no LoadBalancer Service holds the ingress IP {ingress_ip}"]
        return [_check("MetalLB LoadBalancer", ("FR19",), bad,
                       f"{len(services)} LoadBalancer Service(s) with pool addresses, ingress on {ingress_ip}")]

    def route_hosts(self) -> list[tuple[str, str, bool]] | None:
        """(IngressRoute ns/name, host, has tls) for every Host(`...`) match; None when the CRD is not served."""
        routes = self.items("traefik.io/v1alpha1", "IngressRoute")
        if routes is None:
            return None
        out = []
        for route in routes:
            spec = route.get("spec") or {}
            ref = f"{route['metadata'].get('namespace')}/{route['metadata']['name']}"
            for rule in spec.get("routes") or []:
                for host in re.findall(r"Host\(\s*`([^`]+)`", str(rule.get("match", ""))):
                    out.append((ref, host, bool(spec.get("tls"))))
        return out

    def ingress_routes(self) -> list[Check]:
        hosts = self.route_hosts()
        if hosts is None:
            return [Check("IngressRoutes", ("FR20", "FR21"), FAIL, "the cluster serves no traefik.io/v1alpha1 "
                                                                  "IngressRoute")]
        if not hosts:
            return [Check("IngressRoutes", ("FR20", "FR21"), FAIL, "no IngressRoute with a Host() rule")]
        domain = str(self.inventory.data["domain"])
        bad: dict[str, list[str]] = {}
        for ref, host, tls in hosts:
            if not (host == domain or host.endswith("." + domain)):
                bad.setdefault(ref, []).append(f"{host} is not under {domain}")
            if not tls:
                bad.setdefault(ref, []).append("no tls")
        return [_check("IngressRoutes", ("FR20", "FR21"), bad,
                       f"{len(hosts)} route host(s) under *.{domain} with TLS")]

    def ingress_tls(self, resolver: Resolver | None, context: ssl.SSLContext | None) -> list[Check]:
        ids = ("FR9", "FR21", "NFR7")
        if resolver is None:
            if self.project.layout.env == "sandbox":
                return [Check("HTTPS through the ingress", ids, NOT_CHECKABLE,
                              "the sandbox's ingress IP answers nothing (no real Traefik); probed in the lab")]
            ingress_ip = str(self.inventory.data["network"]["ingress_ip"])

            def resolver(host: str) -> tuple[str, int]:
                return ingress_ip, 443

        hosts = self.route_hosts() or []
        if not hosts:
            return [Check("HTTPS through the ingress", ids, FAIL, "no IngressRoute host to probe")]
        bad: dict[str, list[str]] = {}
        versions: set[str] = set()
        for _ref, host, _tls in sorted(set(hosts)):
            address, port = resolver(host)
            ok, detail = probe_https(host, address, port, context)
            if ok:
                versions.add(detail.split(",")[0])
            else:
                bad[host] = [detail]
        return [_check("HTTPS through the ingress", ids, bad,
                       f"{len({h for _, h, _ in hosts})} host(s) answer over {', '.join(sorted(versions))} with a "
                       "valid certificate")]

    # -- monitoring and API access -----------------------------------------------------------------------------
    def prometheus(self) -> list[Check]:
        ids_all = ("FR25", "FR26", "FR27", "NFR18")
        url = str(self.export("monitoring.prometheus_url") or "")
        found = re.match(r"^https?://([^.:/]+)\.([^.:/]+)[^:/]*(?::(\d+))?", url)
        if not found:
            return [Check("Prometheus targets", ids_all, NOT_CHECKABLE, "the monitoring release exports no "
                                                                       "prometheus_url")]
        service, namespace, port = found.group(1), found.group(2), found.group(3) or "9090"
        services = {(s["metadata"].get("namespace"), s["metadata"]["name"]) for s in self.items("v1", "Service") or []}
        if (namespace, service) not in services:
            return [Check("Prometheus targets", ids_all, FAIL, f"no Service {namespace}/{service}")]
        path = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/api/v1/targets"
        try:
            code, body = self.raw_get(path)
        except Exception as exc:
            return [Check("Prometheus targets", ids_all, FAIL, "Prometheus did not answer through the API "
                          f"server's proxy: {livecheck.describe(exc)[:200]}")]
        if code in (404, 405, 501):
            return [Check("Prometheus targets", ids_all, NOT_CHECKABLE, "the API server does not proxy to "
                          f"Service {namespace}/{service} (HTTP {code})")]
        if code >= 400:
            return [Check("Prometheus targets", ids_all, FAIL, f"Prometheus answered HTTP {code} through the API "
                          "server's proxy")]
        return prometheus_checks(body, len(self.inventory.hosts))

    def anonymous_access(self) -> list[Check]:
        ok, detail = probe_anonymous(self.kubeconfig)
        return [Check("anonymous API access refused", ("NFR12",), PASS if ok else FAIL, detail)]


def prometheus_checks(body: bytes | str, node_count: int) -> list[Check]:
    """FR25-27/NFR18 from Prometheus' /api/v1/targets answer."""
    import json

    try:
        data = json.loads(body)
        targets = data["data"]["activeTargets"]
    except (ValueError, KeyError, TypeError):
        return [Check("Prometheus targets", ("FR25", "FR26", "FR27", "NFR18"), FAIL,
                      "the answer of /api/v1/targets is not Prometheus' JSON")]
    checks = [Check("Prometheus API", ("FR25",), PASS, f"answered with {len(targets)} active target(s)")]

    def job(t: Mapping[str, Any]) -> str:
        return str((t.get("labels") or {}).get("job") or t.get("scrapePool") or "?")

    down = [t for t in targets if t.get("health") != "up"]
    node_exporters = [t for t in targets if "node-exporter" in job(t)]
    ne_down = [t for t in node_exporters if t.get("health") != "up"]
    if len(node_exporters) < node_count or ne_down:
        checks.append(Check("node-exporter targets", ("FR26",), FAIL,
                            f"{len(node_exporters) - len(ne_down)}/{node_count} node(s) scraped up"))
    else:
        checks.append(Check("node-exporter targets", ("FR26",), PASS, f"{len(node_exporters)} node(s) scraped up"))
    ksm = [t for t in targets if "kube-state-metrics" in job(t)]
    ksm_up = [t for t in ksm if t.get("health") == "up"]
    checks.append(Check("kube-state-metrics target", ("FR27",), PASS if ksm_up else FAIL,
                        "up" if ksm_up else ("down" if ksm else "no kube-state-metrics target")))
    if down:
        jobs = sorted({f"{job(t)} ({t.get('lastError') or t.get('health')})" for t in down})
        checks.append(Check("every target up", ("NFR18",), FAIL, f"{len(down)} down: {', '.join(jobs)}"))
    else:
        checks.append(Check("every target up", ("NFR18",), PASS, f"{len(targets)} target(s) up"))
    return checks


def _check(name: str, ids: tuple[str, ...], problems: Mapping[str, list[str]], ok_reason: str) -> Check:
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        return Check(name, ids, FAIL, "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(bad.items())))
    return Check(name, ids, PASS, ok_reason)


def _in(address: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address) in net
    except ValueError:
        return False


def _in_range(address: str, start: str, end: str) -> bool:
    try:
        low, value, high = (ipaddress.ip_address(a) for a in (start, address, end))
        return int(low) <= int(value) <= int(high) and low.version == value.version == high.version
    except (ValueError, TypeError):
        return False


# -- network probes ----------------------------------------------------------------------------------------------

def probe_https(host: str, address: str, port: int, context: ssl.SSLContext | None = None,
                timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """GET https://<host>/ sent to address:port with SNI ``host``: (ok, "TLSv1.3, HTTP 200" or why not).

    The certificate must verify against ``context`` (default: the system trust store) for ``host``, the
    protocol must be TLS 1.2 or newer, and any HTTP answer below 500 counts (a login page or 401 answers).
    """
    ctx = context or ssl.create_default_context()
    ctx.minimum_version = max(ctx.minimum_version, ssl.TLSVersion.TLSv1_2)
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            version = tls.version() or "?"
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: homelab-verify\r\n\r\n"
                        .encode())
            head = tls.recv(4096).decode("latin-1")
    except ssl.SSLCertVerificationError as exc:
        return False, f"certificate not valid: {exc.verify_message or exc.reason}"
    except ssl.SSLError as exc:
        return False, f"TLS failed: {exc.reason or exc}"
    except OSError as exc:
        return False, f"no answer from {address}:{port}: {exc.strerror or exc}"
    status = re.match(r"HTTP/\d(?:\.\d)? (\d{3})", head)
    if not status:
        return False, f"{version}, no HTTP answer"
    code = int(status.group(1))
    return code < 500, f"{version}, HTTP {code}"


def probe_anonymous(kubeconfig: Path, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """An API request without credentials must be refused (401/403): (refused, detail)."""
    import base64
    import urllib.error
    import urllib.request

    import yaml

    config = yaml.safe_load(Path(kubeconfig).read_text(encoding="utf-8")) or {}
    context_name = config.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    cluster_name = contexts.get(context_name, {}).get("cluster")
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or []}
    cluster = clusters.get(cluster_name) or next(iter(clusters.values()), {})
    server = str(cluster.get("server", "")).rstrip("/")
    if not server:
        return False, "the kubeconfig names no API server"
    ctx: ssl.SSLContext | None = None
    if server.startswith("https://"):
        # credentials are never sent, so trusting the kubeconfig's CA (or skipping it as it says) is safe here
        if cluster.get("insecure-skip-tls-verify"):
            ctx = ssl._create_unverified_context()
        elif cluster.get("certificate-authority-data"):
            ctx = ssl.create_default_context(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif cluster.get("certificate-authority"):
            ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
    request = urllib.request.Request(f"{server}/api/v1/namespaces", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ctx) as response:
            code = int(response.status)
    except urllib.error.HTTPError as exc:
        code = int(exc.code)
    except (OSError, ValueError) as exc:
        return False, f"the API server did not answer an anonymous request: {exc}"
    if code in (401, 403):
        return True, f"an anonymous request is refused (HTTP {code})"
    return False, f"an anonymous request is answered (HTTP {code}): anyone reaching the API can read it"


# -- the requirements without an automated check --------------------------------------------------------------------

DEFAULT_REASON = "no automated check in doit verify"
_REASONS = {
    "needs a human with a phone (the notification must arrive on it)": "FR29 NFR5",
    "a drill, not a state: destructive or timed operations run by their own doit tasks and runbooks":
        "FR3 FR33 FR34 FR46 FR48 NFR2 NFR3 NFR6 NFR20 NFR21",
    "an operator action, not a state (kubectl scale / logs / events)": "FR12 FR13",
    "needs another Tailscale device, or a device outside the tailnet": "FR6 NFR8",
    "needs a probe from the public internet": "NFR9",
    "lives outside the cluster (Synology, NextDNS)": "FR18 FR22 NFR4",
    "needs a browser and a person (UI)": "FR23 FR24 FR30 FR58 FR85 NFR14",
    "needs a threshold breach to fire an alert end to end (a drill)": "FR28",
    "needs a measurement over time (monthly uptime, 7 days of logs, boot timings)": "NFR1 NFR19 NFR55",
    "needs a latency or throughput measurement on the lab": "NFR13 NFR15 NFR16 NFR17 NFR30 NFR31",
    "needs a model loaded on the real GPU worker": "FR37 FR72 FR73 FR94 NFR34 NFR35 NFR38 NFR42 NFR43 NFR50 NFR54",
    "needs the eGPU physically unplugged and plugged in": "FR74",
    "needs the real GPU worker with Steam and a game (timed)": "NFR51 NFR52 NFR53",
    "covered by FR7 (every workload ready) and FR8 (every release deployed); no separate check":
        "FR35 FR36 FR38 FR40 FR55 FR56 FR57 FR59 FR66 FR81 FR82 FR84 FR86 FR87 FR93",
    "needs documents scanned, mailed or uploaded, and read by a person": "FR64 FR65 FR75 FR76 FR77 FR78 FR83 FR88 "
                                                                         "FR89 FR90 FR91 FR92 NFR28 NFR29",
    "a security setting of the rendered chart, checked offline by the unit tests (tests/unit)": "FR79 FR80 NFR39 "
                                                                                               "NFR40 NFR41",
    "needs a developer's workstation and editor (local dev server, VS Code, Claude Code)": "FR41 FR42 FR43 FR60 "
                                                                                          "FR61 FR62",
    "a dev-container setting of the rendered chart, checked offline by the unit tests (tests/unit)":
        "FR63 FR67 FR68 FR69 FR70 NFR32 NFR33",
    "judged by a reader: documentation and the public repository (docs are tested by tests/unit)":
        "FR49 FR50 FR51 FR52 FR53 FR54 NFR22 NFR23 NFR24 NFR25 NFR26 NFR27",
    "needs pods on both LAN subnets of the lab and traffic between them": "NFR56",
}
NOT_AUTOMATED: dict[str, str] = {req: reason for reason, ids in _REASONS.items() for req in ids.split()}

# (id, the spec's wording), in the spec's numeric order: every requirement id of the spec, so each gets a row
REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("FR1", "Operator can deploy a K3s control plane on a dedicated VM"),
    ("FR2", "Operator can add worker nodes to the cluster"),
    ("FR3", "Operator can remove worker nodes from the cluster without data loss"),
    ("FR4", "Operator can view cluster node status and health"),
    ("FR5", "Operator can access the cluster remotely via Tailscale"),
    ("FR6", "Operator can run kubectl commands from any Tailscale-connected device"),
    ("FR7", "Operator can deploy containerized applications to the cluster"),
    ("FR8", "Operator can deploy applications using Helm charts"),
    ("FR9", "Operator can expose applications via ingress with HTTPS"),
    ("FR10", "Operator can configure automatic TLS certificate provisioning"),
    ("FR11", "Operator can assign workloads to specific namespaces"),
    ("FR12", "Operator can scale deployments up or down"),
    ("FR13", "Operator can view pod logs and events"),
    ("FR14", "Operator can provision persistent volumes from NFS storage"),
    ("FR15", "Operator can create PersistentVolumeClaims for applications"),
    ("FR16", "System provisions storage dynamically via StorageClass"),
    ("FR17", "Operator can verify storage mount health"),
    ("FR18", "Operator can backup persistent data to Synology snapshots"),
    ("FR19", "Operator can expose services via LoadBalancer using MetalLB"),
    ("FR20", "Operator can configure ingress routes via Traefik"),
    ("FR21", "Operator can access services via *.home.jetzinger.com domain"),
    ("FR22", "System resolves internal DNS via NextDNS rewrites"),
    ("FR23", "Operator can view Traefik dashboard for ingress status"),
    ("FR24", "Operator can view cluster metrics in Grafana dashboards"),
    ("FR25", "Operator can query Prometheus for historical metrics"),
    ("FR26", "System collects metrics from all nodes via Node Exporter"),
    ("FR27", "System collects Kubernetes object metrics via kube-state-metrics"),
    ("FR28", "System sends alerts via Alertmanager when thresholds exceeded"),
    ("FR29", "Operator can receive mobile notifications for P1 alerts"),
    ("FR30", "Operator can view alert history and status"),
    ("FR31", "Operator can deploy PostgreSQL as a StatefulSet"),
    ("FR32", "PostgreSQL persists data to NFS storage"),
    ("FR33", "Operator can backup PostgreSQL to NFS"),
    ("FR34", "Operator can restore PostgreSQL from backup"),
    ("FR35", "Applications can connect to PostgreSQL within cluster"),
    ("FR36", "Operator can deploy Ollama for LLM inference"),
    ("FR37", "Applications can query Ollama API for completions"),
    ("FR38", "Operator can deploy vLLM for production inference"),
    ("FR39", "GPU workloads can request GPU resources via NVIDIA Operator"),
    ("FR40", "Operator can deploy n8n for workflow automation"),
    ("FR41", "Operator can configure Nginx to proxy to local dev servers"),
    ("FR42", "Developer can access local dev servers via cluster ingress"),
    ("FR43", "Operator can add/remove proxy targets without cluster restart"),
    ("FR44", "Operator can upgrade K3s version on nodes"),
    ("FR45", "Operator can backup cluster state via Velero"),
    ("FR46", "Operator can restore cluster from Velero backup"),
    ("FR47", "System applies security updates to node OS automatically"),
    ("FR48", "Operator can view upgrade history and rollback if needed"),
    ("FR49", "Audience can view public GitHub repository"),
    ("FR50", "Audience can read architecture decision records (ADRs)"),
    ("FR51", "Audience can view Grafana dashboard screenshots"),
    ("FR52", "Audience can read technical blog posts about the build"),
    ("FR53", "Operator can document decisions as ADRs in repository"),
    ("FR54", "Operator can publish blog posts to dev.to or similar platform"),
    ("FR55", "Operator can deploy Paperless-ngx with Redis backend"),
    ("FR56", "Paperless-ngx persists documents to NFS storage"),
    ("FR57", "User can access Paperless-ngx via ingress with HTTPS"),
    ("FR58", "User can upload, tag, and search scanned documents"),
    ("FR59", "Nginx proxy routes to dev containers in `dev` namespace"),
    ("FR60", "Operator can provision dev containers with git worktree support"),
    ("FR61", "Developer can connect VS Code to dev container via Nginx proxy"),
    ("FR62", "Developer can run Claude Code inside dev containers"),
    ("FR63", "Dev containers use local storage for workspace data"),
    ("FR64", "Paperless-ngx performs OCR on uploaded documents with German and English language support"),
    ("FR65", "System handles thousands of documents with ongoing scanning and manual upload workflow"),
    ("FR66", "Paperless-ngx uses PostgreSQL backend for metadata storage (deferred to future epic)"),
    ("FR67", "Dev containers use single base image with Node.js, Python, Claude Code CLI, git, kubectl, helm"),
    ("FR68", "Each dev container allocated 2 CPU cores and 4GB RAM"),
    ("FR69", "Dev containers mount persistent 10GB volumes for workspace data"),
    ("FR70", "Dev containers isolated via NetworkPolicy (accessible only via nginx proxy)"),
    ("FR71", "GPU worker (Intel NUC + RTX 3060 eGPU) joins cluster via Tailscale overlay network"),
    ("FR72", "vLLM serves DeepSeek-Coder 6.7B, Mistral 7B, and Llama 3.1 8B models simultaneously"),
    ("FR73", "vLLM workloads gracefully degrade to Ollama CPU when GPU worker unavailable"),
    ("FR74", "Operator can hot-plug GPU worker (add/remove on demand without cluster disruption)"),
    ("FR75", "Single-user operation with folder-based organization"),
    ("FR76", "Duplicate document detection on import"),
    ("FR77", "NFS mount for consume folders from workstation"),
    ("FR78", "Auto-import from consume folders within 30 seconds"),
    ("FR79", "CSRF protection for web interface"),
    ("FR80", "CORS restricted to authorized origins"),
    ("FR81", "Apache Tika for Office document text extraction"),
    ("FR82", "Gotenberg for Office-to-PDF conversion"),
    ("FR83", "Direct import of Word, Excel, PowerPoint, LibreOffice formats"),
    ("FR84", "Stirling-PDF for PDF manipulation"),
    ("FR85", "Split, merge, rotate, compress PDFs via web UI"),
    ("FR86", "Stirling-PDF ingress with HTTPS"),
    ("FR87", "Paperless-AI connects to GPU Ollama (Intel NUC + RTX 3060)"),
    ("FR88", "LLM-based auto-tagging via GPU-accelerated inference"),
    ("FR89", "Auto-populate correspondents and document types"),
    ("FR90", "Monitor private email inbox via IMAP"),
    ("FR91", "Monitor Gmail inbox via IMAP"),
    ("FR92", "Auto-import email attachments (PDF, Office docs)"),
    ("FR93", "Email bridge container for IMAP access"),
    ("FR94", "vLLM gracefully degrades when GPU is unavailable due to host workloads (Steam gaming)"),
    ("FR95", "Intel NUC runs Steam on host Ubuntu OS (not containerized)"),
    ("FR96", "Steam uses Proton for Windows game compatibility"),
    ("FR97", "Operator can switch between Gaming Mode and ML Mode via script"),
    ("FR98", "Gaming Mode scales vLLM pods to 0 and enables Ollama CPU fallback"),
    ("FR99", "ML Mode restores vLLM pods when Steam/gaming exits"),
    ("FR100", "All K3s nodes (master, workers, GPU worker) run Tailscale for full mesh connectivity"),
    ("FR101", "K3s configured with `--flannel-iface tailscale0` to route pod network over Tailscale"),
    ("FR102", "K3s nodes advertise Tailscale IPs via `--node-external-ip` for cross-subnet communication"),
    ("FR103", "NO_PROXY environment includes Tailscale CGNAT range (100.64.0.0/10) for kubectl logs"),
    ("NFR1", "Cluster achieves 95%+ uptime measured monthly"),
    ("NFR2", "Control plane recovers from VM restart within 5 minutes"),
    ("NFR3", "Worker node failure does not cause service outage (pods reschedule)"),
    ("NFR4", "NFS storage remains accessible during Synology firmware updates"),
    ("NFR5", "Alertmanager sends P1 alerts within 1 minute of threshold breach"),
    ("NFR6", "Cluster state can be restored from Velero backup within 30 minutes"),
    ("NFR7", "All ingress traffic uses TLS 1.2+ with valid certificates"),
    ("NFR8", "Cluster API access requires Tailscale VPN connection"),
    ("NFR9", "No services exposed to public internet without ingress authentication"),
    ("NFR10", "Kubernetes secrets encrypted at rest (K3s default)"),
    ("NFR11", "Node OS security updates applied within 7 days of release"),
    ("NFR12", "kubectl access requires valid kubeconfig (no anonymous access)"),
    ("NFR13", "Ollama API responds within 30 seconds for typical prompts"),
    ("NFR14", "Grafana dashboards load within 5 seconds"),
    ("NFR15", "Pod scheduling completes within 30 seconds of deployment"),
    ("NFR16", "NFS-backed PVCs mount within 10 seconds"),
    ("NFR17", "Traefik routes requests with <100ms added latency"),
    ("NFR18", "All cluster components emit Prometheus metrics"),
    ("NFR19", "Pod logs retained for 7 days minimum"),
    ("NFR20", "K3s upgrades complete with zero data loss"),
    ("NFR21", "New services deployable without cluster restart"),
    ("NFR22", "Runbooks exist for all P1 alert scenarios"),
    ("NFR23", "Single operator can manage entire cluster (no team required)"),
    ("NFR24", "All architecture decisions documented as ADRs"),
    ("NFR25", "README provides working cluster setup in <2 hours"),
    ("NFR26", "All deployed services have documented purpose and configuration"),
    ("NFR27", "Repository navigable by external reviewer (hiring manager)"),
    ("NFR28", "Paperless-ngx OCR processes German and English text with 95%+ accuracy"),
    ("NFR29", "Document library scales to 5,000+ documents without performance degradation"),
    ("NFR30", "Document search returns results within 3 seconds for full-text queries"),
    ("NFR31", "Dev container provisioning completes within 90 seconds (image pull + volume mount)"),
    ("NFR32", "Persistent volumes retain workspace data across container restarts"),
    ("NFR33", "Dev containers isolated via NetworkPolicy (no cross-container communication)"),
    ("NFR34", "vLLM achieves 50+ tokens/second for Mistral 7B and Llama 3.1 8B on RTX 3060"),
    ("NFR35", "vLLM handles 2-3 concurrent inference requests without significant performance degradation"),
    ("NFR36", "GPU worker joins cluster and becomes Ready within 2 minutes of boot via Tailscale"),
    ("NFR37", "NVIDIA GPU Operator installs and configures GPU drivers automatically (no manual setup)"),
    ("NFR38", "vLLM serves multiple models simultaneously (DeepSeek-Coder 6.7B, Mistral 7B, Llama 3.1 8B)"),
    ("NFR39", "NFS polling mode (inotify incompatible)"),
    ("NFR40", "10-second polling interval"),
    ("NFR41", "2 parallel OCR workers"),
    ("NFR42", "GPU inference throughput 50+ tokens/sec"),
    ("NFR43", "AI classification within 10 seconds per document"),
    ("NFR50", "vLLM detects GPU unavailability (host workload) within 10 seconds"),
    ("NFR51", "Gaming Mode activation completes within 30 seconds (pod scale-down + VRAM release)"),
    ("NFR52", "ML Mode restoration completes within 2 minutes (pod scale-up + model load)"),
    ("NFR53", "Steam games achieve 60+ FPS at 1080p with exclusive GPU access"),
    ("NFR54", "Graceful degradation to Ollama CPU maintains <5 second inference latency"),
    ("NFR55", "Tailscale mesh establishes full connectivity between all K3s nodes within 60 seconds of node boot"),
    ("NFR56", "Pod-to-pod communication works across subnets (192.168.2.x ↔ 192.168.0.x) via Tailscale overlay"),
    ("NFR57", "MTU configured at 1280 bytes to prevent VXLAN fragmentation over Tailscale tunnel"),
)
