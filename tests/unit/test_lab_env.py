"""The lab environment offline: check and plan work without contacting any host (the runner is a FAKE that
fails loudly if called), and missing secrets name the secret and the command that adds it."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO, Tree

SECRETS = ("tailscale.auth_key", "k3s.token", "database.admin_password")


def _secrets_cli(tree: Tree, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "homelab.secrets", *args], input=stdin, text=True,
                          capture_output=True, env=tree.env(HOMELAB_ENV="lab"), cwd=REPO, timeout=60)


def test_lab_without_secrets_reports_each_missing_secret(tree: Tree) -> None:
    assert _secrets_cli(tree, "init", "lab").returncode == 0
    run = tree.doit("check", HOMELAB_ENV="lab")
    assert run.returncode == 1
    for name in SECRETS:
        assert f"secret {name!r} is missing (put it into secrets/lab.age: " \
               f"`python -m homelab.secrets set lab {name}`)" in run.stderr


def test_lab_check_and_plan_contact_nothing(tree: Tree, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert _secrets_cli(tree, "init", "lab").returncode == 0
    for name in SECRETS:
        stored = _secrets_cli(tree, "set", "lab", name, stdin=f"value-of-{name}-123\n")
        assert stored.returncode == 0, stored.stderr
        assert "value-of" not in stored.stdout
    listed = _secrets_cli(tree, "list", "lab")
    assert listed.stdout.split() == sorted(SECRETS)
    log = tmp_path / "calls.log"
    check = tree.doit("check", HOMELAB_ENV="lab", FAKE_HOSTRUN_LOG=str(log))
    assert check.returncode == 0, check.stderr
    plan = tree.doit("plan", HOMELAB_ENV="lab", FAKE_HOSTRUN_LOG=str(log))
    assert plan.returncode == 0
    assert "vm:k3s-master: never applied" in plan.stdout
    assert "plan: 22 of 22 tasks would run" in plan.stdout
    assert not log.exists()
    assert (tree.root / "secrets" / "lab.age").read_bytes().startswith(b"age-encryption.org/v1")


def test_secrets_file_is_checked_against_its_schema_without_showing_values(tree: Tree) -> None:
    from homelab import paths
    from homelab.secrets import Secrets

    assert _secrets_cli(tree, "init", "lab").returncode == 0
    store = Secrets(paths.layout("lab", tree.root))
    store.save({name: f"value-of-{name}-123" for name in SECRETS} | {"Bad Name": "CANARY-shape-98765", "empty.one": ""})
    run = tree.doit("check", HOMELAB_ENV="lab")
    assert run.returncode == 1
    assert "secrets/lab.age: Bad Name: secret name has the wrong form" in run.stderr
    assert "secrets/lab.age: empty.one: secret value must be a non-empty string" in run.stderr
    assert "CANARY-shape-98765" not in run.stdout + run.stderr
