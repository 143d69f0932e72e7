"""Applying one release to the cluster: Helm for its chart, server-side apply for its extra manifests.

Order: unblock a release an interrupted helm run left pending -> ``helm upgrade --install`` (chart
values resolved WITH secrets, handed to helm in a 0600 temp file) -> wait for the admission webhooks
that admit the extra manifests -> server-side apply of the extra manifests (resolved with secrets,
labelled ``homelab.dev/release``) -> prune the release's labelled objects that are no longer rendered.

A failed install or upgrade is undone by helm (``--rollback-on-failure``); the result then carries one
line saying what failed, and the extra manifests are not touched. Every message is one line saying what
changed and why. Nothing here prints: the caller (the engine) prints ``messages`` and writes the stamp.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homelab import charts, redact, resolve, stamps
from homelab.project import Project
from homelab.releases import Release

DEFAULT_TIMEOUT = "5m"


@dataclass
class ApplyResult:
    """What applying one release did; ``stamp_result()`` is the part worth keeping in its stamp."""

    release: str
    ok: bool = True
    error: str = ""  # one line when not ok
    revision: int | None = None  # helm revision after the run (None: no chart, or no release left)
    status: str = ""  # helm status after the run ("deployed"; "" without a chart)
    objects: list[str] = field(default_factory=list)  # applied extra manifests, "apiVersion Kind ns/name"
    applied_kinds: list[str] = field(default_factory=list)  # "apiVersion/Kind" ever applied, for pruning
    pruned: list[str] = field(default_factory=list)
    changed: int = 0  # helm releases installed/upgraded + objects created/configured/pruned
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def stamp_result(self) -> dict[str, Any]:
        """Secret-free keys to merge into the stamp's ``result`` (``applied_kinds`` is read back by the next run).

        Not part of the result digest: a new helm revision is not something downstream releases consume.
        """
        return {"helm_revision": self.revision, "helm_status": self.status, "applied_objects": list(self.objects),
                "applied_kinds": list(self.applied_kinds)}


def kubeconfig_path(project: Project) -> Path:
    """``HOMELAB_KUBECONFIG``, else ``build/<env>/kubeconfig`` (written by the k3s stage)."""
    override = os.environ.get("HOMELAB_KUBECONFIG")
    return Path(override) if override else project.layout.kubeconfig


def previous_kinds(project: Project, release: Release) -> list[str]:
    """The kinds the release's last successful apply recorded (its stamp), so pruning lists only those."""
    stamp = stamps.read(project.layout.stamps, release.name) or {}
    kinds = (stamp.get("result") or {}).get("applied_kinds") or []
    return [str(k) for k in kinds if isinstance(k, str)]


def object_text(key: tuple[str, str, str, str]) -> str:
    api_version, kind, namespace, name = key
    return f"{api_version} {kind} {namespace}/{name}" if namespace else f"{api_version} {kind} {name}"


def apply_release(project: Project, release: Release, kubeconfig: Path, *, timeout: str | None = None,
                  kinds_before: list[str] | None = None) -> ApplyResult:
    """Converge one release; never raises for a cluster-side failure (``ok`` False, ``error`` one line).

    ``timeout`` (a helm duration) defaults to ``HOMELAB_APPLY_TIMEOUT`` (tests, impatient operators), else the
    release's ``timeout:``, else 5m. ``kinds_before`` defaults to the ``applied_kinds`` of the release's stamp.
    """
    from homelab import helm, kube
    from homelab.binaries import BinaryNotFound

    started = time.monotonic()
    result = ApplyResult(release.name)
    wait = timeout or os.environ.get("HOMELAB_APPLY_TIMEOUT") or str(release.spec.get("timeout") or DEFAULT_TIMEOUT)
    before = previous_kinds(project, release) if kinds_before is None else list(kinds_before)
    try:
        if release.chart is not None:
            _helm_step(project, release, kubeconfig, wait, result)
        if result.ok:
            _manifest_step(project, release, kubeconfig, wait, before, result)
    except (helm.HelmError, BinaryNotFound, kube.KubeError) as exc:
        result.ok, result.error = False, redact.redact(str(exc))
    except Exception as exc:  # anything else: still one line, never a traceback that could show a value
        detail = " ".join(str(exc).split())[:600]
        result.ok, result.error = False, redact.redact(f"{release.name}: {type(exc).__name__}: {detail}")
    result.seconds = time.monotonic() - started
    return result


def _helm_step(project: Project, release: Release, kubeconfig: Path, wait: str, result: ApplyResult) -> None:
    from homelab import helm

    where = charts.find(project, release)
    if where.path is None:
        result.ok, result.error = False, f"{release.name}: cannot install: {where.reason}"
        return
    recovered = helm.recover_if_stuck(release.name, release.namespace, kubeconfig, wait)
    if recovered:
        result.messages.append(recovered)
        result.changed += 1
    values = resolve.resolved_values(project, release, with_secrets=True)
    # a remote chart is the verified archive of its exact pinned version: no --version, no repository access
    outcome = helm.upgrade(release.name, release.namespace, where.path, None, values, kubeconfig, wait)
    result.revision, result.status = outcome.revision, outcome.status
    if not outcome.ok:
        result.ok, result.error = False, outcome.error
        return
    result.changed += 1
    spec = release.chart or {}
    chart = charts.describe(spec) if charts.is_remote(release) else str(spec.get("path"))
    if outcome.installed:
        result.messages.append(f"helm: installed {release.name} ({chart}) into {release.namespace}: revision "
                               f"{outcome.revision}, {outcome.status} in {outcome.seconds:.1f}s")
    else:
        result.messages.append(f"helm: upgraded {release.name} ({chart}) to revision {outcome.revision}, "
                               f"{outcome.status} in {outcome.seconds:.1f}s")


def _manifest_step(project: Project, release: Release, kubeconfig: Path, wait: str, before: list[str],
                   result: ApplyResult) -> None:
    from homelab import helm, kube

    manifests = resolve.resolved_manifests(project, release, with_secrets=True)
    if not manifests and not before:
        return  # nothing to apply, nothing applied before: the kubernetes client is never loaded
    report = kube.apply_objects(manifests, kubeconfig, release=release.name, previous_kinds=before,
                                timeout=helm.parse_duration(wait))
    result.objects = [object_text(a.key) for a in report.applied]
    result.applied_kinds = sorted({f"{a.key[0]}/{a.key[1]}" for a in report.applied})
    result.pruned = [object_text(k) for k in report.pruned]
    result.changed += sum(1 for a in report.applied if a.action != "unchanged") + len(report.pruned)
    result.messages += report.messages
    unchanged = sum(1 for a in report.applied if a.action == "unchanged")
    if unchanged:
        result.messages.append(f"{unchanged} extra manifest object(s) unchanged")
