"""The Helm driver: install/upgrade, status, recovery of stuck releases, uninstall (helm v4 binary).

Secrets: at apply time the values hold real secret values. They reach helm only through a 0600 temp file
(``-f``) that is deleted in a ``finally``, never through argv (visible in ``ps``) or the environment.
helm's stdout and stderr pass through ``homelab.redact.redact`` before anything keeps them. The
driver never asks helm for ``status -o json`` or ``get values``: those print the rendered manifest or
the values (secrets included); release state comes from ``helm history -o json``, which holds neither.

Failures: ``--rollback-on-failure`` (helm v4's name for the deprecated ``--atomic``) makes helm undo a
failed upgrade (roll back to the last deployed revision) or a failed first install (uninstall); the
outcome carries one line saying what failed and what helm did about it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homelab import binaries, redact

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
_NOT_FOUND = "release: not found"
_EXTRA_SECONDS = 120  # on top of helm's own --timeout: hooks, the rollback after a failure, the API round trips


class HelmError(Exception):
    """helm could not be run or answered unexpectedly (cluster unreachable, ...); the message is one line."""


@dataclass(frozen=True)
class HelmOutcome:
    """What one ``helm upgrade --install`` did.

    ``revision``/``status`` describe the release after the command (after helm's rollback when it failed;
    ``None``/"" when no release exists). ``installed``: the command found no release and created one.
    ``stdout``/``stderr`` are redacted. ``command`` is the argv, which holds no values (they went through a
    temp file, whose path is shown as ``<values-file>``).
    """

    ok: bool
    release: str
    namespace: str
    revision: int | None
    status: str
    installed: bool
    error: str
    stdout: str
    stderr: str
    command: tuple[str, ...]
    seconds: float


# -- running helm ----------------------------------------------------------------------------------------

def parse_duration(text: str) -> float:
    """Seconds of a helm/Go duration such as ``90s``, ``5m``, ``1h30m``, ``1m30s``."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s or 5m)")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the driver passes namespace and kubeconfig explicitly; ambient overrides would silently retarget it
    for var in ("HELM_NAMESPACE", "HELM_KUBECONTEXT", "HELM_KUBEAPISERVER", "HELM_KUBETOKEN"):
        env.pop(var, None)
    return env


def _run(args: Sequence[str], kubeconfig: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = [binaries.helm(), *args, "--kubeconfig", str(kubeconfig)]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=_env(),
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise HelmError(f"helm {args[0]} did not finish within {timeout:.0f}s and was stopped") from None
    except OSError as exc:
        raise HelmError(f"cannot run helm: {exc}") from None
    return subprocess.CompletedProcess(run.args, run.returncode, redact.redact(run.stdout),
                                       redact.redact(run.stderr))


def error_line(stderr: str, fallback: str = "") -> str:
    """helm's error as one line: from the ``Error:`` line on, continuation lines joined, advice dropped."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Error:")), None)
    # helm v4 logs warnings as "level=WARN msg=..." before the error itself
    kept = lines[start:] if start is not None else [ln for ln in lines if not ln.startswith("level=")] or lines
    kept = [ln for ln in kept if "--debug" not in ln]
    text = "; ".join(kept).removeprefix("Error: ")
    return redact.redact(text[:600]) or fallback


# -- state -----------------------------------------------------------------------------------------------

def history(name: str, namespace: str, kubeconfig: Path, *, timeout: float = 60) -> list[dict[str, Any]]:
    """The release's revisions, oldest first (``[]`` when it does not exist); each has revision, status,
    chart, app_version, description, updated. No values, no manifests."""
    run = _run(["history", name, "--namespace", namespace, "--output", "json", "--max", "256"], kubeconfig,
               timeout)
    if run.returncode != 0:
        if _NOT_FOUND in run.stderr:
            return []
        raise HelmError(f"helm history {name} -n {namespace}: {error_line(run.stderr, f'exit {run.returncode}')}")
    try:
        rows = json.loads(run.stdout or "[]")
    except ValueError:
        raise HelmError(f"helm history {name}: output is not JSON") from None
    if not isinstance(rows, list):
        raise HelmError(f"helm history {name}: expected a JSON list")
    return sorted((r for r in rows if isinstance(r, dict)), key=lambda r: int(r.get("revision", 0)))


def status(name: str, namespace: str, kubeconfig: Path) -> dict[str, Any] | None:
    """The latest revision's record plus ``name``/``namespace``; None when the release does not exist."""
    rows = history(name, namespace, kubeconfig)
    if not rows:
        return None
    return {**rows[-1], "name": name, "namespace": namespace, "revisions": len(rows)}


# -- install / upgrade -------------------------------------------------------------------------------------

def _write_values(values: dict[str, Any]) -> str:
    """A 0600 temp file holding the values (mkstemp creates it 0600); the caller deletes it."""
    import yaml

    fd, path = tempfile.mkstemp(prefix="homelab-values-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(values, fh, sort_keys=True)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _field(stdout: str, key: str) -> str:
    found = re.search(rf"^{key}: (.+)$", stdout, re.MULTILINE)
    return found.group(1).strip() if found else ""


def upgrade_command(name: str, namespace: str, chart_ref: Path | str, version: str | None, values_file: str,
                    timeout: str, *, atomic: bool = True, wait: bool = True) -> list[str]:
    """The argv after ``helm`` (without ``--kubeconfig``)."""
    args = ["upgrade", "--install", name, str(chart_ref), "--namespace", namespace, "--create-namespace"]
    if atomic:
        args.append("--rollback-on-failure")
    if wait:
        args.append("--wait")  # helm v4: the watcher strategy (kstatus readiness of every resource)
    args += ["--timeout", timeout, "--hide-notes"]
    if version:
        args += ["--version", version]
    return [*args, "-f", values_file]


def upgrade(name: str, namespace: str, chart_ref: Path | str, version: str | None, values: dict[str, Any],
            kubeconfig: Path, timeout: str, *, atomic: bool = True, wait: bool = True) -> HelmOutcome:
    """``helm upgrade --install`` with the values from a 0600 temp file; never raises for a failed release."""
    started = time.monotonic()
    seconds = parse_duration(timeout)
    values_path = _write_values(values)
    args = upgrade_command(name, namespace, chart_ref, version, values_path, timeout, atomic=atomic, wait=wait)
    shown = tuple("<values-file>" if a == values_path else a for a in ["helm", *args])
    try:
        # helm waits up to the timeout, then (atomic) as long again for the rollback
        run = _run(args, kubeconfig, seconds * (2 if atomic else 1) + _EXTRA_SECONDS)
    except HelmError as exc:
        after = _safe_status(name, namespace, kubeconfig)
        return HelmOutcome(False, name, namespace, int(after["revision"]) if after else None,
                           str(after["status"]) if after else "", False,
                           f"{exc}; a release left pending is recovered by the next run", "", "", shown,
                           time.monotonic() - started)
    finally:
        os.unlink(values_path)
    installed = "does not exist. Installing it now." in run.stdout
    revision, state = _field(run.stdout, "REVISION"), _field(run.stdout, "STATUS")
    if run.returncode == 0 and revision.isdigit() and state:
        return HelmOutcome(True, name, namespace, int(revision), state, installed, "", run.stdout, run.stderr,
                           shown, time.monotonic() - started)
    after = _safe_status(name, namespace, kubeconfig)
    revision_after = int(after["revision"]) if after else None
    state_after = str(after["status"]) if after else ""
    if run.returncode == 0:  # succeeded, but the summary was not where expected: trust the history
        return HelmOutcome(True, name, namespace, revision_after, state_after, installed, "", run.stdout,
                           run.stderr, shown, time.monotonic() - started)
    detail = error_line(run.stderr, f"helm exited {run.returncode}")
    now = "no release is left" if after is None else f"release is at revision {revision_after} ({state_after})"
    return HelmOutcome(False, name, namespace, revision_after, state_after, installed,
                       f"helm upgrade {name} failed: {detail} [{now}]", run.stdout, run.stderr, shown,
                       time.monotonic() - started)


def _safe_status(name: str, namespace: str, kubeconfig: Path) -> dict[str, Any] | None:
    try:
        return status(name, namespace, kubeconfig)
    except HelmError:
        return None


# -- recovery and removal --------------------------------------------------------------------------------

def recover_if_stuck(name: str, namespace: str, kubeconfig: Path, timeout: str = "5m") -> str | None:
    """Unblock a release left ``pending-*`` by an interrupted helm run; None when it is not stuck.

    helm refuses every further operation on such a release ("another operation is in progress"). A
    first install that never finished (pending-install, no deployed revision) is uninstalled: nothing
    of it ever worked. Otherwise the release is rolled back to its last deployed revision. Returns one
    line saying what was done and why; raises HelmError when the recovery itself fails.
    """
    rows = history(name, namespace, kubeconfig)
    if not rows or rows[-1].get("status") not in PENDING:
        return None
    last = rows[-1]
    revision, state = int(last["revision"]), str(last["status"])
    why = f"{name}: revision {revision} was left {state} by an interrupted helm run"
    good = [r for r in rows[:-1] if r.get("status") in ("deployed", "superseded")]
    if state == "pending-install" and not any(r.get("status") == "deployed" for r in rows[:-1]):
        uninstall(name, namespace, kubeconfig, timeout)
        return f"{why} and nothing of it was ever deployed: uninstalled it so the install starts clean"
    if not good:
        raise HelmError(f"{why} and has no earlier deployed revision to roll back to: inspect it with "
                        f"`helm history {name} -n {namespace}`, then `helm uninstall {name} -n {namespace}`")
    deployed = [r for r in good if r.get("status") == "deployed"]
    target = int((deployed or good)[-1]["revision"])
    run = _run(["rollback", name, str(target), "--namespace", namespace, "--wait", "--timeout", timeout],
               kubeconfig, parse_duration(timeout) + _EXTRA_SECONDS)
    if run.returncode != 0:
        raise HelmError(f"{why}; rollback to revision {target} failed: "
                        f"{error_line(run.stderr, f'exit {run.returncode}')}")
    after = _safe_status(name, namespace, kubeconfig)
    now = f" (now revision {after['revision']}, {after['status']})" if after else ""
    return f"{why}: rolled back to revision {target}, the last deployed one{now}"


def uninstall(name: str, namespace: str, kubeconfig: Path, timeout: str = "5m") -> str:
    """``helm uninstall --wait``; a release that does not exist is not an error. Returns one line."""
    run = _run(["uninstall", name, "--namespace", namespace, "--wait", "--timeout", timeout, "--ignore-not-found"],
               kubeconfig, parse_duration(timeout) + _EXTRA_SECONDS)
    if run.returncode != 0:
        raise HelmError(f"helm uninstall {name} -n {namespace}: {error_line(run.stderr, f'exit {run.returncode}')}")
    return f"{name}: uninstalled from namespace {namespace}"
