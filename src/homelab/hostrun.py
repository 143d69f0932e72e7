"""The host stage runner: one pyinfra deploy (``deploys/<stage>``) on one host over SSH, in-process.

``run_stage`` is what the engine calls for a task ``<stage>:<host>``; ``fetch_kubeconfig`` copies the server's
kubeconfig to the controller; ``stages_for_host`` says which stages a host gets.

Why the pyinfra Python API and not the CLI: it runs in the engine's process (no second interpreter and
pyinfra import per task), per-operation change status is read directly from pyinfra's operation meta
instead of parsing output, and secrets stay in memory as host data: they never need an argv, an
environment variable or a file on the controller. Real runs execute without pyinfra's separate change
detection pass (like ``pyinfra -y``): facts are read once, right before each operation, so an operation sees
what the previous ones did. Dry runs do only the detection pass (like ``pyinfra --dry``) and report the
operations that would change.

pyinfra keeps its current state in process-global context objects, so ``run_stage`` calls must not overlap
in threads of one process; the engine runs one at a time (parallel tasks need separate processes).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from homelab.hostops import hostdata
from homelab.hostops.hostdata import stages_for_host

if TYPE_CHECKING:
    from pyinfra.api.host import Host
    from pyinfra.api.state import State

__all__ = ["StageResult", "fetch_kubeconfig", "run_stage", "stages_for_host"]

DEPLOYS_DIR = Path(os.environ.get("HOMELAB_DEPLOYS_DIR") or Path(__file__).resolve().parents[2] / "deploys")
STANDIN_PREFIX = "stand-in"


@dataclass
class StageResult:
    """The outcome of one stage on one host; everything in it is free of secrets."""

    host: str
    stage: str
    ok: bool
    changed: int = 0
    facts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    planned: list[str] = field(default_factory=list)
    # "host: stand-in nvidia: would install ..." - what a sandbox stand-in replaced (also on real runs)
    standins: list[str] = field(default_factory=list)
    # one line per way the host differs from the inventory (vm stage), also summarised in ``error``
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------------
# helpers


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _redact(text: str, secrets: Mapping[str, str]) -> str:
    # Defence in depth: no code path should put a secret into an error, but if a remote program echoes
    # one back, it must not reach the stamp or the terminal.
    for name, value in secrets.items():
        if value:
            text = text.replace(value, f"<secret:{name}>")
    return text


def _connect_error(host_name: str, message: str) -> str:
    lowered = message.lower()
    if "authentication" in lowered:
        what = "key refused"
    elif "host key" in lowered:
        what = "SSH host key mismatch"
    elif "resolve" in lowered:
        what = "unreachable (name does not resolve)"
    else:
        what = "unreachable"
    return f"{host_name}: {what}: {_one_line(message, 200)}"


def _load_deploy(stage: str) -> Callable[[], None]:
    """The ``apply`` @deploy function of deploys/<stage>/__init__.py (loaded once per process)."""
    name = f"homelab_deploys.{stage}"
    module: ModuleType | None = sys.modules.get(name)
    if module is None:
        path = DEPLOYS_DIR / stage / "__init__.py"
        spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=[str(path.parent)])
        if spec is None or spec.loader is None or not path.is_file():
            raise FileNotFoundError(f"no deploy package at {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    apply: Callable[[], None] = module.apply
    return apply


class _WarningCollector(logging.Handler):
    """Keeps pyinfra's warning/error lines of one run, to name what failed in a one-line error."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(_strip_ansi(record.getMessage()))


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@contextmanager
def _collect_pyinfra_warnings() -> Iterator[_WarningCollector]:
    logger = logging.getLogger("pyinfra")
    collector = _WarningCollector()
    logger.addHandler(collector)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)


@contextmanager
def _quiet_greenlet_errors() -> Iterator[None]:
    """Let an operation's exception reach us without gevent printing its traceback to stderr first.

    pyinfra runs each operation in a greenlet; gevent's hub prints any exception that ends a greenlet unless
    its type is in ``NOT_ERROR``. We report the failure as one line ourselves.
    """
    import gevent

    hub = gevent.get_hub()
    saved = hub.NOT_ERROR
    hub.NOT_ERROR = (*saved, Exception)
    try:
        yield
    finally:
        hub.NOT_ERROR = saved


def _forget_cached_host_keys() -> None:
    """Make pyinfra read known_hosts afresh for this connection.

    pyinfra memoizes the parsed known_hosts files for the life of the process. The engine (and a test
    session) may outlive a host's keys: a sandbox host that is torn down and brought up again has new
    ones, and the stale in-memory copy would refuse it as a host key mismatch although the file is current.
    """
    from pyinfra.connectors.sshuserclient import client

    cache = getattr(client.get_host_keys, "cache", None)
    if isinstance(cache, dict):
        cache.clear()


@contextmanager
def _connected(
    inventory: Mapping[str, Any], host_name: str, data: dict[str, Any], *, check_for_changes: bool
) -> Iterator[tuple[State, Host]]:
    """A pyinfra State with one connected host; raises ConnectError. Disconnects on the way out."""
    from pyinfra.api.config import Config
    from pyinfra.api.inventory import Inventory
    from pyinfra.api.state import State, StateStage

    _forget_cached_host_keys()
    pyinfra_inventory = Inventory(([(host_name, data)], {}))  # type: ignore[no-untyped-call]
    # FAIL_PERCENT None: a failed operation ends the stage with an error, never a prompt.
    config = Config(CONNECT_TIMEOUT=10, PARALLEL=1)  # type: ignore[no-untyped-call]
    state = State(pyinfra_inventory, config, check_for_changes=check_for_changes)
    host = pyinfra_inventory.get_host(host_name)
    state.set_stage(StateStage.Connect)
    host.connect(show_errors=False, raise_exceptions=True)
    state.activate_host(host)
    try:
        yield state, host
    finally:
        host.disconnect()


# ---------------------------------------------------------------------------------------------------------
# run_stage


def run_stage(
    inventory: dict[str, Any],
    stage: str,
    host_name: str,
    *,
    secrets: Mapping[str, str],
    upstream: Mapping[str, object],
    ssh_config: Path | None,
    dry: bool = False,
) -> StageResult:
    """Converge (or, with ``dry``, plan) ``stage`` on ``host_name``; never raises for host-side failures."""
    started = time.monotonic()
    result = StageResult(host=host_name, stage=stage, ok=False)
    try:
        stages = stages_for_host(inventory, host_name)
        if stage not in stages:
            result.error = f"{host_name}: stage {stage} does not apply to this host (stages: {', '.join(stages)})"
            return result
        data = hostdata.host_data(inventory, host_name, stage, upstream=upstream, secrets=secrets,
                                  ssh_config=str(ssh_config) if ssh_config else None)
        deploy = _load_deploy(stage)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        result.error = f"{host_name}: {stage}: {_one_line(str(exc.args[0] if exc.args else exc))}"
        return result
    try:
        with _collect_pyinfra_warnings() as warnings:
            _run(result, inventory, deploy, data, dry=dry, warnings=warnings)
    finally:
        result.seconds = round(time.monotonic() - started, 2)
        if result.error:
            result.error = _redact(result.error, secrets)
    return result


def _run(
    result: StageResult,
    inventory: Mapping[str, Any],
    deploy: Callable[[], None],
    data: dict[str, Any],
    *,
    dry: bool,
    warnings: _WarningCollector,
) -> None:
    from pyinfra.api.deploy import add_deploy
    from pyinfra.api.exceptions import ConnectError
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import BaseStateCallback, StateStage

    from homelab.hostops.operations import HostMismatch

    name, stage = result.host, result.stage
    noops: list[str] = []
    started_ops: list[str] = []

    class _Track(BaseStateCallback):
        @staticmethod
        def operation_host_start(state: State, host: Host, op_hash: str) -> None:
            started_ops.append(op_hash)

    try:
        with _connected(inventory, name, data, check_for_changes=dry) as (state, host):
            # pyinfra logs noop reasons at debug level only; keep them to report stand-ins.
            setattr(host, "noop", noops.append)  # noqa: B010 - shadow the method on this instance
            state.add_callback_handler(_Track())  # type: ignore[no-untyped-call]
            state.set_stage(StateStage.Prepare)
            try:
                add_deploy(state, deploy)
                if not dry:
                    state.set_stage(StateStage.Execute)
                    with _quiet_greenlet_errors():
                        run_ops(state)
            except HostMismatch as exc:
                result.problems = [f"{name}: {problem}" for problem in exc.problems]
                result.error = f"{name}: host differs from the inventory: {'; '.join(exc.problems)}"
            except Exception as exc:  # pyinfra raises PyinfraError or the operation's own exception
                result.error = _failure(name, stage, state, host, started_ops, exc, warnings.lines)
            order: list[str] = state.get_op_order()  # type: ignore[no-untyped-call]
            op_hashes = [h for h in order if h in state.ops[host]]
            ops = [state.ops[host][h] for h in op_hashes]
            if dry:
                result.planned = [
                    f"{name}: {_op_name(state, h)}" for h, op in zip(op_hashes, ops, strict=True)
                    if op.operation_meta._maybe_is_change
                ]
                result.changed = len(result.planned)
            else:
                result.changed = sum(
                    1 for op in ops if op.operation_meta.is_complete() and op.operation_meta.did_change()
                )
            if result.error is None:
                result.facts = _stage_facts(stage, host, data)
                result.ok = True
    except ConnectError as exc:
        result.error = _connect_error(name, str(exc.args[0] if exc.args else exc))
    result.standins = sorted({f"{name}: {n}" for n in noops if n.startswith(STANDIN_PREFIX)})


def _op_name(state: State, op_hash: str) -> str:
    return ", ".join(sorted(state.get_op_meta(op_hash).names))


def _failure(
    name: str, stage: str, state: State, host: Host, started: list[str], exc: Exception, warnings: list[str]
) -> str:
    """One line: the host, the stage, the operation that failed and the last thing it said."""
    op = _op_name(state, started[-1]) if started else f"{stage} (preparing)"
    detail = ""
    if started and started[-1] in state.ops[host]:
        meta = state.ops[host][started[-1]].operation_meta
        if meta.is_complete():
            # the last stderr line names the problem (apt's "E: ...", mkdir's "cannot create"); stdout if silent
            errors = [line for line in meta.stderr_lines if line.strip()]
            lines = errors or [line for line in meta.stdout_lines if line.strip()]
            detail = lines[-1] if lines else ""
    if not detail:
        text = str(exc)
        generic = text.startswith("No hosts remaining") or text.startswith("Error in operation")
        detail = "" if generic else text
    if not detail:
        useful = [w for w in warnings if w.strip() and "Error:" not in w[:10]]
        detail = useful[-1] if useful else type(exc).__name__
    return f"{name}: {stage}: operation '{op}' failed: {_one_line(detail, 200)}"


def _stage_facts(stage: str, host: Host, data: Mapping[str, Any]) -> dict[str, str]:
    """The secret-free facts downstream stages and the stamp read, taken from the host after the run."""
    from homelab.hostops import facts as hf

    role = str(data["k3s_role"])
    if stage == "vm":
        ident = host.get_fact(hf.HostIdentity)
        return {"os": f"{ident.get('id', '')} {ident.get('version_id', '')}".strip()}
    if stage == "tailscale":
        ip = host.get_fact(hf.TailscaleIPv4)
        return {"tailscale_ip": ip} if ip else {}
    if stage == "k3s":
        out = {"k3s_role": role, "k3s_version": host.get_fact(hf.K3sVersion) or ""}
        if role == "server":
            out["api_endpoint"] = f"https://{data['lan_ip']}:{data['k3s']['api_port']}"
        return out
    if stage == "nfs":
        if role != "server":
            return {"nfs_client": "nfs-common"}
        mount = host.get_fact(hf.MountState, where=hostdata.NFS_MOUNT)
        standin = (data.get("standins") or {}).get("nfs")
        return {
            "nfs_mount": hostdata.NFS_MOUNT,
            "etcd_snapshot_dir": str(data["k3s_settings"].get("etcd-snapshot-dir", "")),
            "nfs_mounted": "yes" if mount else ("no (stand-in)" if standin else "no"),
        }
    if stage == "gpu":
        standin = (data.get("standins") or {}).get("nvidia")
        return {"containerd_default_runtime": "nvidia",
                "nvidia_driver": "stand-in" if standin else str(data["gpu"].get("driver", ""))}
    if stage == "gaming":
        return {"gpu_mode": "/usr/local/bin/gpu-mode"}
    return {}


# ---------------------------------------------------------------------------------------------------------
# kubeconfig


def rewrite_kubeconfig(text: str, server_url: str) -> str:
    """The kubeconfig with every cluster's server URL replaced (k3s writes https://127.0.0.1:6443)."""
    import yaml

    config = yaml.safe_load(text)
    if not isinstance(config, dict) or not config.get("clusters"):
        raise ValueError("not a kubeconfig (no clusters)")
    for cluster in config["clusters"]:
        cluster.setdefault("cluster", {})["server"] = server_url
    return yaml.safe_dump(config, sort_keys=False)


def _write_private(dest: Path, text: str) -> None:
    """Write ``dest`` 0600 from its first byte, atomically (tmp + fsync + rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fetch_kubeconfig(inventory: dict[str, Any], server_host: str, dest: Path, ssh_config: Path | None) -> Path:
    """Copy the server's /etc/rancher/k3s/k3s.yaml to ``dest`` (0600), server URL rewritten to
    ``https://<server address>:<api_port>``. Raises RuntimeError with one line on failure."""
    from pyinfra.api.command import StringCommand
    from pyinfra.api.exceptions import ConnectError

    entry = hostdata.find_host(inventory, server_host)
    data = hostdata.ssh_data(inventory, entry, str(ssh_config) if ssh_config else None)
    server_url = f"https://{entry['address']}:{inventory['k3s']['api_port']}"
    try:
        with _connected(inventory, server_host, data, check_for_changes=False) as (_, host):
            # cat into memory rather than an SFTP download: with sudo that would stage a copy in /tmp.
            ok, output = host.run_shell_command(
                StringCommand("cat", hostdata.K3S_KUBECONFIG), print_output=False, print_input=False,
                _sudo=bool(data.get("_sudo")),
            )
    except ConnectError as exc:
        raise RuntimeError(_connect_error(server_host, str(exc.args[0] if exc.args else exc))) from None
    if not ok:
        reason = _one_line(" ".join(output.stderr_lines) or "no output", 200)
        raise RuntimeError(f"{server_host}: cannot read {hostdata.K3S_KUBECONFIG}: {reason}")
    try:
        text = rewrite_kubeconfig("\n".join(output.stdout_lines) + "\n", server_url)
    except (ValueError, TypeError) as exc:
        raise RuntimeError(f"{server_host}: {hostdata.K3S_KUBECONFIG}: {exc}") from None
    _write_private(dest, text)
    return dest
