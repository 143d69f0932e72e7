"""Running one graph task: a host stage on one host, or one release; then writing its stamp.

The decision *whether* to run is ``needs_run`` (input digest vs stamp). The work itself is delegated:
``homelab.hostrun`` runs pyinfra deploys over SSH; releases are resolved here and applied by the
cluster drivers where an API exists. Every message says what happened and why.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

from homelab import explain, stamps
from homelab.digest import digest
from homelab.inputs import input_digest, task_inputs
from homelab.project import Project

_CURRENT: dict[str, tuple[dict[str, Any], str]] = {}
_ERRORS: dict[str, str] = {}


def last_error(name: str) -> str:
    return _ERRORS.get(name, "failed")


def current_inputs(project: Project, name: str, *, refresh: bool = False) -> tuple[dict[str, Any], str]:
    if refresh or name not in _CURRENT:
        inputs = task_inputs(project, name)
        _CURRENT[name] = (inputs, input_digest(inputs))
    return _CURRENT[name]


def needs_run(project: Project, name: str) -> bool:
    # evaluated by doit after the task's upstream tasks finished, so upstream result digests are current
    _, dig = current_inputs(project, name, refresh=True)
    stamp = stamps.read(project.layout.stamps, name)
    return stamp is None or stamp.get("input_digest") != dig


def why(project: Project, name: str) -> list[str]:
    inputs, _ = current_inputs(project, name)
    stamp = stamps.read(project.layout.stamps, name)
    assert project.inventory is not None
    return explain.reasons(stamp["inputs"] if stamp else None, inputs, project.inventory.rel)


def _fail(name: str, message: str) -> bool:
    _ERRORS[name] = message
    return False


# -- host stages ---------------------------------------------------------------------------------------

def host_runner() -> Any:
    """The module that runs deploys: homelab.hostrun, or a test double named by HOMELAB_HOST_RUNNER."""
    return importlib.import_module(os.environ.get("HOMELAB_HOST_RUNNER", "homelab.hostrun"))


def upstream_facts(project: Project, name: str) -> dict[str, Any]:
    assert project.inventory is not None
    node = project.graph.nodes[name]
    facts: dict[str, Any] = {"tasks": {}}
    for dep in node.deps:
        stamp = stamps.read(project.layout.stamps, dep)
        facts["tasks"][dep] = (stamp or {}).get("result", {}).get("facts", {})
    server = project.inventory.server
    facts["server_name"] = server.name
    facts["server_address"] = server.address
    server_ts = stamps.read(project.layout.stamps, f"tailscale:{server.name}")
    if server_ts:
        facts["server_tailscale_ip"] = server_ts["result"].get("facts", {}).get("tailscale_ip", "")
    own_ts = stamps.read(project.layout.stamps, f"tailscale:{node.host}")
    if own_ts:
        facts["tailscale_ip"] = own_ts["result"].get("facts", {}).get("tailscale_ip", "")
    return facts


def ssh_config(project: Project) -> Any:
    if project.layout.env == "sandbox":
        return project.layout.build / "ssh" / "config"
    return None


def run_host_task(project: Project, name: str) -> bool:
    assert project.inventory is not None and project.secrets is not None
    node = project.graph.nodes[name]
    stage = project.stage(node.stage)
    for reason in why(project, name):
        print(f"  why: {reason}")
    if project.layout.env == "sandbox" and stage.name == "vm" and "HOMELAB_HOST_RUNNER" not in os.environ:
        from homelab.sandbox import api as sandbox_api

        if not sandbox_api.is_root():
            return _fail(name, "sandbox: needs root (systemd-nspawn, network namespaces); run as root "
                               "or use HOMELAB_ENV=lab")
        sandbox_api.ensure_up(project.layout.root, [node.host])
    hostrun = host_runner()
    started = time.monotonic()
    result = hostrun.run_stage(
        project.inventory.data, stage.name, node.host,
        secrets={n: project.secrets.value(n) for n in stage.secrets},
        upstream=upstream_facts(project, name),
        ssh_config=ssh_config(project),
    )
    if not result.ok:
        return _fail(name, result.error or f"{node.host}: {stage.name} failed")
    for line in getattr(result, "standins", []) or []:
        print(f"  {line}")
    print(f"  {node.host}: {stage.name} converged, {result.changed} change(s) in {time.monotonic() - started:.1f}s")
    inputs, dig = current_inputs(project, name)
    summary = {"facts": dict(result.facts), "changed": result.changed}
    stamps.write(project.layout.stamps, name, kind="host", input_digest=dig,
                 result_digest=digest({"stage": stage.name, "host": node.host, "facts": result.facts}),
                 inputs=inputs, result=summary, applied=True)
    if stage.name == "k3s" and node.host == project.inventory.server.name and project.layout.env != "sandbox":
        path = hostrun.fetch_kubeconfig(project.inventory.data, node.host, project.layout.kubeconfig,
                                        ssh_config(project))
        print(f"  kubeconfig written to {project.layout.rel(path)} (0600)")
    return True


# -- releases ------------------------------------------------------------------------------------------

def release_result(project: Project, name: str) -> dict[str, Any]:
    """What downstream tasks can observe of a release: its exports and its chart identity.

    This, not the full rendered output, is the result digest's content: a values change that leaves
    exports and chart alone reruns the release but none of its consumers (early cut-off).
    """
    from homelab.inputs import export_value

    release = project.release(name)
    chart = {k: v for k, v in (release.chart or {}).items() if k in ("repo", "name", "version", "path")}
    if "path" in chart:
        chart["digest"] = release.chart_digest(project.layout.root)
    return {"exports": {key: export_value(project, f"{name}.{key}") for key in sorted(release.exports)},
            "chart": chart}


def run_release_task(project: Project, name: str) -> bool:
    """Render, validate and policy-check one release; apply it where a Kubernetes API exists."""
    from homelab import render
    from homelab.violations import errors

    release = project.release(name)
    for reason in why(project, name):
        print(f"  why: {reason}")
    if release.spec.get("gpu") and applies(project) and kubeconfig_path(project).exists():
        _sync_gpu_mode(project, name)
    rendered, found = render.check_release(project, release)
    for line in render.summary(project, rendered, found)[1:]:
        print(f"  {line}")
    bad = errors(found)
    if bad:
        return _fail(name, f"{len(bad)} validation/policy error(s); nothing was applied (first: {bad[0].line()})")
    applied = False
    applied_result: dict[str, Any] = {}
    if not applies(project):
        print(f"  {name}: {len(rendered.objects)} object(s) rendered and validated; not applied: the sandbox "
              "has no Kubernetes API (HOMELAB_ENV=lab, or HOMELAB_KUBECONFIG=..., applies)")
    else:
        kubeconfig = kubeconfig_path(project)
        if not kubeconfig.exists():
            return _fail(name, f"no kubeconfig at {project.layout.rel(kubeconfig)}: converge the k3s stage "
                               "first or set HOMELAB_KUBECONFIG")
        if release.chart and not rendered.chart_rendered:
            return _fail(name, f"refusing to apply: {rendered.note}")
        from homelab.apply import apply_release

        outcome = apply_release(project, release, kubeconfig)
        for line in outcome.messages:
            print(f"  {line}")
        if not outcome.ok:
            return _fail(name, outcome.error or f"{name}: apply failed")
        applied, applied_result = True, outcome.stamp_result()
    inputs, dig = current_inputs(project, name)
    # the result digest stays exports + chart: a new Helm revision alone must not rerun consumers
    result = release_result(project, name)
    stamps.write(project.layout.stamps, name, kind="release", input_digest=dig, result_digest=digest(result),
                 inputs=inputs, result={**result, "rendered_digest": digest(rendered.objects),
                                        "objects": len(rendered.objects), "chart_rendered": rendered.chart_rendered,
                                        "applied": applied, **applied_result}, applied=applied)
    return True


def applies(project: Project) -> bool:
    """Whether release tasks apply: always in a real lab; in the sandbox only with an explicit kubeconfig."""
    return project.layout.env != "sandbox" or "HOMELAB_KUBECONFIG" in os.environ


def _sync_gpu_mode(project: Project, name: str) -> None:
    """Adopt a mode switch made on the GPU host (gpu-mode gaming) before converging vLLM, so this converge
    cannot scale vLLM back up while Steam has the GPU. Only when vLLM is about to be applied: the no-op
    path runs no kubectl."""
    from homelab import binaries
    from homelab.ops import gpu_state

    before = gpu_state.current_mode(project.layout)
    mode = gpu_state.sync_from_cluster(project.layout, kubeconfig_path(project), binaries.kubectl(),
                                       project.release(name).namespace)
    if mode != before:
        print(f"  {name}: the cluster records GPU mode {mode} (switched on the GPU host); converging for it")
        current_inputs(project, name, refresh=True)


def kubeconfig_path(project: Project) -> Any:
    """The kubeconfig releases are applied with: HOMELAB_KUBECONFIG, else the one the k3s stage fetched."""
    from pathlib import Path

    override = os.environ.get("HOMELAB_KUBECONFIG")
    return Path(override) if override else project.layout.kubeconfig


# -- sandbox lifecycle -----------------------------------------------------------------------------------

def _forget_host_stamps(project: Project) -> list[str]:
    host_tasks = [n.name for n in project.graph.nodes.values() if n.kind == "host"]
    return stamps.remove(project.layout.stamps, host_tasks)


def sandbox_down(project: Project) -> bool:
    from homelab.sandbox import api as sandbox_api

    if not sandbox_api.is_root():
        return _fail("sandbox", "sandbox: needs root (systemd-nspawn, network namespaces)")
    removed = sandbox_api.down(project.layout.root)
    forgotten = _forget_host_stamps(project)
    print(f"  removed: {', '.join(removed) or 'nothing was running'}")
    print(f"  forgot {len(forgotten)} host stamp(s): the hosts are gone, so their stages must run again")
    return True


def sandbox_reset(project: Project) -> bool:
    from homelab.sandbox import api as sandbox_api

    if not sandbox_api.is_root():
        return _fail("sandbox", "sandbox: needs root (systemd-nspawn, network namespaces)")
    sandbox_api.reset(project.layout.root)
    forgotten = _forget_host_stamps(project)
    print(f"  hosts wiped to the base image; forgot {len(forgotten)} host stamp(s)")
    return True
