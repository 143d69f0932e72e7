"""Helpers (no tests) for applying releases against the FAKE Kubernetes API server.

Reusable by engine-level tests (import the fixture and helpers from here):

- ``cluster`` fixture: a started fake API, its kubeconfig, ``HOMELAB_KUBECONFIG``/``HOMELAB_HELM``/private helm
  homes set in this process, and ``cluster.env`` for ``tree.doit(...)`` subprocesses (``tree.doit(**cluster.env)``).
- ``HelmRecorder``: a wrapper around the real helm that logs every argv and the mode of the ``-f`` values file
  (``HOMELAB_HELM`` points at it), so a test can count helm commands (``recorder.count("upgrade")``) and check
  that no secret value is ever on a command line.
- ``build_standin``: a stand-in for a remote chart made offline (``helm create`` + the test overlay in
  tests/fixtures/charts + optional CRDs and an admission webhook), packaged at the pinned name and version.
- ``stage_standins``: stand-ins for every remote-chart release of a project, put in the chart cache and locked,
  with the CRDs each platform release provides (from schemas/crds/index.json).
- ``serve_k3s_builtins``: what k3s serves before any release runs (Traefik's and helm-controller's CRDs) plus
  the admission webhook configuration kinds, which the fake does not serve as built-ins.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakeapi.server import FakeApiServer
from tests.fakes.fake_ollama import FakeOllama
from tests.helpers import FIXTURES, REPO

HELM = str(REPO / ".venv" / "bin" / "helm")
OVERLAY = FIXTURES / "charts" / "overlay"

# which release installs the CRDs of a group (the charts ship them); the rest of schemas/crds comes with k3s
CRD_PROVIDERS = {"metallb.io": "metallb", "cert-manager.io": "cert-manager", "monitoring.coreos.com": "monitoring"}
K3S_GROUPS = ("traefik.io", "helm.cattle.io")
# releases whose real chart serves a validating webhook for the CRD group it installs
WEBHOOK_PROVIDERS = {"metallb": "metallb.io", "cert-manager": "cert-manager.io"}


# -- CRDs ----------------------------------------------------------------------------------------------

def crd_object(group: str, version: str, kind: str, plural: str, scope: str = "Namespaced") -> dict[str, Any]:
    """A CustomResourceDefinition that accepts any fields (the fake does not validate them anyway)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [{"name": version, "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                                         "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }


def schema_crds(root: Path = REPO) -> dict[str, list[dict[str, Any]]]:
    """CRD objects for every kind in schemas/crds/index.json, by API group (plural from the file name)."""
    index = json.loads((root / "schemas" / "crds" / "index.json").read_text())
    out: dict[str, list[dict[str, Any]]] = {}
    for gvk, filename in sorted(index.items()):
        group_version, _, kind = gvk.rpartition("/")
        group, _, version = group_version.rpartition("/")
        plural = Path(filename).stem.split("_", 1)[1]
        scope = "Cluster" if kind.startswith("Cluster") else "Namespaced"
        out.setdefault(group, []).append(crd_object(group, version, kind, plural, scope))
    return out


WEBHOOK_CONFIG_CRDS = [
    crd_object("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
               "validatingwebhookconfigurations", "Cluster"),
    crd_object("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
               "mutatingwebhookconfigurations", "Cluster"),
]


def create_objects(api: FakeApiServer, objects: Iterable[dict[str, Any]]) -> None:
    """Server-side apply objects straight into the fake (as a cluster admin or k3s would have)."""
    from kubernetes.dynamic import DynamicClient

    with tempfile.TemporaryDirectory() as cache:  # the client's default discovery cache would litter /tmp
        dyn = DynamicClient(api.api_client(), cache_file=str(Path(cache) / "discovery.json"))
        for obj in objects:
            resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            resource.server_side_apply(body=obj, name=obj["metadata"]["name"],
                                       namespace=obj["metadata"].get("namespace"), field_manager="test-setup",
                                       force_conflicts=True)


def serve_k3s_builtins(api: FakeApiServer, root: Path = REPO) -> None:
    """CRDs k3s serves out of the box (Traefik, helm-controller) and the webhook configuration kinds.

    The fake does not serve ValidatingWebhookConfiguration/MutatingWebhookConfiguration as built-ins; here
    they are CRDs with the real group, version and scope, which is all the drivers look at.
    """
    crds = schema_crds(root)
    create_objects(api, WEBHOOK_CONFIG_CRDS + [c for g in K3S_GROUPS for c in crds.get(g, [])])


# -- stand-in charts ----------------------------------------------------------------------------------------

WEBHOOK_TEMPLATE = """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-webhook
spec:
  selector:
    app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
    - port: 443
      targetPort: http
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {{ .Release.Name }}-webhook
webhooks:
  - name: validate.%(group)s
    clientConfig:
      service: {name: {{ .Release.Name }}-webhook, namespace: {{ .Release.Namespace }}, path: /validate}
    rules:
      - apiGroups: ["%(group)s"]
        apiVersions: ["*"]
        resources: ["*"]
        operations: [CREATE, UPDATE]
    failurePolicy: Fail
    sideEffects: None
    admissionReviewVersions: [v1]
"""


# real releases set image as a string or as a map; helm create's template reads only the map
_TOLERANT_IMAGE = {
    'image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"':
        'image: {{ if kindIs "string" .Values.image }}{{ .Values.image | quote }}{{ else }}"{{ .Values.image.repository'
        ' }}:{{ .Values.image.tag | default .Chart.AppVersion }}"{{ end }}',
    "imagePullPolicy: {{ .Values.image.pullPolicy }}":
        'imagePullPolicy: {{ if kindIs "map" .Values.image }}{{ .Values.image.pullPolicy | default "IfNotPresent" }}'
        "{{ else }}IfNotPresent{{ end }}",
}


_DEFAULT_RESOURCES = """\
resources:
  requests: {cpu: 10m, memory: 32Mi}
  limits: {cpu: 100m, memory: 64Mi}
"""


def build_standin(name: str, version: str, dest: Path, work: Path, *, crds: Iterable[dict[str, Any]] = (),
                  webhook_group: str = "", package: bool = True) -> Path:
    """``helm create`` + tests/fixtures/charts/overlay (+ CRDs in crds/, + a validating webhook Service and
    configuration for ``webhook_group``), packaged as ``dest/<name>-<version>.tgz`` (or the directory).

    The Deployment is ``<release>-<name>`` (just ``<release>`` when the release name contains ``name``); its
    image may be given as a string or as helm create's {repository, tag} map.
    """
    src = work / f"{name}-{version}"
    if src.exists():
        shutil.rmtree(src)
    src.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([HELM, "create", str(src)], check=True, capture_output=True)
    chart_yaml = src / "Chart.yaml"
    text = chart_yaml.read_text().replace(f"name: {src.name}", f"name: {name}")
    chart_yaml.write_text(text.replace("\nversion: 0.1.0", f"\nversion: {version}"))
    shutil.copytree(OVERLAY, src, dirs_exist_ok=True)
    deployment = src / "templates" / "deployment.yaml"
    text = deployment.read_text()
    for old, new in _TOLERANT_IMAGE.items():
        assert old in text, f"helm create changed its deployment template: {old!r} not found"
        text = text.replace(old, new)
    deployment.write_text(text)
    values = src / "values.yaml"
    assert "\nresources: {}\n" in values.read_text(), "helm create changed its values.yaml"
    # the lab's policy wants requests and limits on every container; real charts set them in nested keys
    values.write_text(values.read_text().replace("\nresources: {}\n", "\n" + _DEFAULT_RESOURCES))
    for i, crd in enumerate(crds):
        (src / "crds" / f"zz-{i:02d}-{crd['metadata']['name']}.yaml").write_text(yaml.safe_dump(crd))
    if webhook_group:
        (src / "templates" / "webhook.yaml").write_text(WEBHOOK_TEMPLATE % {"group": webhook_group})
    if not package:
        return src
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([HELM, "package", str(src), "--version", version, "-d", str(dest)], check=True,
                   capture_output=True)
    return dest / f"{name}-{version}.tgz"


def stage_standins(project: Any, cache: Path, work: Path, releases: Iterable[str] | None = None, *,
                   webhooks: bool = True) -> dict[str, Path]:
    """Stand-ins for the remote charts of ``releases`` (default: all) in the chart cache, locked in charts.lock.

    A platform release's stand-in ships the CRDs its real chart provides (CRD_PROVIDERS) and, with
    ``webhooks`` (needs ``serve_k3s_builtins`` first), a validating webhook for that group.
    """
    from homelab import charts

    by_group = schema_crds(project.layout.root if (project.layout.root / "schemas" / "crds").is_dir() else REPO)
    wanted = [r for r in project.releases if charts.is_remote(r) and (releases is None or r.name in releases)]
    built: dict[str, Path] = {}
    for release in wanted:
        pin = charts.pin(release)
        crds = [c for group, provider in CRD_PROVIDERS.items() if provider == release.name
                for c in by_group.get(group, [])]
        group = WEBHOOK_PROVIDERS.get(release.name, "") if webhooks else ""
        built[release.name] = build_standin(pin["name"], pin["version"], cache, work / release.name, crds=crds,
                                            webhook_group=group)
    charts.pull(project, [r.name for r in wanted])
    return built


# -- recording helm ----------------------------------------------------------------------------------------

_WRAPPER = """\
#!%(python)s -S
import json, os, stat, sys
args = sys.argv[1:]
entry = {"argv": args, "values_file": None, "values_mode": None}
for i, arg in enumerate(args[:-1]):
    if arg in ("-f", "--values"):
        entry["values_file"] = args[i + 1]
        entry["values_mode"] = oct(stat.S_IMODE(os.stat(args[i + 1]).st_mode))
with open(%(log)r, "a") as fh:
    fh.write(json.dumps(entry) + "\\n")
os.execv(%(helm)r, [%(helm)r] + args)
"""


class HelmRecorder:
    """A helm wrapper logging each invocation's argv and values-file mode, then exec'ing the real helm."""

    def __init__(self, directory: Path, helm: str = HELM) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "helm-calls.jsonl"
        self.path = directory / "helm"
        self.path.write_text(_WRAPPER % {"python": sys.executable, "log": str(self.log), "helm": helm})
        self.path.chmod(0o755)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def argv(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls()]

    def count(self, subcommand: str | None = None) -> int:
        """Invocations, or those of one subcommand (``upgrade``, ``history``, ``rollback``, ...)."""
        return sum(1 for a in self.argv() if subcommand is None or (a and a[0] == subcommand))

    def releases_upgraded(self) -> list[str]:
        """Release names in ``helm upgrade`` order."""
        return [a[2] for a in self.argv() if a[:2] == ["upgrade", "--install"]]

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)


# -- the cluster fixture ----------------------------------------------------------------------------------------

@dataclass
class Cluster:
    """A fake cluster ready for the drivers: ``env`` holds what a doit subprocess needs to use it."""

    api: FakeApiServer
    kubeconfig: Path
    helm: HelmRecorder
    env: dict[str, str]


@pytest.fixture
def cluster(fake_api: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            request: pytest.FixtureRequest) -> Cluster:
    """The fake API with kubeconfig, helm recorder and private helm homes, also set in this process's env."""
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "cluster" / "kubeconfig")
    recorder = HelmRecorder(tmp_path / "cluster" / "bin")
    # the fake cluster has no ingress: the ollama_models post-deploy step talks to a FAKE Ollama instead
    ollama = FakeOllama()
    request.addfinalizer(ollama.stop)
    env = {
        "HOMELAB_OLLAMA_URL": ollama.url,
        "HOMELAB_KUBECONFIG": str(kubeconfig),
        "HOMELAB_HELM": str(recorder.path),
        "HELM_CACHE_HOME": str(tmp_path / "cluster" / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "cluster" / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "cluster" / "helm-data"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("KUBECONFIG", "HELM_NAMESPACE", "HELM_KUBECONTEXT", "HELM_DRIVER"):
        monkeypatch.delenv(key, raising=False)
    return Cluster(fake_api, kubeconfig, recorder, env)


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every regular file under ``root`` whose bytes contain ``needle``."""
    data = needle.encode()
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if data in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def unreachable_kubeconfig(directory: Path) -> Path:
    """A kubeconfig naming a port nothing listens on (connection refused at once)."""
    path = directory / "unreachable-kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:9'}\n"
                    "users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\n"
                    "current-context: c\n")
    return path
