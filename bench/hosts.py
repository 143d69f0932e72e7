"""Benchmark: the host layer on the four sandbox hosts, homelab (doit + pyinfra) against an Ansible peer.

Measured, in this order, on real SSH hosts (10.77.0.x in network namespaces this machine made):

  homelab fresh            reset hosts, then `doit vm tailscale k3s nfs gpu gaming` with no stamps
  homelab no-op (stamps)   the same command again (median of several): stamps say nothing changed, no host
                           is contacted
  no-op without stamps     stamps deleted, hosts converged: every stage runs and pyinfra reports 0 changes
  one-host change          one host's inventory entry edited (sbx-worker-02 hardware.cpus; compared only
                           outside containers, so the hosts converge to the same state): the whole command,
                           of which only that host's stages run
  single-host run          the same kind of edit, then only that host's stage tasks named on the command line
  ansible fresh / no-op    reset hosts, then bench/peers/ansible/site.yml (the same work) twice or more

Ratios: ansible no-op / homelab no-op (target >= 5x) and one-host change / single-host run (target <= 1.2x).
The end states of both fresh converges are compared file by file (content digest, mode, owner), with units,
sysctls, packages and the tailscale0 address.

A benchmark, not a test: it prints figures and never fails on them. It skips (exit 0, one line) when not
root, when the sandbox base image is missing or when ansible-playbook is not installed.

How it keeps the checkout untouched: homelab runs in a temporary copy of the repository (HOMELAB_REPO) with
a temporary build directory (HOMELAB_BUILD_DIR) and identity (HOMELAB_CONFIG_DIR), so its stamps, doit DB
and sandbox secrets are its own. The copy reaches the one sandbox of this machine through a symlink to the
real build/sandbox/ssh. HOMELAB_HOST_RUNNER=homelab.hostrun selects the real runner explicitly, which also
stops the vm stage from calling the sandbox's ensure_up itself: with a temporary build directory that would
try to create a second sandbox. This script brings the sandbox up (and resets it) instead; what that
skipped call costs per vm task is printed.

The sandbox is shared by everyone on the machine. It is torn down at the end only if it was down at the
start. If hosts disappear mid-run (someone ran `down`), the measurement waits and starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PEER = REPO / "bench" / "peers" / "ansible"
STAGES = ("vm", "tailscale", "k3s", "nfs", "gpu", "gaming")
CHANGED_HOST = "sbx-worker-02"
NOOP_TARGET = 5.0  # ansible no-op / homelab no-op at least this
ONE_HOST_TARGET = 1.2  # one-host change / single-host run at most this
ATTEMPTS = 3
RETRY_WAIT_S = 30.0

# What the host layer leaves on a host, one line per item: compared between homelab's and Ansible's fresh
# converge. Digests, never contents: two of the files hold secrets.
FILES = (
    "/etc/apt/apt.conf.d/50unattended-upgrades", "/etc/apt/apt.conf.d/20auto-upgrades", "/etc/environment",
    "/etc/sysctl.d/90-homelab-k8s.conf", "/etc/modules-load.d/homelab-k8s.conf", "/usr/local/bin/tailscale",
    "/etc/systemd/system/homelab-tailscale-standin.service", "/etc/homelab/tailscale-authkey",
    "/opt/homelab/k3s-standin", "/usr/local/bin/k3s", "/etc/rancher/k3s/token", "/etc/rancher/k3s/config.yaml",
    "/etc/systemd/system/k3s.service", "/etc/systemd/system/k3s-agent.service", "/etc/rancher/k3s/k3s.yaml",
    "/etc/systemd/system/mnt-nfs.mount", "/etc/modprobe.d/nvidia-drm.conf",
    "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl", "/etc/udev/rules.d/99-homelab-egpu.rules",
    "/usr/local/bin/gpu-mode", "/etc/homelab/gpu-mode.yaml", "/usr/local/lib/homelab/gpu_mode.py",
)
# Directories the deploys create with mkdir -p (the peer with ansible.builtin.file)
DIRS = ("/etc/homelab", "/etc/rancher/k3s", "/opt/homelab", "/var/lib/rancher/k3s/agent/etc/containerd",
        "/etc/udev/rules.d", "/etc/modprobe.d", "/usr/local/lib/homelab")
UNITS = ("apt-daily-upgrade.timer", "homelab-tailscale-standin.service", "k3s.service", "k3s-agent.service",
         "mnt-nfs.mount")
SYSCTLS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
PACKAGES = ("unattended-upgrades", "nfs-common", "ca-certificates", "curl", "gnupg")
SNAPSHOT_SCRIPT = (
    f"for f in {' '.join(FILES)}; do "
    'if [ -e "$f" ]; then echo "file $f $(stat -c "%a %U:%G" "$f") $(sha256sum < "$f" | cut -c1-16)"; '
    'else echo "file $f absent"; fi; done; '
    f"for d in {' '.join(DIRS)}; do "
    'if [ -d "$d" ]; then echo "dir $d $(stat -c "%a %U:%G" "$d")"; else echo "dir $d absent"; fi; done; '
    f"for k in {' '.join(SYSCTLS)}; do echo \"sysctl $k=$(sysctl -n $k)\"; done; "
    f"for u in {' '.join(UNITS)}; do echo \"unit $u $(systemctl is-enabled $u 2>/dev/null || true) "
    '$(systemctl is-active $u 2>/dev/null || true)"; done; '
    f"dpkg-query -W -f='package ${{Package}} ${{Status}}\\n' {' '.join(PACKAGES)} 2>&1; "
    'echo "tailscale0 $(ip -4 -o addr show dev tailscale0 2>/dev/null | sed -n "s/.* inet \\([^ ]*\\).*/\\1/p")"'
)


class HostsGone(Exception):
    """A run failed and the sandbox is no longer fully up: someone else tore it down or reset it."""


@dataclass
class Run:
    """One timed command: wall seconds, exit status, output, and what it reported doing."""

    seconds: float
    rc: int
    out: str
    ran: list[str] = field(default_factory=list)  # doit: task names that executed
    changes: int = 0  # doit: sum of "N change(s)"; ansible: sum of changed= over the recap
    failed: int = 0  # ansible: failed + unreachable over the recap


# ---------------------------------------------------------------------------------------------------------
# preconditions and the shared sandbox


def unavailable_reason() -> str | None:
    """Why this benchmark cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (the sandbox runs systemd-nspawn in network namespaces)"
    cache = Path(os.environ.get("HOMELAB_SANDBOX_CACHE", "/var/cache/homelab/sandbox")) / "bookworm-base"
    if not cache.is_dir():
        return f"sandbox base image {cache} missing (run `make setup` or `python -m homelab.sandbox image`)"
    if _ansible_playbook() is None:
        return "ansible-playbook not found (pip install ansible-core into .venv)"
    from homelab.sandbox import api

    return api.unavailable_reason()


def _ansible_playbook() -> str | None:
    local = Path(sys.executable).parent / "ansible-playbook"
    return str(local) if local.exists() else shutil.which("ansible-playbook")


def _sandbox_up() -> bool:
    from homelab.sandbox import api

    return all(status.running for status in api.status(REPO))


def _timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def _reset() -> float:
    from homelab.sandbox import api
    from homelab.sandbox.progress import quiet_log

    seconds = _timed(lambda: api.reset(REPO, log=quiet_log))
    _fresh_netns_sysctls()
    return seconds


def _ensure_up() -> float:
    from homelab.sandbox import api
    from homelab.sandbox.progress import quiet_log

    return _timed(lambda: api.ensure_up(REPO, log=quiet_log))


def _fresh_netns_sysctls() -> None:
    """Put the net.* sysctls back to a new network namespace's values (0).

    They live in each host's network namespace, which a reset keeps (it wipes and reboots the file system
    only): without this, the second fresh converge would find them already set by the first.
    """
    config = REPO / "build" / "sandbox" / "ssh" / "config"
    for entry in _inventory()["hosts"]:
        subprocess.run(["ssh", "-F", str(config), entry["name"], "sysctl -q -w " + " ".join(f"{k}=0" for k in SYSCTLS)],
                       capture_output=True, stdin=subprocess.DEVNULL, check=False, timeout=60)


def _check_hosts(what: str, run: Run) -> None:
    """Raise HostsGone when a failed run coincides with a sandbox that is no longer up; else SystemExit."""
    if not _sandbox_up():
        last = [line for line in run.out.splitlines() if line.strip()][-1:] or ["(no output)"]
        raise HostsGone(f"{what} failed ({last[0].strip()[:200]}) and the sandbox is no longer up")
    lines = run.out.splitlines()
    # ansible: the failing task's header and its "fatal:" line; doit: its FAILED lines
    picked = [f"{lines[i - 1]}\n{line}" if i and lines[i - 1].startswith("TASK") else line
              for i, line in enumerate(lines) if line.startswith(("fatal:", "  FAILED", "failed:"))]
    detail = "\n".join(picked) or run.out[-3000:]
    raise SystemExit(f"hosts bench: {what} failed (exit {run.rc}):\n{detail}\n{run.out[-800:]}")


# ---------------------------------------------------------------------------------------------------------
# the homelab side: a temporary copy of the repository with its own build directory


class Workspace:
    """A copy of the checkout, a build directory and an identity directory, all temporary."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = root / "repo"
        self.build = root / "build"
        skip = shutil.ignore_patterns("build", ".venv", ".git", "__pycache__", "sandbox.age", ".mypy_cache",
                                      ".ruff_cache", ".pytest_cache", ".hypothesis")
        shutil.copytree(REPO, self.repo, ignore=skip)
        # runstage.ssh_config is <build>/<env>/ssh/config: point it at the one sandbox of this machine
        (self.build / "sandbox").mkdir(parents=True)
        (self.build / "sandbox" / "ssh").symlink_to(REPO / "build" / "sandbox" / "ssh")
        self.env = dict(os.environ, HOMELAB_REPO=str(self.repo), HOMELAB_ENV="sandbox",
                        HOMELAB_BUILD_DIR=str(self.build), HOMELAB_CONFIG_DIR=str(root / "config"),
                        HOMELAB_HOST_RUNNER="homelab.hostrun")
        for name in ("HOMELAB_KUBECONFIG", "HOMELAB_VERBOSE", "HOMELAB_DEPLOYS_DIR"):
            self.env.pop(name, None)

    @property
    def stamps(self) -> Path:
        return self.build / "sandbox" / "stamps"

    def doit(self, *args: str) -> Run:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "doit", *args], cwd=self.repo, env=self.env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        seconds = time.perf_counter() - started
        out = proc.stdout + proc.stderr
        ran = [line[2:].strip() for line in proc.stdout.splitlines() if line.startswith("> ")]
        changes = sum(int(m) for m in re.findall(r" converged, (\d+) change\(s\)", proc.stdout))
        return Run(seconds, proc.returncode, out, ran=ran, changes=changes)

    def set_cpus(self, host: str, cpus: int) -> None:
        """Edit ``hardware.cpus`` of one host in the copy's hosts/sandbox.yaml (text edit, nothing else moves)."""
        path = self.repo / "hosts" / "sandbox.yaml"
        text = path.read_text(encoding="utf-8")
        start = text.index(f"- name: {host}\n")
        end = text.find("\n  - name:", start + 1)
        end = len(text) if end < 0 else end
        entry, count = re.subn(r"(hardware: \{cpus: )\d+", rf"\g<1>{cpus}", text[start:end], count=1)
        if count != 1:
            raise SystemExit(f"hosts bench: no `hardware: {{cpus: N` in the entry of {host}; update set_cpus")
        path.write_text(text[:start] + entry + text[end:], encoding="utf-8")

    def write_ansible_secrets(self, dest: Path) -> None:
        """The same k3s token and Tailscale auth key homelab used, as a 0600 vars file for ansible-playbook."""
        code = (
            "import json, os, sys\n"
            "from homelab.paths import layout\nfrom homelab.secrets import Secrets\n"
            "v = dict(Secrets(layout('sandbox')).load())\n"
            "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\n"
            "with os.fdopen(fd, 'w') as fh:\n"
            "    json.dump({'k3s_token': v['k3s.token'], 'tailscale_auth_key': v['tailscale.auth_key']}, fh)\n"
        )
        subprocess.run([sys.executable, "-c", code, str(dest)], env=self.env, cwd=self.repo, check=True,
                       stdin=subprocess.DEVNULL)


def _inventory() -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load((REPO / "hosts" / "sandbox.yaml").read_text(encoding="utf-8"))
    return data


def _host_tasks(host: str) -> list[str]:
    """The stage tasks of one host, in graph order (``vm:sbx-worker-02`` ...)."""
    from homelab.hostops.hostdata import stages_for_host

    return [f"{stage}:{host}" for stage in stages_for_host(_inventory(), host)]


def _all_host_tasks() -> list[str]:
    return [task for entry in _inventory()["hosts"] for task in _host_tasks(entry["name"])]


# ---------------------------------------------------------------------------------------------------------
# the Ansible side


class Ansible:
    """ansible-playbook on bench/peers/ansible/site.yml with a generated inventory and the secrets file."""

    def __init__(self, root: Path, secrets: Path) -> None:
        self.inventory = root / "ansible-inventory.yml"
        self.secrets = secrets
        self.control = root / "cp"
        self.control.mkdir(mode=0o700)
        subprocess.run([sys.executable, str(PEER / "inventory.py"),
                        "--hosts-file", str(REPO / "hosts" / "sandbox.yaml"),
                        "--ssh-config", str(REPO / "build" / "sandbox" / "ssh" / "config"),
                        "-o", str(self.inventory)], check=True, stdin=subprocess.DEVNULL)
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(PEER / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.control), ANSIBLE_LOCAL_TEMP=str(root / "ansible-tmp"))

    def run(self) -> Run:
        argv = [str(_ansible_playbook()), "-i", str(self.inventory), str(PEER / "site.yml"), "-e", f"@{self.secrets}"]
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
        seconds = time.perf_counter() - started
        recap = re.findall(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                           proc.stdout, flags=re.M)
        changes = sum(int(r[2]) for r in recap)
        failed = sum(int(r[3]) + int(r[4]) for r in recap)
        return Run(seconds, proc.returncode, proc.stdout + proc.stderr, changes=changes, failed=failed)

    def close(self) -> None:
        """End the persistent SSH connections this benchmark's ansible runs opened."""
        for socket in self.control.glob("*"):
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "sandbox"], capture_output=True,
                           stdin=subprocess.DEVNULL, check=False, timeout=10)


# ---------------------------------------------------------------------------------------------------------
# end state


def snapshot() -> dict[str, list[str]]:
    """Per host: one line per file, sysctl, unit, package and the tailscale0 address (digests only)."""
    config = REPO / "build" / "sandbox" / "ssh" / "config"
    result: dict[str, list[str]] = {}
    for entry in _inventory()["hosts"]:
        proc = subprocess.run(["ssh", "-F", str(config), entry["name"], SNAPSHOT_SCRIPT], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, check=False, timeout=60)
        result[entry["name"]] = proc.stdout.splitlines() if proc.returncode == 0 else [f"ssh failed: {proc.stderr}"]
    return result


def compare(left: dict[str, list[str]], right: dict[str, list[str]]) -> list[str]:
    """``host: homelab LINE | ansible LINE`` for every item that differs."""
    out = []
    for host in sorted(set(left) | set(right)):
        a, b = left.get(host, []), right.get(host, [])
        for x, y in zip(a, b, strict=False):
            if x != y:
                out.append(f"{host}: homelab {x} | ansible {y}")
        if len(a) != len(b):
            out.append(f"{host}: {len(a)} items from homelab, {len(b)} from ansible")
    return out


# ---------------------------------------------------------------------------------------------------------
# the measurement


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(f"[hosts bench] {text}", file=sys.stderr, flush=True)


@contextmanager
def _workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="homelab-hosts-"))
    os.chmod(root, 0o700)  # holds an age identity and, for ansible, the secrets vars file
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(noop_runs: int, ansible_noop_runs: int, rounds: int, quiet: bool) -> dict[str, Any]:
    """One complete pass over every figure; raises HostsGone when the sandbox vanished under it."""

    def say(text: str) -> None:
        _say(quiet, text)

    all_tasks = _all_host_tasks()
    one_host = _host_tasks(CHANGED_HOST)
    with _workdir() as root:
        ws = Workspace(root)
        say("resetting the sandbox hosts to the base image")
        reset_s = _reset()

        say("homelab fresh converge")
        fresh = ws.doit(*STAGES)
        if fresh.rc != 0:
            _check_hosts("homelab fresh converge", fresh)
        homelab_state = snapshot()

        say(f"homelab no-op with stamps x{noop_runs}")
        noops = [ws.doit(*STAGES) for _ in range(noop_runs)]
        noop_did_work = [r.ran for r in noops if r.ran or r.rc != 0]

        say("homelab no-op without stamps")
        shutil.rmtree(ws.stamps)
        nostamps = ws.doit(*STAGES)
        if nostamps.rc != 0:
            _check_hosts("homelab run without stamps", nostamps)

        say(f"one-host change vs single-host run, {rounds} round(s)")
        cpus = 4
        changes: list[Run] = []
        singles: list[Run] = []
        for i in range(rounds):
            order = ("change", "single") if i % 2 == 0 else ("single", "change")
            for kind in order:
                cpus += 1
                ws.set_cpus(CHANGED_HOST, cpus)
                run = ws.doit(*STAGES) if kind == "change" else ws.doit(*one_host)
                if run.rc != 0:
                    _check_hosts(f"{kind} run", run)
                (changes if kind == "change" else singles).append(run)

        say("measuring one sandbox ensure_up on running hosts (what the engine's vm task would add)")
        ensure_up_s = _ensure_up()

        say("resetting the sandbox hosts to the base image")
        reset2_s = _reset()
        secrets = root / "ansible-secrets.json"
        ws.write_ansible_secrets(secrets)
        ansible = Ansible(root, secrets)
        try:
            say("ansible fresh converge")
            a_fresh = ansible.run()
            if a_fresh.rc != 0 or a_fresh.failed:
                _check_hosts("ansible fresh converge", a_fresh)
            ansible_state = snapshot()
            say(f"ansible no-op x{ansible_noop_runs}")
            a_noops = [ansible.run() for _ in range(ansible_noop_runs)]
            for run in a_noops:
                if run.rc != 0 or run.failed:
                    _check_hosts("ansible no-op", run)
        finally:
            ansible.close()
            secrets.unlink(missing_ok=True)

    noop_s = statistics.median(r.seconds for r in noops)
    a_noop_s = statistics.median(r.seconds for r in a_noops)
    change_s = statistics.median(r.seconds for r in changes)
    single_s = statistics.median(r.seconds for r in singles)
    differences = compare(homelab_state, ansible_state)
    return {
        "hosts": len(homelab_state),
        "host_tasks": len(all_tasks),
        "reset_s": [round(reset_s, 2), round(reset2_s, 2)],
        "homelab": {
            "fresh": {"seconds": round(fresh.seconds, 2), "ran": len(fresh.ran), "changes": fresh.changes},
            "noop_stamps": {"median_s": round(noop_s, 3), "min_s": round(min(r.seconds for r in noops), 3),
                            "max_s": round(max(r.seconds for r in noops), 3), "runs": len(noops),
                            "runs_that_did_work": len(noop_did_work)},
            "noop_without_stamps": {"seconds": round(nostamps.seconds, 2), "ran": len(nostamps.ran),
                                    "changes": nostamps.changes},
            "one_host_change": {"median_s": round(change_s, 2), "samples_s": [round(r.seconds, 2) for r in changes],
                                "ran": sorted(changes[-1].ran), "only_that_host": all(
                                    sorted(r.ran) == sorted(one_host) for r in changes)},
            "single_host_run": {"median_s": round(single_s, 2), "samples_s": [round(r.seconds, 2) for r in singles],
                                "ran": sorted(singles[-1].ran), "tasks_named": one_host},
            "skipped_ensure_up_s": round(ensure_up_s, 2),
        },
        "ansible": {
            "fresh": {"seconds": round(a_fresh.seconds, 2), "changed": a_fresh.changes},
            "noop": {"median_s": round(a_noop_s, 2), "samples_s": [round(r.seconds, 2) for r in a_noops],
                     "changed": [r.changes for r in a_noops]},
        },
        "ratios": {
            "ansible_noop_over_homelab_noop": round(a_noop_s / noop_s, 1),
            "ansible_noop_target_min": NOOP_TARGET,
            "one_host_change_over_single_host": round(change_s / single_s, 2),
            "one_host_target_max": ONE_HOST_TARGET,
            "ansible_noop_over_homelab_noop_without_stamps": round(a_noop_s / nostamps.seconds, 2),
            "ansible_fresh_over_homelab_fresh": round(a_fresh.seconds / fresh.seconds, 2),
        },
        "end_state": {"items_compared": sum(len(v) for v in homelab_state.values()), "differences": differences},
    }


def run_with_retries(args: argparse.Namespace) -> dict[str, Any]:
    """Bring the sandbox up if needed, measure (starting over if hosts vanish), restore the sandbox's state."""
    was_up = _sandbox_up()
    load_before = os.getloadavg()
    if not was_up:
        _say(args.json, "the sandbox is down: bringing it up (it is torn down again at the end)")
        _ensure_up()
    try:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                result = measure(args.noop_runs, args.ansible_noop_runs, args.rounds, args.json)
                break
            except HostsGone as exc:
                if attempt == ATTEMPTS:
                    raise SystemExit(f"hosts bench: {exc}; gave up after {ATTEMPTS} attempts") from None
                _say(args.json, f"{exc}: someone else is using the sandbox; waiting {RETRY_WAIT_S:.0f}s, then "
                                "starting over")
                time.sleep(RETRY_WAIT_S)
                _ensure_up()
    finally:
        if not was_up:
            from homelab.sandbox import api
            from homelab.sandbox.progress import quiet_log

            api.down(REPO, log=quiet_log)
    result["attempts"] = attempt
    result["sandbox_was_up"] = was_up
    result["loadavg_1m"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    result["cpus"] = os.cpu_count()
    return result


def print_table(r: dict[str, Any]) -> None:
    """The human-readable report."""
    h, a, q = r["homelab"], r["ansible"], r["ratios"]
    print(f"host layer on {r['hosts']} sandbox hosts ({r['host_tasks']} stage tasks): homelab (doit + pyinfra) "
          f"vs the Ansible peer (bench/peers/ansible)")
    print(f"  machine: {r['cpus']} CPUs, load average {r['loadavg_1m'][0]} at start, {r['loadavg_1m'][1]} at end "
          "(shared: timings move with it)")
    print(f"  {'':<34}{'seconds':>9}  notes")
    print(f"  {'homelab fresh':<34}{h['fresh']['seconds']:>9.2f}  {h['fresh']['ran']} tasks ran, "
          f"{h['fresh']['changes']} changes")
    n = h["noop_stamps"]
    print(f"  {'homelab no-op (stamps)':<34}{n['median_s']:>9.3f}  median of {n['runs']} (min {n['min_s']:.3f}, "
          f"max {n['max_s']:.3f}); {n['runs_that_did_work']} run(s) did work; no host contacted")
    w = h["noop_without_stamps"]
    print(f"  {'homelab no-op without stamps':<34}{w['seconds']:>9.2f}  {w['ran']} tasks ran, "
          f"{w['changes']} changes (pyinfra's own no-op)")
    c, s = h["one_host_change"], h["single_host_run"]
    print(f"  {'homelab one-host change':<34}{c['median_s']:>9.2f}  median of {c['samples_s']}; ran "
          f"{len(c['ran'])}: {', '.join(c['ran'])}" + ("" if c["only_that_host"] else "  (NOT only that host)"))
    print(f"  {'homelab single-host run':<34}{s['median_s']:>9.2f}  median of {s['samples_s']}; "
          f"`doit {' '.join(s['tasks_named'])}`")
    print(f"  {'ansible fresh':<34}{a['fresh']['seconds']:>9.2f}  changed={a['fresh']['changed']}")
    print(f"  {'ansible no-op':<34}{a['noop']['median_s']:>9.2f}  median of {a['noop']['samples_s']}; "
          f"changed={a['noop']['changed']}")
    print("  ratios")
    print(f"    ansible no-op / homelab no-op          {q['ansible_noop_over_homelab_noop']:>8.1f}x  "
          f"(target >= {q['ansible_noop_target_min']:.0f}x)")
    print(f"    one-host change / single-host run      {q['one_host_change_over_single_host']:>8.2f}x  "
          f"(target <= {q['one_host_target_max']}x)")
    print(f"    ansible no-op / no-op without stamps   {q['ansible_noop_over_homelab_noop_without_stamps']:>8.2f}x  "
          "(both contact every host)")
    print(f"    ansible fresh / homelab fresh          {q['ansible_fresh_over_homelab_fresh']:>8.2f}x")
    e = r["end_state"]
    if e["differences"]:
        print(f"  end state: {len(e['differences'])} of {e['items_compared']} items differ after the two fresh "
              "converges:")
        for line in e["differences"]:
            print(f"    {line}")
    else:
        print(f"  end state: identical after both fresh converges ({e['items_compared']} items: files by digest, "
              "mode and owner; units; sysctls; packages; tailscale0)")
    print(f"  notes: sandbox resets took {r['reset_s'][0]:.1f}s and {r['reset_s'][1]:.1f}s (not counted); the engine's "
          f"own sandbox ensure_up, skipped here, costs {h['skipped_ensure_up_s']:.2f}s per vm task when hosts are up"
          + (f"; {r['attempts']} attempts (hosts vanished)" if r["attempts"] > 1 else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--noop-runs", type=int, default=5, help="homelab no-op runs (median; default 5)")
    parser.add_argument("--ansible-noop-runs", type=int, default=2, help="ansible no-op runs (median; default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="one-host change / single-host run pairs (median; default 3)")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        if args.json:
            print(json.dumps({"skipped": reason}))
        else:
            print(f"hosts bench: skipped: {reason}")
        return
    result = run_with_retries(args)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
