"""Files holding secret material are 0600, even under umask 000 — after a converge with the FAKE host
runner, in the lab environment (kubeconfig), and after a converge of the real releases against the FAKE
Kubernetes API (apply path, real helm through the recorder).

Secret material: a secret value, or its HMAC (digests, stamps and the project cache hold HMACs; the
identity key derives the HMAC key). Exactly these must be 0600:

- ``secrets/<env>.age`` (the encrypted values) and the age identity ``<config>/<env>.key`` (its dir 0700);
- every stamp ``build/<env>/stamps/*.json`` (secret HMACs in the inputs);
- the project cache ``build/<env>/cache/project.json`` (secret HMACs);
- the kubeconfig ``build/<env>/kubeconfig`` (cluster-admin credentials);
- every rendered manifest of kind Secret under ``build/<env>/manifests/`` (other manifests may be 0644);
- every values file helm is given with ``-f`` on the apply path (real values; deleted right after).

And generally: any file under the tree or the config dir whose bytes contain a secret value or HMAC is 0600.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab import hostrun, paths
from homelab.secrets import Secrets, init_identity
from tests.helpers import Tree
from tests.reliability.support import doit, fakeapi_tree, files_holding, mode, secret_material, stamp_files
from tests.unit.test_apply_support import Cluster

SECRET_MANIFEST = """\
apiVersion: v1
kind: Secret
metadata:
  name: webapp-db
  namespace: apps
stringData:
  password: ${secret:database.admin_password}
"""


def _assert_private(path: Path, what: str) -> None:
    assert path.is_file(), f"{what}: {path} does not exist"
    assert mode(path) == 0o600, f"{what}: {path} is {oct(mode(path))}, must be 0600"


def _secret_manifests(manifests: Path) -> list[Path]:
    out = []
    for path in sorted(manifests.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "Secret":
            out.append(path)
    return out


def _assert_engine_files_private(tree: Tree, env: str = "sandbox") -> None:
    lay = paths.layout(env, tree.root)
    _assert_private(lay.secrets_file, "secrets file")
    _assert_private(lay.identity_file, "age identity")
    stamps = stamp_files(tree) if env == "sandbox" else sorted(lay.stamps.glob("*.json"))
    assert stamps, "the converge wrote no stamps"
    for stamp in stamps:
        _assert_private(stamp, "stamp")
    _assert_private(lay.build / "cache" / "project.json", "project cache")


def _assert_secret_material_private(tree: Tree, env: str = "sandbox") -> None:
    holders = files_holding([tree.root, tree.config], secret_material(tree, env))
    assert holders, "no file holds an HMAC: the scan is not looking at the right thing"
    loose = {str(p): labels for p, labels in holders.items() if mode(p) != 0o600}
    assert not loose, f"files holding secret material that are not 0600: {loose}"


def test_fake_runner_converge_leaves_secret_files_0600(tree: Tree, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "fresh-config"  # not there yet: the engine creates it along with the identity
    monkeypatch.setenv("HOMELAB_CONFIG_DIR", str(config))
    tree.config = config
    tree.write("releases/webapp/manifests/secret.yaml", SECRET_MANIFEST)
    run = doit(tree, umask=0)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert mode(config) == 0o700
    _assert_engine_files_private(tree)
    secrets = _secret_manifests(tree.build / "manifests")
    assert [p.parent.name for p in secrets] == ["webapp"]
    for path in secrets:
        _assert_private(path, "rendered Secret")
        assert "<secret:database.admin_password>" in path.read_text()  # rendering never holds the value
    others = [p for p in (tree.build / "manifests").rglob("*.yaml") if p not in secrets]
    assert others and all(mode(p) == 0o644 for p in others)  # only Secrets are private: the check can tell
    _assert_secret_material_private(tree)
    # a second, no-op run (the cached fast path) keeps every mode
    again = doit(tree, umask=0)
    assert again.returncode == 0 and "0 ran" in again.stdout
    _assert_engine_files_private(tree)


def test_lab_converge_writes_the_kubeconfig_0600(tree: Tree, tmp_path: Path) -> None:
    """HOMELAB_ENV=lab with the FAKE runner (contacts nothing): the k3s server stage fetches the kubeconfig."""
    lay = paths.layout("lab", tree.root)
    init_identity(lay)
    Secrets(lay).save({"tailscale.auth_key": "tskey-file-modes-0123456789", "k3s.token": "k3s-file-modes-0123456789",
                       "database.admin_password": "pg-file-modes-0123456789"})
    log = tmp_path / "calls.log"
    run = doit(tree, "vm", "tailscale", "k3s", "nfs", "gpu", "gaming", umask=0, HOMELAB_ENV="lab",
               FAKE_HOSTRUN_LOG=str(log))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "kubeconfig written to build/lab/kubeconfig (0600)" in run.stdout
    _assert_private(lay.kubeconfig, "kubeconfig")
    _assert_engine_files_private(tree, "lab")
    _assert_secret_material_private(tree, "lab")


# -- the real fetch_kubeconfig, with a fake remote instead of SSH ---------------------------------------------

K3S_YAML = """\
apiVersion: v1
kind: Config
clusters:
- name: default
  cluster: {server: 'https://127.0.0.1:6443', certificate-authority-data: Q0E=}
users:
- name: default
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZLXNlY3JldC1tYXRlcmlhbA==}
contexts:
- name: default
  context: {cluster: default, user: default}
current-context: default
"""


class _Output:
    def __init__(self, text: str) -> None:
        self.stdout_lines = text.splitlines()
        self.stderr_lines: list[str] = []


class _FakeHost:
    def run_shell_command(self, command: Any, **kwargs: Any) -> tuple[bool, _Output]:
        assert "/etc/rancher/k3s/k3s.yaml" in str(command)
        return True, _Output(K3S_YAML)


@contextmanager
def _fake_connected(*args: Any, **kwargs: Any) -> Iterator[tuple[None, _FakeHost]]:
    yield None, _FakeHost()


@contextmanager
def _umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def test_real_fetch_kubeconfig_is_0600_from_the_first_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = yaml.safe_load((Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml").read_text())
    server = next(h for h in inventory["hosts"] if "server" in h["roles"])
    monkeypatch.setattr(hostrun, "_connected", _fake_connected)
    dest = tmp_path / "build" / "lab" / "kubeconfig"
    dest.parent.mkdir(parents=True)
    dest.write_text("stale, world-readable\n")
    dest.chmod(0o644)
    created: list[int] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, *a: Any, **kw: Any) -> int:
        if flags & os.O_CREAT and Path(path).parent == dest.parent:
            created.append(mode)
        return real_open(path, flags, mode, *a, **kw)

    monkeypatch.setattr(os, "open", recording_open)
    with _umask(0):
        hostrun.fetch_kubeconfig(inventory, server["name"], dest, None)
    assert created == [0o600]  # created private, not chmod-ed afterwards: never readable for a moment
    assert mode(dest) == 0o600
    config = yaml.safe_load(dest.read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"https://{server['address']}:{inventory['k3s']['api_port']}"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["kubeconfig"]  # no temp file left behind


def test_failed_kubeconfig_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "kubeconfig"

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        hostrun._write_private(dest, K3S_YAML)
    assert list(tmp_path.iterdir()) == []


# -- the apply path against the FAKE Kubernetes API -------------------------------------------------------------

@pytest.mark.fakeapi
def test_fakeapi_converge_leaves_secret_files_0600(tmp_path: Path, cluster: Cluster, fake_ollama: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tree = fakeapi_tree(tmp_path, cluster, monkeypatch)
    run = doit(tree, umask=0, **{**cluster.env, "HOMELAB_OLLAMA_URL": fake_ollama.url})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert cluster.helm.count("upgrade") > 0  # the apply path really ran
    _assert_engine_files_private(tree)
    secrets = _secret_manifests(tree.build / "manifests")
    assert len(secrets) >= 3, "the real releases render several Secrets"
    for path in secrets:
        _assert_private(path, "rendered Secret")
    values = [c for c in cluster.helm.calls() if c["values_file"]]
    assert values, "helm was never given a values file"
    for call in values:
        assert call["values_mode"] == "0o600", call
        assert not Path(str(call["values_file"])).exists(), f"values file left behind: {call['values_file']}"
    _assert_secret_material_private(tree)


def test_a_cache_from_before_the_fix_is_tightened_on_the_fast_path(tree: Tree) -> None:
    assert doit(tree, "check").returncode == 0
    cache = tree.build / "cache" / "project.json"
    cache.chmod(0o644)  # as an older engine wrote it
    run = doit(tree, "check")
    assert run.returncode == 0
    assert mode(cache) == 0o600
