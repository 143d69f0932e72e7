"""The sandbox's life: image, up, down, reset and status, composed from the one-job modules.

``up`` is idempotent: it creates only what is missing and leaves running hosts alone. Every resource is
recorded in the state file the moment it exists, so ``down`` can remove exactly that even after a failed or
interrupted ``up``; ``down`` also looks for the resources' deterministic names (netns = host name, veth
derived from it, mounts and nspawn processes under our build directory) in case the state file was lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from homelab.sandbox import aptrepo, hosts, image, network, processes, ssh, state
from homelab.sandbox.config import HostSpec, Paths, SandboxConfig, load_config, read_package_list
from homelab.sandbox.errors import SandboxError
from homelab.sandbox.mounts import mounts_under, remove_tree, unmount
from homelab.sandbox.progress import Log, Progress
from homelab.sandbox.state import SandboxState
from homelab.sandbox.system import (
    DOWN_TOOLS,
    IMAGE_TOOLS,
    NOT_ROOT,
    UP_TOOLS,
    file_lock,
    is_root,
    require_tools,
)

BOOT_TIMEOUT = 120.0
LOCK_WAIT = 600.0  # queue behind another up/down/reset on this machine rather than fail

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Context:
    paths: Paths
    cfg: SandboxConfig
    progress: Progress

    @classmethod
    def create(cls, repo_root: Path, log: Log | None = None) -> Context:
        root = Path(repo_root).resolve()
        return cls(paths=Paths.for_repo(root), cfg=load_config(root), progress=Progress(log))

    def save(self, record: SandboxState) -> None:
        state.save(self.paths.state_file, record)


def _lock(ctx: Context) -> AbstractContextManager[None]:
    return file_lock(ctx.paths.lock_file, "the sandbox", wait=LOCK_WAIT, on_wait=ctx.progress.note)


def _require(tools: Sequence[str]) -> None:
    if not is_root():
        raise SandboxError(NOT_ROOT.removeprefix("sandbox: "))
    require_tools(tools)


def _parallel(func: Callable[[T], R], items: Sequence[T]) -> list[R]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(func, items))


# --- image ------------------------------------------------------------------------------------------------


def _prepare(ctx: Context) -> image.Image:
    release = ctx.cfg.release
    with ctx.progress.step(f"base image {ctx.paths.image_dir(release)}") as step:
        if image.current(ctx.paths, release) is None:
            ctx.progress.note("building the base image with mmdebstrap (about a minute)")
        img, built = image.ensure(ctx.paths, release)
        step.result = "built" if built else "cached"
    packages = read_package_list(ctx.paths.package_list)
    with ctx.progress.step(f"apt repo {aptrepo.served_dir(ctx.paths, release)}") as step:
        _, step.result = aptrepo.ensure(ctx.paths, release, img, packages)
    return img


def build_image(ctx: Context) -> None:
    _require(IMAGE_TOOLS)
    _prepare(ctx)


# --- up ---------------------------------------------------------------------------------------------------


def _load(ctx: Context) -> SandboxState:
    try:
        return state.load(ctx.paths.state_file)
    except SandboxError as exc:
        raise SandboxError(f"{exc}; run 'down' first") from exc


def _ssh_setup(ctx: Context) -> str:
    paths = ctx.paths
    with ctx.progress.step(f"ssh key and config {paths.ssh_config}") as step:
        created = ssh.ensure_key(paths.ssh_key)
        control = ssh.control_dir(paths.ssh_dir)
        control.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = ssh.render_config(ctx.cfg.hosts, key=paths.ssh_key, known_hosts=paths.known_hosts, control=control)
        ssh.write_config(paths.ssh_config, text)
        step.result = "key generated" if created else "key present"
    return ssh.public_key(paths.ssh_key)


def _network_and_server(ctx: Context, record: SandboxState) -> None:
    cfg = ctx.cfg
    with ctx.progress.step(f"bridge {cfg.bridge_name} {cfg.bridge_cidr}") as step:
        created = network.ensure_bridge(cfg.bridge_name, cfg.bridge_cidr)
        record.bridge, record.bridge_cidr = cfg.bridge_name, cfg.bridge_cidr
        ctx.save(record)
        step.result = "created" if created else "present"
    with ctx.progress.step(f"apt repo server http://{cfg.bridge_ip}:{cfg.apt_repo_port}/") as step:
        server = record.apt_server
        if server is not None and processes.alive(server.pid, server.start_time):
            step.result = f"running (pid {server.pid})"
        else:
            record.apt_server = aptrepo.start_server(ctx.paths, cfg.release, cfg.bridge_ip, cfg.apt_repo_port)
            ctx.save(record)
            step.result = f"started (pid {record.apt_server.pid})"


def _start_host(ctx: Context, record: SandboxState, spec: HostSpec, img: image.Image, pubkey: str) -> bool:
    """Create what this host is missing and boot it; False when it was already running."""
    rec = record.host(spec.name, spec.address)
    if hosts.running(rec.nspawn):
        ctx.progress.note(f"{spec.name}: running, left alone")
        return False
    dirs = hosts.host_dirs(ctx.paths, spec.name)
    cidr = f"{spec.address}/{ctx.cfg.prefixlen}"
    with ctx.progress.step(f"{spec.name}: netns + veth {network.veth_name(spec.name)} {cidr}") as step:
        made_ns = network.ensure_netns(spec.name)
        rec.netns = spec.name
        ctx.save(record)
        made_link = network.ensure_host_link(spec.name, spec.name, ctx.cfg.bridge_name, cidr)
        rec.veth = network.veth_name(spec.name)
        ctx.save(record)
        step.result = "created" if made_ns or made_link else "present"
    with ctx.progress.step(f"{spec.name}: overlay root {dirs.merged}") as step:
        mounted = hosts.mount(dirs, img.path)
        rec.mount = str(dirs.merged)
        ctx.save(record)
        if not dirs.provisioned.exists():
            hosts.provision(dirs, spec, ctx.cfg.hosts, pubkey, ctx.cfg.apt_source_line)
            step.result = "mounted, provisioned"
        else:
            step.result = "mounted" if mounted else "already mounted"
    with ctx.progress.step(f"{spec.name}: boot (systemd-nspawn)") as step:
        rec.nspawn = hosts.boot(dirs, spec.name, spec.name)
        ctx.save(record)
        step.result = f"started (pid {rec.nspawn.pid})"
    return True


def _wait_ready(ctx: Context, record: SandboxState, names: list[str]) -> None:
    def wait(name: str) -> tuple[str, str | Exception]:
        rec = record.hosts[name]
        try:
            answer = ssh.wait_ready(ctx.paths.ssh_config, name, BOOT_TIMEOUT, alive=lambda: hosts.running(rec.nspawn))
        except SandboxError as exc:
            return name, exc
        return name, answer

    with ctx.progress.step(f"ssh ready: {', '.join(names)}") as step:
        results = _parallel(wait, names)
        failures = [
            f"{exc} [console: {hosts.console_tail(hosts.host_dirs(ctx.paths, n))}]"
            for n, exc in results
            if isinstance(exc, Exception)
        ]
        if failures:
            raise SandboxError("; ".join(failures))
        step.result = ", ".join(f"{n} {answer}" for n, answer in results)
    for name, answer in results:
        if answer != "running":
            failed = ssh.run_on(ctx.paths.ssh_config, name, "systemctl --failed --no-legend --plain")
            ctx.progress.note(f"{name}: system is {answer}; failed units: {failed or 'none listed'}")


def _host_keys(ctx: Context, specs: list[HostSpec]) -> None:
    """Generate missing ssh host keys for all hosts at once (RSA generation dominates a fresh 'up')."""

    def generate(spec: HostSpec) -> bool:
        dirs = hosts.host_dirs(ctx.paths, spec.name)
        dirs.root.mkdir(parents=True, exist_ok=True)
        return hosts.ensure_host_keys(dirs)

    missing = [s for s in specs if not hosts.has_host_keys(hosts.host_dirs(ctx.paths, s.name))]
    if not missing:
        return
    with ctx.progress.step(f"ssh host keys: {', '.join(s.name for s in missing)}") as step:
        for spec, made in zip(missing, _parallel(generate, missing), strict=True):
            if made:
                # New keys for an old name: drop the old ones so ssh does not see a "changed" host key.
                ssh.forget_host(ctx.paths.known_hosts, spec.name, spec.address)
        step.result = "generated"


def _up_locked(ctx: Context, record: SandboxState, specs: list[HostSpec]) -> None:
    img = _prepare(ctx)
    pubkey = _ssh_setup(ctx)
    _network_and_server(ctx, record)
    _host_keys(ctx, [spec for spec in specs if not hosts.running(record.host(spec.name, spec.address).nspawn)])
    booted = [spec.name for spec in specs if _start_host(ctx, record, spec, img, pubkey)]
    if booted:
        _wait_ready(ctx, record, booted)


def up(ctx: Context, names: list[str] | None = None) -> None:
    _require(UP_TOOLS)
    specs = ctx.cfg.select(names)
    with _lock(ctx):
        record = _load(ctx)
        _up_locked(ctx, record, specs)
    ctx.progress.note(f"up: {len(specs)} host(s) ready in {ctx.progress.elapsed():.1f}s")


# --- down -------------------------------------------------------------------------------------------------


def _stop_all(ctx: Context, record: SandboxState, removed: list[str]) -> None:
    """Stop every nspawn we started: the recorded ones plus any still booted from our host directories."""
    targets: dict[int, tuple[str, state.ProcessRecord]] = {}
    for name, rec in record.hosts.items():
        if rec.nspawn is not None and processes.alive(rec.nspawn.pid, rec.nspawn.start_time):
            targets[rec.nspawn.pid] = (name, rec.nspawn)
    hosts_root = ctx.paths.hosts_dir.resolve()
    for proc in processes.find(lambda p: bool(p.argv) and p.argv[0].endswith("systemd-nspawn")):
        for name in ctx.cfg.names() + list(record.hosts):
            if proc.pid not in targets and hosts.is_our_nspawn(proc, hosts_root / name / "merged"):
                targets[proc.pid] = (name, state.ProcessRecord(proc.pid, proc.start_time))
    if ctx.paths.ssh_config.exists():
        _parallel(partial(ssh.close_master, ctx.paths.ssh_config), ctx.cfg.names())

    def stop(item: tuple[str, state.ProcessRecord]) -> str:
        name, proc = item
        return f"host {name} (nspawn pid {proc.pid}): {hosts.stop(proc, name)}"

    removed.extend(_parallel(stop, list(targets.values())))


def down(ctx: Context) -> list[str]:
    """Remove everything the sandbox created; returns one line per removed thing."""
    _require(DOWN_TOOLS)
    removed: list[str] = []
    with _lock(ctx):
        try:
            record = state.load(ctx.paths.state_file)
        except SandboxError as exc:
            ctx.progress.note(f"{exc}")
            record = SandboxState()
        _stop_all(ctx, record, removed)
        for point in sorted(mounts_under(ctx.paths.hosts_dir), key=lambda p: len(p.parts), reverse=True):
            unmount(point)
            removed.append(f"mount {point}")
        names = list(dict.fromkeys([*record.hosts, *ctx.cfg.names()]))
        for name in names:
            rec = record.hosts.get(name)
            veth = rec.veth if rec and rec.veth else network.veth_name(name)
            if network.delete_link(veth):
                removed.append(f"veth {veth} ({name})")
            netns = rec.netns if rec and rec.netns else name
            if network.delete_netns(netns):
                removed.append(f"netns {netns}")
        directory = aptrepo.served_dir(ctx.paths, ctx.cfg.release)
        servers = [record.apt_server] if record.apt_server else []
        servers += [
            state.ProcessRecord(p.pid, p.start_time)
            for p in processes.find(lambda p: aptrepo.is_our_server(p, ctx.cfg.bridge_ip, directory))
            if not record.apt_server or p.pid != record.apt_server.pid
        ]
        for server in servers:
            if aptrepo.stop_process(server):
                removed.append(f"apt repo server (pid {server.pid})")
        for bridge in dict.fromkeys(b for b in (record.bridge, ctx.cfg.bridge_name) if b):
            if network.delete_link(bridge):
                removed.append(f"bridge {bridge}")
        if ctx.paths.hosts_dir.exists():
            remove_tree(ctx.paths.hosts_dir)
            removed.append(f"host files {ctx.paths.hosts_dir}")
        ctx.paths.known_hosts.unlink(missing_ok=True)
        if ctx.paths.state_file.exists():
            ctx.paths.state_file.unlink()
            removed.append(f"state file {ctx.paths.state_file}")
    return removed


# --- reset ------------------------------------------------------------------------------------------------


def reset(ctx: Context, names: list[str] | None = None) -> None:
    """Wipe each host's writable layer back to the base image and boot it again."""
    _require(UP_TOOLS)
    specs = ctx.cfg.select(names)
    with _lock(ctx):
        record = _load(ctx)

        def wipe(spec: HostSpec) -> str:
            rec = record.host(spec.name, spec.address)
            dirs = hosts.host_dirs(ctx.paths, spec.name)
            # A shared ssh connection to the old boot would otherwise linger until it notices the peer died.
            if ctx.paths.ssh_config.exists():
                ssh.close_master(ctx.paths.ssh_config, spec.name)
            outcome = hosts.stop(rec.nspawn, spec.name) if rec.nspawn else "not running"
            rec.nspawn = None
            hosts.unmount_root(dirs)
            rec.mount = None
            hosts.wipe(dirs)
            return outcome

        with ctx.progress.step(f"reset {', '.join(s.name for s in specs)}: stop, wipe upper layer") as step:
            try:
                outcomes = _parallel(wipe, specs)
            finally:
                ctx.save(record)
            step.result = ", ".join(outcomes)
        _up_locked(ctx, record, specs)
    ctx.progress.note(f"reset: {len(specs)} host(s) back to the base image in {ctx.progress.elapsed():.1f}s")


# --- status -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    running: bool
    ssh: str


def status(ctx: Context, names: list[str] | None = None) -> list[HostStatus]:
    """Works without root: reads the state file and /proc, and tries ssh (which needs the key)."""
    specs = ctx.cfg.select(names)
    try:
        record = state.load(ctx.paths.state_file)
    except SandboxError:
        record = SandboxState()

    def one(spec: HostSpec) -> HostStatus:
        rec = record.hosts.get(spec.name)
        up_now = rec is not None and hosts.running(rec.nspawn)
        answer = "-"
        if up_now:
            answer = ssh.probe(ctx.paths.ssh_config, spec.name)
        return HostStatus(spec.name, spec.address, up_now, answer)

    return _parallel(one, specs)
