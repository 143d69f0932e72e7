"""Custom pyinfra operations for the host stages: where every per-host decision is made.

The deploy bodies in ``deploys/<stage>`` are straight lists of calls to these operations. Each operation reads
facts (``homelab.hostops.facts``) and host data, yields the shell commands that would converge the host, and
calls ``host.noop(reason)`` when nothing needs to change.

Stand-ins. The sandbox inventory's ``standins:`` map reaches every host as host data ``standins``. Two
arguments every operation here understands decide what a stand-in does to it:

- ``unless_standin="nvidia"``: the real operation. Where that stand-in applies it yields nothing and reports
  ``stand-in nvidia: would ...`` instead (a planned operation that is never executed).
- ``when_standin="tailscale"``: an operation that only exists to build the stand-in; elsewhere a no-op.

Files are written by sending their content on the stdin of one remote command (``mktemp`` + ``mv``): no
upload to a shared temp directory, no secret in argv, and a 0600 file from the first byte.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pyinfra.api.command import QuoteString, StringCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.api.operation import OperationMeta, operation
from pyinfra.context import host, state

from homelab.hostops import facts
from homelab.hostops.secretvalue import Secret

Commands = Generator[StringCommand | str, None, None]

STANDIN_PREFIX = "stand-in"
PENDING = "pending-tailscale-ip"  # stands for an address a dry run cannot know yet
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_VALUE = re.compile(r"^[A-Za-z0-9.,/:_*-]*$")
_UFW_RULE = re.compile(r"^(allow|deny|limit) [A-Za-z0-9./: -]+$")


class HostMismatch(OperationError):
    """The host is not what the inventory says (OS release, CPUs, memory); one line per problem."""

    def __init__(self, host_name: str, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.host_name = host_name
        self.problems = problems


# ---------------------------------------------------------------------------------------------------------
# helpers (not operations): stand-in lookup and the file primitive every file-writing operation uses


def standin(key: str | None) -> str | None:
    """The inventory's description of stand-in ``key`` when it applies to the current host, else None."""
    if not key:
        return None
    standins = host.data.get("standins") or {}
    value = standins.get(key)
    return str(value) if value else None


def _skip_for_standins(when_standin: str | None, unless_standin: str | None, action: str) -> bool:
    """Apply the two stand-in switches; True means the caller must yield nothing."""
    if when_standin and not standin(when_standin):
        host.noop(f"only with stand-in {when_standin}, which this inventory does not use")
        return True
    described = standin(unless_standin)
    if described:
        host.noop(f"{STANDIN_PREFIX} {unless_standin}: would {action} ({described})")
        return True
    return False


def _file_bytes(content: str) -> bytes:
    # pyinfra's stdin writer ends the last line with a newline; hash what actually lands on the host.
    return (content if content.endswith("\n") else content + "\n").encode()


def write_command(
    path: str, content: str, mode: str, owner: str = "root", group: str = "root"
) -> StringCommand:
    """One remote command that writes ``content`` (sent on stdin) to ``path`` atomically with ``mode``.

    mktemp creates the temporary file 0600 next to the target, so even a secret is never readable by
    anyone else, and mv makes the change atomic for readers such as systemd or k3s.
    """
    script = (
        'set -e; umask 022; mkdir -p "$(dirname "$1")"; t=$(mktemp "$1.XXXXXX"); '
        f'cat > "$t"; chown {owner}:{group} "$t"; chmod {mode} "$t"; mv -f "$t" "$1"'
    )
    return StringCommand(
        "sh", "-c", QuoteString(script), "homelab-write", QuoteString(path), _stdin=content
    )


def _put_file(path: str, content: str, mode: str, owner: str = "root", group: str = "root") -> Generator[
    StringCommand, None, bool
]:
    """Yield what makes ``path`` hold ``content`` with ``mode``/owner; return whether anything changes."""
    current = host.get_fact(facts.FileState, path=path)
    wanted = hashlib.sha256(_file_bytes(content)).hexdigest()
    if not current or current.get("sha256") != wanted:
        yield write_command(path, content, mode, owner, group)
        return True
    changed = False
    if current.get("owner") != owner or current.get("group") != group:
        yield StringCommand("chown", f"{owner}:{group}", QuoteString(path))
        changed = True
    if current.get("mode") != mode.lstrip("0").rjust(3, "0"):
        yield StringCommand("chmod", mode, QuoteString(path))
        changed = True
    return changed


def _trigger_fired(trigger: OperationMeta | bool) -> bool:
    if isinstance(trigger, bool):
        return trigger
    if trigger.is_complete():
        return trigger.did_change()
    # Prepare phase of a dry run: pyinfra has already evaluated the trigger's change (without executing).
    return bool(trigger._maybe_is_change)


# unattended-upgrades (which we enable) and apt-daily may hold the dpkg lock when we run: wait, don't fail.
_APT = "apt-get -o DPkg::Lock::Timeout=300"


def _apt_install(packages: Sequence[str]) -> Generator[str, None, None]:
    yield f"{_APT} update -q"
    yield (
        f"env DEBIAN_FRONTEND=noninteractive {_APT} install -y -q --no-install-recommends "
        + " ".join(shlex.quote(p) for p in packages)
    )


# ---------------------------------------------------------------------------------------------------------
# files and secrets


@operation()
def content(
    path: str,
    text: str,
    mode: str = "644",
    owner: str = "root",
    group: str = "root",
    present: bool = True,
    when_standin: str | None = None,
    unless_standin: str | None = None,
    standin_variants: Mapping[str, str] | None = None,
) -> Commands:
    """A file with exactly ``text`` (or no file when ``present`` is False).

    ``standin_variants`` maps a stand-in to the text written instead where that stand-in applies (a
    configuration that must say the hardware behind it is missing).
    """
    if _skip_for_standins(when_standin, unless_standin, f"write {path}"):
        return
    for key, variant in (standin_variants or {}).items():
        described = standin(key)
        if described:
            text = variant
            host.noop(f"{STANDIN_PREFIX} {key}: {path} gets its stand-in variant ({described})")
            break
    if not present:
        if host.get_fact(facts.FileState, path=path):
            yield StringCommand("rm", "-f", QuoteString(path))
        else:
            host.noop(f"{path} is absent")
        return
    changed = yield from _put_file(path, text, mode, owner, group)
    if not changed:
        host.noop(f"{path} is up to date")


@operation()
def secret_file(
    path: str, secret: str, mode: str = "600", owner: str = "root", group: str = "root"
) -> Commands:
    """A file holding the secret named ``secret`` (a key of host data ``homelab_secrets``), mode 0600.

    The value goes to the host on stdin only; facts compare digests, so neither the value nor the file
    content appears in a command line, a log line or a fixture.
    """
    secrets = host.data.get("homelab_secrets") or {}
    value = secrets.get(secret)
    if not isinstance(value, Secret):
        raise OperationError(f"secret {secret} is not available to this stage")
    current = host.get_fact(facts.FileState, path=path)
    if not current or current.get("sha256") != value.file_sha256():
        yield write_command(path, value.reveal(), mode, owner, group)
        return
    changed = False
    if current.get("owner") != owner or current.get("group") != group:
        yield StringCommand("chown", f"{owner}:{group}", QuoteString(path))
        changed = True
    if current.get("mode") != mode:
        yield StringCommand("chmod", mode, QuoteString(path))
        changed = True
    if not changed:
        host.noop(f"{path} holds {secret} (mode {mode})")


@operation()
def file_mode(path: str, mode: str, missing_reason: str = "") -> Commands:
    """Mode of a file some program writes itself (k3s writes its kubeconfig); absent is not an error."""
    current = host.get_fact(facts.FileState, path=path)
    if not current:
        host.noop(f"{path} does not exist yet" + (f": {missing_reason}" if missing_reason else ""))
        return
    if current.get("mode") != mode:
        yield StringCommand("chmod", mode, QuoteString(path))
    else:
        host.noop(f"{path} has mode {mode}")


@operation()
def file_from_repo(src: str, path: str, mode: str = "644", missing_reason: str = "") -> Commands:
    """Copy a file of this repository to the host when the repository has it (a later issue may add it)."""
    source = Path(src)
    if not source.is_file():
        host.noop(f"{src} is not in this repository yet: {missing_reason or 'nothing to copy'}")
        return
    changed = yield from _put_file(path, source.read_text(encoding="utf-8"), mode)
    if not changed:
        host.noop(f"{path} is up to date")


@operation()
def environment(values: Mapping[str, str], path: str = "/etc/environment") -> Commands:
    """``KEY=value`` lines in /etc/environment (pam_env syntax: no quotes, no export)."""
    current = host.get_fact(facts.EnvironmentValues, path=path, keys=sorted(values))
    changed = False
    for key in sorted(values):
        value = values[key]
        if not _ENV_KEY.match(key) or not _ENV_VALUE.match(value):
            raise OperationError(f"cannot write {key}={value!r} to {path}")
        if current.get(key) == value:
            continue
        changed = True
        if key in current:
            yield StringCommand("sed", "-i", QuoteString(f"s|^{key}=.*|{key}={value}|"), QuoteString(path))
        else:
            # start on a fresh line even if the file's last line has no newline
            append = (
                'if [ -s "$1" ] && [ -n "$(tail -c 1 "$1")" ]; then echo >> "$1"; fi; '
                f'printf "%s\\n" "{key}={value}" >> "$1"'
            )
            yield StringCommand("sh", "-c", QuoteString(append), "homelab-env", QuoteString(path))
    if not changed:
        host.noop(f"{', '.join(sorted(values))} already set in {path}")


# ---------------------------------------------------------------------------------------------------------
# packages and services


@operation()
def apt_packages(
    packages: Sequence[str],
    repo: Mapping[str, str] | None = None,
    require_components: Mapping[str, Sequence[str]] | None = None,
    foreign_architectures: Sequence[str] = (),
    unless_standin: str | None = None,
) -> Commands:
    """Debian packages, optionally from an extra apt repository with its own signing key.

    ``repo``: ``{"name", "key_url", "keyring", "line", "dearmor": "yes"|""}``; ``{id}`` and ``{codename}`` in
    ``key_url`` and ``line`` become the host's os-release values (the repo URL depends on the release).
    ``require_components`` (by os-release id: ``{"ubuntu": ["multiverse"]}``) and ``foreign_architectures``
    (``i386``) are enabled
    before installing. apt-get update runs only when something is missing, so a converged host stays a
    no-op however old its package lists are.
    """
    installed_list: list[str] = host.get_fact(facts.InstalledPackages, packages=list(packages))
    installed = set(installed_list)
    missing = [p for p in packages if p not in installed]
    arch_list: list[str] = host.get_fact(facts.ForeignArchitectures)
    arches = set(arch_list)
    missing_arches = [a for a in foreign_architectures if a not in arches]
    if not missing and not missing_arches:
        host.noop(f"installed: {', '.join(packages)}")
        return
    action = f"install {', '.join(missing or packages)}"
    if repo:
        action = f"add the {repo['name']} apt repository and " + action
    if missing_arches:
        action = f"enable dpkg architecture {', '.join(missing_arches)} and " + action
    if _skip_for_standins(None, unless_standin, action):
        return
    for arch in missing_arches:
        yield StringCommand("dpkg", "--add-architecture", arch)
    ident = host.get_fact(facts.HostIdentity)
    if require_components:
        component_list: list[str] = host.get_fact(facts.AptComponents)
        enabled = set(component_list)
        for component in require_components.get(ident.get("id", ""), ()):
            if component not in enabled:
                yield StringCommand("add-apt-repository", "-y", "-n", component)
    if repo:
        values = {"id": ident.get("id", ""), "codename": ident.get("codename", "")}
        key_url = repo["key_url"].format(**values)
        keyring = repo["keyring"]
        if not host.get_fact(facts.FileState, path=keyring):
            # Download to a temporary file first: a failed download must not leave an empty keyring that
            # the next run would take for the real one.
            dearmor = 'gpg --dearmor < "$t" > "$t.gpg"; mv -f "$t.gpg" "$t"; ' if repo.get("dearmor") else ""
            script = (
                'set -e; mkdir -p "$(dirname "$1")"; t=$(mktemp "$1.XXXXXX"); trap \'rm -f "$t" "$t.gpg"\' EXIT; '
                f'curl -fsSL -o "$t" "$2"; {dearmor}chmod 644 "$t"; mv -f "$t" "$1"; trap - EXIT'
            )
            yield StringCommand("sh", "-c", QuoteString(script), "homelab-key", QuoteString(keyring),
                                QuoteString(key_url))
        list_path = f"/etc/apt/sources.list.d/{repo['name']}.list"
        yield from _put_file(list_path, repo["line"].format(**values) + "\n", "644")
    yield from _apt_install(missing or list(packages))


@operation()
def service(
    unit: str,
    running: bool = True,
    enabled: bool = True,
    restart_on: Sequence[OperationMeta | bool] = (),
    when_standin: str | None = None,
    unless_standin: str | None = None,
) -> Commands:
    """A systemd unit enabled and running; restarted (after daemon-reload) when a ``restart_on`` op changed.

    The restart decision is made here from the trigger operations' change status, so a dry run plans a
    restart only when it would really happen.
    """
    if _skip_for_standins(when_standin, unless_standin, f"enable and start {unit}"):
        return
    current = host.get_fact(facts.UnitState, unit=unit)
    fired = any(_trigger_fired(t) for t in restart_on)
    changed = False
    if fired:
        yield "systemctl daemon-reload"
        if running:
            yield StringCommand("systemctl", "restart", unit)
        changed = True
    elif running and current.get("active") != "active":
        yield StringCommand("systemctl", "start", unit)
        changed = True
    elif not running and current.get("active") == "active":
        yield StringCommand("systemctl", "stop", unit)
        changed = True
    is_enabled = current.get("enabled") in ("enabled", "static", "enabled-runtime", "alias")
    if enabled and not is_enabled:
        yield StringCommand("systemctl", "enable", unit)
        changed = True
    elif not enabled and current.get("enabled") == "enabled":
        yield StringCommand("systemctl", "disable", unit)
        changed = True
    if not changed:
        run_word = "running" if running else "stopped"
        host.noop(f"{unit} is {run_word} and {'enabled' if enabled else 'disabled'}")


# ---------------------------------------------------------------------------------------------------------
# the base OS (vm stage)


@operation()
def host_matches_inventory(os_id: str, version_id: str, cpus: int, memory_gib: float) -> Commands:
    """Fail the stage when the host is not what the inventory describes; changes nothing.

    CPUs and memory are compared only outside containers: a systemd-nspawn host sees the build machine's.
    MemTotal is below the installed size (kernel and firmware reserve some), hence the 15 % allowance.
    """
    ident = host.get_fact(facts.HostIdentity)
    problems: list[str] = []
    if ident.get("id") != os_id or ident.get("version_id") != version_id:
        problems.append(
            f"unexpected OS {ident.get('id') or '?'} {ident.get('version_id') or '?'} "
            f"(inventory os: {os_id} {version_id})"
        )
    container = host.get_fact(facts.ContainerKind)
    if container == "none":
        if ident.get("cpus") != cpus:
            problems.append(f"{ident.get('cpus')} CPUs (inventory hardware.cpus: {cpus})")
        mem_kib = ident.get("mem_kib") or 0
        wanted_kib = memory_gib * 1024 * 1024
        if not 0.85 * wanted_kib <= mem_kib <= 1.10 * wanted_kib:
            problems.append(
                f"{mem_kib / 1024 / 1024:.1f} GiB memory (inventory hardware.memory_gib: {memory_gib})"
            )
    if problems:
        raise HostMismatch(str(host.name), problems)
    hardware = (
        f"{cpus} CPUs, {memory_gib} GiB"
        if container == "none"
        else f"hardware not compared inside a {container} container"
    )
    host.noop(f"host matches inventory: {os_id} {version_id}, {hardware}")
    yield from ()


@operation()
def sysctl_runtime(values: Mapping[str, str], persisted_in: str = "/etc/sysctl.d") -> Commands:
    """Apply sysctls now, where the host lets us; the persisted file covers boot.

    Keys the host cannot write (``vm.*``/``fs.*`` are read-only in a systemd-nspawn sandbox) or does not have
    (``net.bridge.*`` before br_netfilter is loaded) are reported, not forced.
    """
    current = host.get_fact(facts.SysctlState, keys=sorted(values))
    changed = False
    for key in sorted(values):
        wanted = str(values[key])
        info = current.get(key) or {"state": "missing", "value": None}
        if info["value"] == wanted:
            continue
        if info["state"] == "rw":
            yield StringCommand("sysctl", "-q", "-w", f"{key}={wanted}")
            changed = True
        elif info["state"] == "ro":
            host.noop(f"{STANDIN_PREFIX} sysctl: {key}={wanted} not applied, read-only on this host "
                      f"(kept in {persisted_in} for boot)")
        else:
            host.noop(f"{key} does not exist yet (its kernel module is not loaded); kept in {persisted_in}")
    if not changed:
        host.noop("writable sysctls already set")


@operation()
def firewall(enabled: bool, rules: Sequence[str]) -> Commands:
    """ufw enabled with the given ``allow ...`` rules, only where the inventory's network.firewall is true.

    Rules are added before enabling so the SSH rule is in place when ufw starts filtering.
    """
    if not enabled:
        host.noop("firewall not managed (inventory network.firewall: false)")
        return
    for rule in rules:
        if not _UFW_RULE.match(rule):
            raise OperationError(f"not a ufw rule: {rule!r}")
    current = host.get_fact(facts.UfwState)
    if current is None:
        yield from _apt_install(["ufw"])
        current = {"active": False, "rules": []}
    for rule in rules:
        if rule not in current["rules"]:
            yield f"ufw {rule}"
    if not current["active"]:
        yield "ufw --force enable"
    elif all(rule in current["rules"] for rule in rules):
        host.noop("ufw active with all rules")


# ---------------------------------------------------------------------------------------------------------
# tailscale


@operation()
def tailscale_up(authkey_path: str, hostname: str, expected_ip: str | None = None) -> Commands:
    """Join the tailnet unless the node already has a Tailscale IPv4.

    The auth key is read by tailscale from the 0600 file (``--auth-key=file:``), so it never appears in
    argv, the journal or our logs.
    """
    current = host.get_fact(facts.TailscaleIPv4)
    if current:
        if expected_ip and current != expected_ip:
            raise OperationError(f"Tailscale IPv4 is {current}, inventory tailscale_ip says {expected_ip}")
        host.noop(f"tailscale is up with {current}")
        return
    yield StringCommand("tailscale", "up", f"--auth-key=file:{authkey_path}", f"--hostname={hostname}")


TAILSCALE_STANDIN_UNIT = "homelab-tailscale-standin.service"


def tailscale_standin_unit(address: str, mtu: int) -> str:
    """The unit that gives a sandbox host its "Tailscale" address on a tailscale0 interface.

    A dummy link is the natural stand-in; kernels without the dummy driver (the CI machine's) get a
    persistent TUN device instead, which is what tailscaled itself creates.
    """
    create = (
        "ip link show tailscale0 >/dev/null 2>&1 || ip link add tailscale0 type dummy 2>/dev/null "
        "|| ip tuntap add dev tailscale0 mode tun"
    )
    return (
        "# Managed by homelab (deploys/tailscale): STAND-IN for tailscaled in the sandbox.\n"
        "[Unit]\n"
        f"Description=homelab stand-in for Tailscale: tailscale0 with {address}/32 (no tailscaled)\n"
        "After=network.target\n"
        "Before=k3s.service k3s-agent.service\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart=/bin/sh -c '{create}'\n"
        f"ExecStart=ip link set dev tailscale0 mtu {int(mtu)} up\n"
        f"ExecStart=ip -4 addr replace {address}/32 dev tailscale0\n"
        "ExecStop=ip link del tailscale0\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


@operation()
def tailscale_standin(cli_text: str, address: str | None, mtu: int) -> Commands:
    """Where ``standins.tailscale`` applies: the stand-in ``tailscale`` CLI and the tailscale0 unit."""
    described = standin("tailscale")
    if not described:
        host.noop("only with stand-in tailscale, which this inventory does not use")
        return
    if not address or not facts._IPV4.match(address):
        raise OperationError("stand-in tailscale needs the host's tailscale_ip in the inventory")
    host.noop(f"{STANDIN_PREFIX} tailscale: {described}")
    cli = yield from _put_file("/usr/local/bin/tailscale", cli_text, "755")
    unit = yield from _put_file(f"/etc/systemd/system/{TAILSCALE_STANDIN_UNIT}",
                                tailscale_standin_unit(address, mtu), "644")
    if not (cli or unit):
        host.noop("stand-in tailscale CLI and unit are up to date")


# ---------------------------------------------------------------------------------------------------------
# k3s


@operation()
def k3s_install(
    version: str,
    role: str,
    source: str,
    script_url: str | None = None,
    binary_path: str | None = None,
    sha256: str | None = None,
    standin_text: str | None = None,
    target: str = "/usr/local/bin/k3s",
) -> Commands:
    """The pinned k3s binary at ``target``.

    ``source: script`` runs the official install script with INSTALL_K3S_VERSION and without starting or
    enabling anything (the k3s deploy owns the units). ``source: binary`` copies ``binary_path`` (on the host)
    into place. With ``sha256`` the binary is verified. Where ``standins.k3s`` applies, the stand-in
    executable (``standin_text``) is first written to ``binary_path``.
    """
    described = standin("k3s")
    standin_changed = False
    if described:
        if source != "binary" or not binary_path or not standin_text:
            raise OperationError("stand-in k3s needs k3s.install.source binary with a binary_path")
        host.noop(f"{STANDIN_PREFIX} k3s: {described}")
        standin_changed = yield from _put_file(binary_path, standin_text, "755")
    installed = host.get_fact(facts.K3sVersion, path=target)
    if source == "binary":
        if not binary_path:
            raise OperationError("k3s.install.source binary needs k3s.install.binary_path")
        source_state = host.get_fact(facts.FileState, path=binary_path)
        target_state = host.get_fact(facts.FileState, path=target)
        up_to_date = (
            not standin_changed
            and installed == version
            and bool(source_state and target_state)
            and source_state.get("sha256") == target_state.get("sha256")  # type: ignore[union-attr]
        )
        if up_to_date:
            host.noop(f"k3s {version} installed from {binary_path}")
            return
        if sha256:
            yield StringCommand("sh", "-c", QuoteString(f'echo "{sha256}  $1" | sha256sum -c --quiet -'),
                                "homelab-verify", QuoteString(binary_path))
        yield StringCommand("install", "-m", "0755", QuoteString(binary_path), QuoteString(target))
    elif source == "script":
        target_state = host.get_fact(facts.FileState, path=target) if sha256 else None
        if installed == version and (not sha256 or (target_state and target_state.get("sha256") == sha256)):
            host.noop(f"k3s {version} installed")
            return
        if not script_url:
            raise OperationError("k3s.install.source script needs k3s.install.script_url")
        script = "/var/lib/homelab/k3s-install.sh"
        yield StringCommand("mkdir", "-p", "/var/lib/homelab")
        yield StringCommand("curl", "-sfL", "-o", script, QuoteString(script_url))
        # The token and server URL come from config.yaml (token-file), never from the installer's env.
        yield StringCommand(
            "env", f"INSTALL_K3S_VERSION={version}", "INSTALL_K3S_SKIP_START=true",
            "INSTALL_K3S_SKIP_ENABLE=true", f"INSTALL_K3S_EXEC={role}", "sh", script,
        )
        if sha256:
            yield StringCommand("sh", "-c", QuoteString(f'echo "{sha256}  $1" | sha256sum -c --quiet -'),
                                "homelab-verify", QuoteString(target))
    else:
        raise OperationError(f"unknown k3s.install.source {source!r}")


def render_k3s_config(settings: Mapping[str, Any]) -> str:
    """config.yaml text: a header saying who manages it, then the settings in a stable order."""
    header = "# Managed by homelab (deploys/k3s): edits are overwritten on the next converge.\n"
    return header + yaml.safe_dump(dict(settings), sort_keys=False, default_flow_style=False)


@operation()
def k3s_config(
    role: str,
    settings: Mapping[str, Any],
    lan_ip: str,
    api_port: int,
    server_tailscale_ip: str | None = None,
    fallback_tailscale_ip: str | None = None,
    path: str = "/etc/rancher/k3s/config.yaml",
) -> Commands:
    """/etc/rancher/k3s/config.yaml for a server or an agent.

    Adds what depends on the host: its Tailscale IPv4 (node-external-ip, tls-san), the server URL for agents,
    and ``cluster-init`` for a server only when no cluster answers at its API endpoint yet; once written,
    cluster-init stays (the fact reads it back) so the file does not flap after the cluster comes up.
    """
    ts_ip = host.get_fact(facts.TailscaleIPv4) or fallback_tailscale_ip
    if not ts_ip:
        if state.is_executing:
            raise OperationError("no Tailscale IPv4 on this host: converge the tailscale stage first")
        # A dry run before the tailscale stage: plan the file with a marker instead of failing the plan.
        ts_ip = PENDING
    config: dict[str, Any] = {}
    if role == "server":
        cluster = host.get_fact(facts.K3sClusterState, address=lan_ip, port=api_port, config_path=path)
        if cluster["config_cluster_init"] or not cluster["api_answers"]:
            config["cluster-init"] = True
        config["tls-san"] = [ts_ip, lan_ip]
    elif role == "agent":
        if not server_tailscale_ip:
            if state.is_executing:
                raise OperationError("agent needs the server's Tailscale IP (upstream server_tailscale_ip)")
            server_tailscale_ip = PENDING
        config["server"] = f"https://{server_tailscale_ip}:{api_port}"
    else:
        raise OperationError(f"unknown k3s role {role!r}")
    config["node-external-ip"] = ts_ip
    config.update(settings)
    changed = yield from _put_file(path, render_k3s_config(config), "600")
    if not changed:
        host.noop(f"{path} is up to date")


# ---------------------------------------------------------------------------------------------------------
# nfs


def mount_unit_name(where: str) -> str:
    """systemd's unit name for a mount point; only plain paths, so no systemd-escape rules are needed."""
    if not re.match(r"^(/[A-Za-z0-9_]+)+$", where):
        raise OperationError(f"mount point {where!r} needs systemd escaping; use letters, digits and _")
    return where.strip("/").replace("/", "-") + ".mount"


@operation()
def nfs_mount(what: str, where: str, options: str, present: bool = True) -> Commands:
    """A systemd mount unit for an NFS export, enabled and mounted.

    Where ``standins.nfs`` applies (NFS mounts fail inside systemd-nspawn) the unit file is written and
    checked but neither enabled nor started, and the stage reports that as a stand-in.
    """
    unit = mount_unit_name(where)
    unit_path = f"/etc/systemd/system/{unit}"
    if not present:
        if host.get_fact(facts.FileState, path=unit_path):
            yield StringCommand("systemctl", "disable", "--now", unit)
            yield StringCommand("rm", "-f", unit_path)
            yield "systemctl daemon-reload"
        else:
            host.noop(f"no NFS mount on this host ({unit} absent)")
        return
    text = (
        "# Managed by homelab (deploys/nfs).\n"
        "[Unit]\n"
        f"Description=NFS {what} at {where} (k3s etcd snapshots)\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n\n"
        "[Mount]\n"
        f"What={what}\n"
        f"Where={where}\n"
        "Type=nfs\n"
        f"Options={options}\n"
        "TimeoutSec=30\n\n"
        "[Install]\n"
        "WantedBy=remote-fs.target\n"
    )
    wrote = yield from _put_file(unit_path, text, "644")
    described = standin("nfs")
    if described:
        host.noop(f"{STANDIN_PREFIX} nfs: {unit} written, not enabled or started ({described})")
        return
    if wrote:
        yield "systemctl daemon-reload"
    current = host.get_fact(facts.UnitState, unit=unit)
    mounted = current.get("active") == "active"
    if wrote and mounted:
        yield StringCommand("systemctl", "restart", unit)
    elif not mounted:
        yield StringCommand("systemctl", "start", unit)
    if current.get("enabled") != "enabled":
        yield StringCommand("systemctl", "enable", unit)
    elif mounted and not wrote:
        host.noop(f"{what} mounted at {where}")

