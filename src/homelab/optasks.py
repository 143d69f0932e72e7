"""Day-2 operations as doit tasks: gpu modes, PostgreSQL backup and restore, etcd snapshots and restore,
rolling k3s upgrade and rollback, node removal.

Each task always runs (an operation is a request, not a build step), refuses while the inputs are invalid,
and takes its parameters either as doit options (``doit node_remove --node k3s-worker-02``) or as the
``name=value`` command-line variables the runbooks use (``doit node_remove node=k3s-worker-02``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Param = dict[str, Any]
Runner = Callable[[Any, dict[str, Any]], Any]  # (project, params) -> an OpResult with .ok and .message


def _param(name: str, kind: type = str, default: Any = "", help_text: str = "") -> Param:
    return {"name": name, "long": name.replace("_", "-"), "type": kind, "default": default, "help": help_text}


def _values(task: Any, params: list[Param]) -> dict[str, Any]:
    from doit import get_var

    values: dict[str, Any] = {}
    for p in params:
        given = task.options.get(p["name"], p["default"]) if task.options else p["default"]
        if given == p["default"]:
            var = get_var(p["name"], None)  # `doit task name=value`
            if var is not None:
                given = var.lower() in ("1", "true", "yes") if p["type"] is bool else var
        values[p["name"]] = given
    return values


def _call(module: str, function: str, *args: Any) -> Any:
    """Import the operation only when it runs: task creation is on the no-op path and must stay light."""
    import importlib

    return getattr(importlib.import_module(f"homelab.ops.{module}"), function)(*args)


def op_task(doc: str, run: Runner, params: list[Param] | None = None, required: tuple[str, str] | None = None
            ) -> dict[str, Any]:
    """``required``: (parameter, usage) — refuse with one line naming the usage when it is missing."""
    from homelab import tasks

    params = params or []

    def action(task: Any) -> Any:
        project = tasks.project()
        if not project.ok:
            return tasks.refuse()
        values = _values(task, params)
        if required and not values[required[0]]:
            name = task.name
            return tasks.failed(f"{name}: name the {required[0]}: doit {name} {required[1]}")
        result = run(project, values)
        return None if result.ok else tasks.failed(result.message)

    return {"actions": [action], "params": params, "verbosity": 2, "uptodate": [False], "doc": doc}


# -- the operations --------------------------------------------------------------------------------------

def gpu_gaming() -> dict[str, Any]:

    return op_task("scale vLLM to 0, confirm VRAM is free and the endpoint answers from Ollama (target 30 s)",
                   lambda p, _: _call("gpu", "run_gpu_gaming", p))


def gpu_ml() -> dict[str, Any]:

    return op_task("restore vLLM, wait for /v1/models and routing back to vLLM (target 2 min)",
                   lambda p, _: _call("gpu", "run_gpu_ml", p))


def gpu_status() -> dict[str, Any]:

    return op_task("show the recorded GPU mode and the vLLM replicas", lambda p, _: _call("gpu", "run_gpu_status", p))


def ollama_health() -> dict[str, Any]:
    return op_task("Ollama answers: /api/tags lists the model and a short /api/generate replies (NFR13)",
                   lambda p, _: _call("ollama", "health", p))


def pg_backup() -> dict[str, Any]:

    return op_task("run the PostgreSQL backup CronJob now and verify the dump (gzip, SQL header)",
                   lambda p, _: _call("postgres", "run_pg_backup", p))


def pg_restore() -> dict[str, Any]:

    params = [_param("database", help_text="database to restore (required)"),
              _param("dump", default="latest", help_text="dump file name, or latest"),
              _param("force", bool, False, "do not ask for confirmation")]

    return op_task("restore a dump into a database (asks for confirmation unless force)",
                   lambda p, v: _call("postgres", "run_pg_restore", p, v["dump"], v["database"], bool(v["force"])),
                   params, required=("database", "database=NAME [dump=FILE]"))


def pg_restore_drill() -> dict[str, Any]:

    params = [_param("dump", default="latest", help_text="dump file name, or latest")]
    return op_task("restore the newest dump into scratch databases, compare row counts, drop them, time it",
                   lambda p, v: _call("postgres", "run_pg_restore_drill", p, v["dump"]), params)


def etcd_snapshot() -> dict[str, Any]:

    params = [_param("name", help_text="snapshot name (default: homelab-<timestamp>)")]
    return op_task("take a named etcd snapshot on the server into the NFS snapshot dir and verify it",
                   lambda p, v: _call("k3s_state", "etcd_snapshot", p, v["name"] or None), params)


def cluster_restore() -> dict[str, Any]:

    params = [_param("snapshot", help_text="snapshot name or path (required)"),
              _param("force", bool, False, "do not ask for confirmation")]

    return op_task("reset-restore the server from an etcd snapshot and rejoin the agents",
                   lambda p, v: _call("k3s_state", "cluster_restore", p, v["snapshot"], bool(v["force"])),
                   params, required=("snapshot", "snapshot=NAME"))


def k3s_upgrade() -> dict[str, Any]:

    params = [_param("version", help_text="k3s version (default: the inventory's k3s.version)")]
    return op_task("rolling k3s upgrade: health check, etcd snapshot, server then agents one at a time",
                   lambda p, v: _call("k3s_upgrade", "k3s_upgrade", p, v["version"] or None), params)


def k3s_rollback() -> dict[str, Any]:

    return op_task("roll k3s back to the version the last recorded upgrade started from",
                   lambda p, _: _call("k3s_upgrade", "k3s_rollback", p))


def node_remove() -> dict[str, Any]:

    params = [_param("node", help_text="node to remove (required)")]

    return op_task("cordon, drain, check pods and volumes moved, delete the node, uninstall its agent",
                   lambda p, v: _call("node_remove", "node_remove", p, v["node"]), params,
                   required=("node", "node=NAME"))
