"""doit task creators: the only module that speaks doit.

dodo.py is a table of contents that calls these. Every stage task carries an ``uptodate`` callable that
compares its input digest with its stamp; nothing else decides whether work runs. When any input is
invalid, every task still exists (names come from the file system) but refuses to act and prints the
problems instead, so a typo never half-applies anything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from homelab import paths, redact
from homelab.problems import Problem, errors
from homelab.project import Project
from homelab.releases import release_dir_names
from homelab.reporter import HomelabReporter

TaskDict = dict[str, Any]

_PROJECT: Project | None = None


def project() -> Project:
    global _PROJECT
    if _PROJECT is None:
        redact.install()
        _PROJECT = Project.load(paths.layout())
    return _PROJECT


def doit_config() -> dict[str, Any]:
    lay = paths.layout()
    lay.build.mkdir(parents=True, exist_ok=True)
    return {
        "default_tasks": ["converge"],
        "verbosity": 2,
        # one failed host or release must not stop independent branches; its dependents do not run
        "continue": True,
        "reporter": HomelabReporter,
        # sqlite3 commits transactionally: a crash never leaves a half-written doit DB
        "dep_file": str(lay.build / "doit.db"),
        "backend": "sqlite3",
    }


def _failed(message: str) -> Any:
    from doit.exceptions import TaskFailed

    return TaskFailed(message)


def failed(message: str) -> Any:
    """A doit failure carrying one line for the reporter."""
    return _failed(message)


def refuse() -> Any:
    """Print every input problem and fail: nothing acts on invalid input."""
    return _refuse()


def _print_problems(problems: list[Problem]) -> None:
    for p in problems:
        print(p.line(), file=sys.stderr)


def _refuse() -> Any:
    problems = project().problems
    _print_problems(problems)
    return _failed(f"{len(errors(problems))} problem(s) in the inputs; nothing was applied (run `doit check`)")


# -- static tasks -------------------------------------------------------------------------------------

def check() -> TaskDict:
    def action() -> Any:
        prj = project()
        _print_problems(prj.problems)
        count = len(errors(prj.problems))
        if count:
            return _failed(f"{count} problem(s) found")
        warnings = len(prj.problems)
        nodes = len(prj.graph.nodes)
        print(f"check: {prj.layout.rel(prj.layout.inventory)}, {len(prj.releases)} releases, "
              f"{nodes} tasks: no problems" + (f" ({warnings} warning(s))" if warnings else ""))
        return None

    return {"actions": [action], "doc": "validate every input and print all problems, one line each",
            "verbosity": 2}


def plan() -> TaskDict:
    def action(hosts: bool) -> Any:
        from homelab import plan as plan_mod

        prj = project()
        if not prj.ok:
            return _refuse()
        for line in plan_mod.plan_lines(prj):
            print(line)
        if hosts:
            from homelab import runstage

            drift = plan_mod.host_drift_lines(prj, runstage.host_runner(), runstage.ssh_config(prj))
            for line in drift:
                print(line)
        return None

    return {"actions": [action], "verbosity": 2,
            "doc": "show every task that would run and why (contacts nothing; --hosts adds a pyinfra dry run)",
            "params": [{"name": "hosts", "long": "hosts", "type": bool, "default": False,
                        "help": "also dry-run every converged host stage over SSH and list drifted operations"}]}


def docs() -> TaskDict:
    def action() -> Any:
        from homelab import dag, docsgen
        from homelab.atomic import write_text_atomic

        prj = project()
        if not prj.ok:
            return _refuse()
        target = prj.layout.root / "docs" / "components.md"
        write_text_atomic(target, docsgen.render(prj))
        written = [target, *dag.write(prj, prj.layout.root / "docs")]
        print("docs: wrote " + ", ".join(prj.layout.rel(p) for p in written))
        return None

    return {"actions": [action], "verbosity": 2,
            "doc": "regenerate docs/components.md and the DAG picture from the releases and the graph"}


def verify() -> TaskDict:
    def action() -> Any:
        from homelab.verify import verify_report

        prj = project()
        if not prj.ok:
            return _refuse()
        report = verify_report(prj)
        for line in report.lines:
            print(line)
        return _failed("some checks failed (see the table)") if report.exit_code else None

    return {"actions": [action], "verbosity": 2, "uptodate": [False],
            "doc": "read-only: testinfra checks on the hosts and cluster checks, as an FR/NFR pass/fail table"}


def drift() -> TaskDict:
    def action() -> Any:
        from homelab.drift import drift_report

        prj = project()
        if not prj.ok:
            return _refuse()
        report = drift_report(prj)
        for line in report.lines:
            print(line)
        sys.stdout.flush()
        if report.exit_code == 2:
            # the documented contract: exit 2 on drift (doit itself only knows 0 and 1)
            raise SystemExit(2)
        return _failed("some parts could not be checked") if report.exit_code else None

    return {"actions": [action], "verbosity": 2, "uptodate": [False],
            "doc": "read-only: live hosts and cluster vs what was last applied; exit 2 on drift"}


def render() -> TaskDict:
    def action() -> Any:
        from homelab import render as render_mod
        from homelab.violations import errors as violation_errors

        prj = project()
        if not prj.ok:
            return _refuse()
        results = render_mod.render_all(prj)
        count = 0
        for _name, (rendered, found) in sorted(results.items()):
            for line in render_mod.summary(prj, rendered, found):
                print(line)
            count += len(violation_errors(found))
        if count:
            return _failed(f"{count} validation/policy error(s) in rendered manifests")
        print(f"render: {len(results)} release(s) rendered to {prj.layout.rel(prj.layout.manifests)}/ and valid")
        return None

    return {"actions": [action], "verbosity": 2,
            "doc": "render every release offline, validate against Kubernetes and CRD schemas, check policy"}


def charts() -> TaskDict:
    def action() -> Any:
        from homelab import charts as charts_mod

        prj = project()
        if not prj.ok:
            return _refuse()
        try:
            messages = charts_mod.pull(prj)
        except charts_mod.ChartError as exc:
            for line in [*exc.messages, *exc.errors]:
                print(line)
            return _failed(f"{len(exc.errors)} chart(s) could not be pulled or verified")
        for line in messages:
            print(line)
        return None

    return {"actions": [action], "verbosity": 2,
            "doc": "pull pinned remote charts into the cache and verify them against charts.lock (network)"}


# -- stage tasks -------------------------------------------------------------------------------------

def _stage_names_from_files(root: Path) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load((root / "deploys" / "stages.yaml").read_text())
        return [str(k) for k in data] if isinstance(data, dict) else []
    except (OSError, yaml.YAMLError):
        return []


def _uptodate(name: str) -> Callable[..., bool]:
    def check(task: Any = None, values: Any = None) -> bool:
        from homelab import runstage

        return not runstage.needs_run(project(), name)

    return check


def host_stage_tasks() -> Iterator[TaskDict]:
    prj = project()
    if not prj.ok or prj.inventory is None:
        for stage_name in _stage_names_from_files(prj.layout.root):
            yield {"basename": stage_name, "actions": [_refuse], "doc": "(inputs invalid: see doit check)",
                   "verbosity": 2}
        return
    for stage in prj.stages:
        members = [n for n in prj.graph.nodes.values() if n.kind == "host" and n.stage == stage.name]
        yield {"basename": stage.name, "name": None, "doc": stage.description}
        for node in members:
            yield {
                "basename": stage.name,
                "name": node.host,
                "actions": [_host_action(node.name)],
                "task_dep": list(node.deps),
                "uptodate": [_uptodate(node.name)],
                "doc": node.description,
                "verbosity": 2,
            }


def _host_action(name: str) -> Callable[[], Any]:
    def action() -> Any:
        from homelab import runstage

        return runstage.run_host_task(project(), name) or _failed(runstage.last_error(name))

    return action


def release_tasks() -> Iterator[TaskDict]:
    prj = project()
    if not prj.ok or prj.inventory is None:
        for name in release_dir_names(prj.layout.root):
            yield {"basename": name, "actions": [_refuse], "doc": "(inputs invalid: see doit check)",
                   "verbosity": 2}
        return
    for release in sorted(prj.releases, key=lambda r: r.name):
        node = prj.graph.nodes[release.name]
        yield {
            "basename": release.name,
            "actions": [_release_action(release.name)],
            "task_dep": list(node.deps),
            "uptodate": [_uptodate(release.name)],
            "doc": release.description,
            "verbosity": 2,
        }


def _release_action(name: str) -> Callable[[], Any]:
    def action() -> Any:
        from homelab import runstage

        return runstage.run_release_task(project(), name) or _failed(runstage.last_error(name))

    return action


def post_deploy_tasks() -> Iterator[TaskDict]:
    """Work that follows a release's apply: Ollama's model pulls (idempotent, story 6.1)."""
    prj = project()
    if not prj.ok or prj.inventory is None or "ollama" not in {r.name for r in prj.releases}:
        return

    def inputs() -> dict[str, Any]:
        from homelab import stamps

        stamp = stamps.read(prj.layout.stamps, "ollama") or {}
        release = prj.release("ollama")
        pull = ((release.values.get("ollama") or {}).get("models") or {}).get("pull") or []
        result = stamp.get("result", {})
        return {"models": list(pull), "ollama": [result.get("rendered_digest"), result.get("helm_revision")],
                "endpoint": os.environ.get("HOMELAB_OLLAMA_URL", "ingress")}

    def uptodate(task: Any = None, values: Any = None) -> bool:
        from homelab import stamps
        from homelab.digest import digest

        stamp = stamps.read(prj.layout.stamps, "ollama_models")
        return stamp is not None and stamp.get("input_digest") == digest(inputs())

    def action() -> Any:
        from homelab import stamps
        from homelab.digest import digest

        current = inputs()
        applied = False
        if prj.layout.env == "sandbox" and "HOMELAB_OLLAMA_URL" not in os.environ:
            # the sandbox's domain resolves nowhere: never look it up, say why nothing was pulled
            print("  ollama models: not pulled: the sandbox has no Ollama endpoint (HOMELAB_OLLAMA_URL names one)")
        else:
            from homelab.ops import ollama

            result = ollama.pull_models(prj)
            if not result.ok:
                return _failed(result.message)
            applied = True
        stamps.write(prj.layout.stamps, "ollama_models", kind="post-deploy", input_digest=digest(current),
                     result_digest=digest(current["models"]), inputs=current, result={"applied": applied},
                     applied=applied)
        return None

    yield {"basename": "ollama_models", "actions": [action], "task_dep": ["ollama"], "uptodate": [uptodate],
           "verbosity": 2, "doc": "pull the ollama release's model list (only missing models) after it is applied"}


def converge() -> TaskDict:
    prj = project()
    if not prj.ok or prj.inventory is None:
        return {"actions": [_refuse], "doc": "converge everything (inputs invalid: see doit check)",
                "verbosity": 2}
    deps = [s.name for s in prj.stages if any(n.stage == s.name for n in prj.graph.nodes.values())]
    deps += [r.name for r in prj.releases]
    deps += ["ollama_models"] if "ollama" in {r.name for r in prj.releases} else []
    return {"actions": None, "task_dep": deps,
            "doc": "converge every host stage and release whose inputs changed (the default)"}


# -- sandbox lifecycle -------------------------------------------------------------------------------

def _sandbox_only(what: str) -> str | None:
    if paths.selected_env() != "sandbox":
        return f"{what} only applies to HOMELAB_ENV=sandbox (selected: {paths.selected_env()})"
    return None


def sandbox_down() -> TaskDict:
    def action() -> Any:
        from homelab import runstage

        refusal = _sandbox_only("sandbox_down")
        if refusal:
            return _failed(refusal)
        return runstage.sandbox_down(project()) or _failed(runstage.last_error("sandbox"))

    return {"actions": [action], "doc": "stop and remove every sandbox host, network and mount it created",
            "verbosity": 2}


def sandbox_reset() -> TaskDict:
    def action() -> Any:
        from homelab import runstage

        refusal = _sandbox_only("sandbox_reset")
        if refusal:
            return _failed(refusal)
        return runstage.sandbox_reset(project()) or _failed(runstage.last_error("sandbox"))

    return {"actions": [action], "doc": "wipe the sandbox hosts back to the base image (forgets their stamps)",
            "verbosity": 2}


def env_name() -> str:
    return os.environ.get("HOMELAB_ENV", paths.DEFAULT_ENV)
