"""Facts the host-stage operations decide on: what a host is and what it already has.

Each fact is one shell command on the host and a pure ``process()`` of its output, so a fixture test can feed
recorded output and check the parsed value (``tests/fixtures/hostops/<FactName>/*.json``). Commands are
POSIX sh that also runs on a Debian minbase sandbox host (coreutils, sed, bash, iproute2; no awk/curl/python
assumptions) and never print secret material.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra.api.facts import FactBase

# Names we put into shell commands unquoted must be plain; anything else is a programming error.
_SYSCTL_KEY = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$")
_UNIT = re.compile(r"^[A-Za-z0-9@._\\:-]+$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.:-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def _key_values(output: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in output:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


class SysctlState(FactBase[dict[str, dict[str, Any]]]):
    """Current value and writability of each sysctl key.

    ``{"net.ipv4.ip_forward": {"state": "rw", "value": "1"}, "vm.overcommit_memory": {"state": "ro", ...},
    "net.bridge.bridge-nf-call-iptables": {"state": "missing", "value": None}}``. In a systemd-nspawn
    sandbox ``net.*`` is writable and ``vm.*``/``fs.*`` are read-only; missing keys belong to kernel modules
    that are not loaded (br_netfilter).
    """

    @staticmethod
    def default() -> dict[str, dict[str, Any]]:
        return {}

    def command(self, keys: list[str]) -> str:
        checked = " ".join(_check(_SYSCTL_KEY, key, "sysctl key") for key in keys)
        # `test -w` is false on a read-only /proc/sys mount even for root (access(2) returns EROFS).
        return (
            f"for k in {checked}; do p=/proc/sys/$(printf %s \"$k\" | tr . /); "
            'if [ -e "$p" ]; then if [ -w "$p" ]; then w=rw; else w=ro; fi; '
            'printf \'%s %s %s\\n\' "$k" "$w" "$(tr \'\\t\' \' \' < "$p" 2>/dev/null)"; '
            "else printf '%s missing\\n' \"$k\"; fi; done"
        )

    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for line in output:
            parts = line.split(" ", 2)
            if len(parts) < 2:
                continue
            key, state = parts[0], parts[1]
            value = parts[2].strip() if len(parts) == 3 and state != "missing" else None
            result[key] = {"state": state, "value": value}
        return result


class ContainerKind(FactBase[str]):
    """The container technology the host runs in (``systemd-nspawn``, ``lxc``, ...) or ``none``.

    In a container the CPU count and memory are the build machine's, so comparing them with the inventory's
    ``hardware`` says nothing about the host.
    """

    @staticmethod
    def default() -> str:
        return "none"

    def command(self) -> str:
        return "systemd-detect-virt --container 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        value = output[0].strip() if output else ""
        return value or "none"


class HostIdentity(FactBase[dict[str, Any]]):
    """OS release and size of the host: ``{"id", "version_id", "codename", "cpus", "mem_kib"}``."""

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def command(self) -> str:
        return (
            '( . /etc/os-release 2>/dev/null; echo "id=${ID:-}"; echo "version_id=${VERSION_ID:-}"; '
            'echo "codename=${VERSION_CODENAME:-}" ); '
            'echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"; '
            "sed -n 's/^MemTotal:[[:space:]]*\\([0-9]*\\) kB$/mem_kib=\\1/p' /proc/meminfo"
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        values = _key_values(output)
        result: dict[str, Any] = {
            "id": values.get("id", ""),
            "version_id": values.get("version_id", ""),
            "codename": values.get("codename", ""),
        }
        for key in ("cpus", "mem_kib"):
            raw = values.get(key, "")
            result[key] = int(raw) if raw.isdigit() else None
        return result


class TailscaleIPv4(FactBase[str | None]):
    """The node's Tailscale IPv4 as ``tailscale ip -4`` reports it, or ``None`` (not installed / not up)."""

    def requires_command(self) -> str:
        return "tailscale"

    def command(self) -> str:
        return "tailscale ip -4 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        for line in output:
            match = _IPV4.match(line.strip())
            if match and all(int(octet) <= 255 for octet in match.groups()):
                return line.strip()
        return None


class K3sVersion(FactBase[str | None]):
    """The version the installed k3s binary reports (``v1.31.4+k3s1``), or ``None`` when absent."""

    def command(self, path: str = "/usr/local/bin/k3s") -> str:
        quoted = shlex.quote(path)
        return f"if [ -x {quoted} ]; then {quoted} --version 2>/dev/null | head -n 1; fi"

    def process(self, output: list[str]) -> str | None:
        for line in output:
            match = re.search(r"k3s version (v\S+)", line)
            if match:
                return match.group(1)
        return None


class K3sClusterState(FactBase[dict[str, bool]]):
    """Whether a cluster answers at the API endpoint, and whether this server's config says cluster-init.

    ``{"api_answers": bool, "config_cluster_init": bool}``. "Answers" means the TCP port accepts a
    connection: enough to know an apiserver (or the sandbox's k3s stand-in) is there, without credentials.
    """

    @staticmethod
    def default() -> dict[str, bool]:
        return {"api_answers": False, "config_cluster_init": False}

    def command(self, address: str, port: int, config_path: str = "/etc/rancher/k3s/config.yaml") -> str:
        target = f"/dev/tcp/{address}/{int(port)}"
        # bash's /dev/tcp needs no curl/nc on the host; `timeout` bounds a filtered port.
        return (
            f"if timeout 3 bash -c {shlex.quote(': <' + target)} 2>/dev/null; "
            "then echo api=up; else echo api=down; fi; "
            f"if grep -Eq '^cluster-init:[[:space:]]*true' {shlex.quote(config_path)} 2>/dev/null; "
            "then echo cluster_init=true; else echo cluster_init=false; fi"
        )

    def process(self, output: list[str]) -> dict[str, bool]:
        values = _key_values(output)
        return {
            "api_answers": values.get("api") == "up",
            "config_cluster_init": values.get("cluster_init") == "true",
        }


class UfwState(FactBase[dict[str, Any] | None]):
    """``{"active": bool, "rules": ["allow 22/tcp", ...]}`` from ufw, or ``None`` when ufw is not installed.

    ``ufw show added`` lists the user rules exactly in the ``ufw allow ...`` form we add them with, and it
    works while ufw is inactive, so comparison is by string.
    """

    def requires_command(self) -> str:
        return "ufw"

    def command(self) -> str:
        return "ufw status | head -n 1; ufw show added"

    def process(self, output: list[str]) -> dict[str, Any] | None:
        active = False
        rules: list[str] = []
        for line in output:
            text = line.strip()
            if text.startswith("Status:"):
                active = text.split(":", 1)[1].strip() == "active"
            elif text.startswith("ufw "):
                rules.append(text[len("ufw ") :])
        return {"active": active, "rules": rules}


class UnitState(FactBase[dict[str, str]]):
    """systemd's view of one unit: ``{"load": "loaded", "active": "active", "enabled": "enabled"}``.

    A unit that does not exist reports ``load: not-found``.
    """

    @staticmethod
    def default() -> dict[str, str]:
        return {}

    def requires_command(self, unit: str) -> str:
        return "systemctl"

    def command(self, unit: str) -> str:
        name = _check(_UNIT, unit, "unit name")
        return f"systemctl show --property=LoadState,ActiveState,UnitFileState -- {shlex.quote(name)}"

    def process(self, output: list[str]) -> dict[str, str]:
        values = _key_values(output)
        return {
            "load": values.get("LoadState", ""),
            "active": values.get("ActiveState", ""),
            "enabled": values.get("UnitFileState", ""),
        }


class FileState(FactBase[dict[str, str] | None]):
    """Mode, owner and sha256 of a regular file: ``{"mode": "600", "owner": "root", "group": "root",
    "sha256": "..."}``, or ``None`` when there is no such file.

    Only the digest ever leaves the host, never the content: secret files are compared by digest.
    """

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"if [ -f {quoted} ]; then stat -c 'mode=%a owner=%U group=%G' {quoted}; "
            f"printf 'sha256=%s\\n' \"$(sha256sum < {quoted} | cut -d ' ' -f 1)\"; fi"
        )

    def process(self, output: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for line in output:
            for token in line.split():
                key, sep, value = token.partition("=")
                if sep:
                    values[key] = value
        if "sha256" not in values:
            return None
        return {key: values.get(key, "") for key in ("mode", "owner", "group", "sha256")}


class InstalledPackages(FactBase[list[str]]):
    """Which of the given Debian packages are installed (dpkg status ``ii``), sorted."""

    @staticmethod
    def default() -> list[str]:
        return []

    def command(self, packages: list[str]) -> str:
        names = " ".join(_check(_PACKAGE, name, "package name") for name in packages)
        return f"dpkg-query -W -f='${{db:Status-Abbrev}} ${{Package}}\\n' {names} 2>/dev/null || true"

    def process(self, output: list[str]) -> list[str]:
        installed = set()
        for line in output:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "ii":
                installed.add(parts[1].split(":", 1)[0])
        return sorted(installed)


class ForeignArchitectures(FactBase[list[str]]):
    """Architectures dpkg accepts besides the native one (``i386`` for Steam)."""

    @staticmethod
    def default() -> list[str]:
        return []

    def command(self) -> str:
        return "dpkg --print-foreign-architectures 2>/dev/null || true"

    def process(self, output: list[str]) -> list[str]:
        return sorted({line.strip() for line in output if line.strip()})


class AptComponents(FactBase[list[str]]):
    """Archive components enabled in the host's apt sources (one-line and deb822 formats), sorted."""

    @staticmethod
    def default() -> list[str]:
        return []

    def command(self) -> str:
        return (
            "cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources "
            "2>/dev/null | grep -E '^[[:space:]]*(deb[[:space:]]|Components:)' || true"
        )

    def process(self, output: list[str]) -> list[str]:
        components: set[str] = set()
        for line in output:
            text = line.strip()
            if text.startswith("Components:"):
                components.update(text.split(":", 1)[1].split())
                continue
            # deb [options] uri suite component...
            text = re.sub(r"\[[^]]*\]", " ", text)
            parts = text.split()
            if len(parts) > 3:
                components.update(parts[3:])
        return sorted(components)


class MountState(FactBase[dict[str, str] | None]):
    """What is mounted at a path: ``{"source": "10.77.0.1:/srv/x", "fstype": "nfs4"}`` or ``None``."""

    def command(self, where: str) -> str:
        return f"findmnt -n -o SOURCE,FSTYPE --mountpoint {shlex.quote(where)} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, str] | None:
        for line in output:
            parts = line.split()
            if len(parts) == 2:
                return {"source": parts[0], "fstype": parts[1]}
        return None


class EnvironmentValues(FactBase[dict[str, str]]):
    """Values of ``KEY=value`` lines in a pam_env file such as /etc/environment (last one wins)."""

    @staticmethod
    def default() -> dict[str, str]:
        return {}

    def command(self, path: str, keys: list[str]) -> str:
        names = "|".join(_check(_ENV_NAME, key, "variable name") for key in keys)
        return f"grep -E '^({names})=' {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in output:
            key, sep, value = line.partition("=")
            if sep:
                values[key] = value.strip()
        return values
