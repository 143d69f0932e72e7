"""Sandbox configuration: the inventory's sandbox section, where files live, and the package list.

The inventory is read with a plain ``yaml.safe_load`` on purpose: the sandbox must come up even while the
engine's richer inventory model is being changed, and it only needs a handful of keys.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from homelab.sandbox.errors import SandboxError

INVENTORY = Path("hosts") / "sandbox.yaml"
PACKAGE_LIST = Path("deploys") / "sandbox-packages.txt"
DEFAULT_CACHE = Path("/var/cache/homelab/sandbox")

# Debian policy for package names; also keeps anything shell-like out of the apt command line.
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class HostSpec:
    """One sandbox host as the inventory declares it."""

    name: str
    address: str


@dataclass(frozen=True)
class SandboxConfig:
    """The inventory's ``sandbox:`` section plus its hosts."""

    bridge_name: str
    bridge_cidr: str  # address with prefix, as configured on the bridge: 10.77.0.1/24
    apt_repo_port: int
    release: str
    hosts: tuple[HostSpec, ...]

    @property
    def bridge_ip(self) -> str:
        return str(ipaddress.ip_interface(self.bridge_cidr).ip)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_interface(self.bridge_cidr).network.prefixlen

    @property
    def apt_source_line(self) -> str:
        return f"deb [trusted=yes] http://{self.bridge_ip}:{self.apt_repo_port}/ ./"

    def host(self, name: str) -> HostSpec:
        for spec in self.hosts:
            if spec.name == name:
                return spec
        raise SandboxError(f"unknown host {name!r} (inventory has: {', '.join(self.names())})")

    def names(self) -> list[str]:
        return [spec.name for spec in self.hosts]

    def select(self, names: list[str] | None) -> list[HostSpec]:
        """The hosts named (inventory order), or all of them; unknown names are an error."""
        if not names:
            return list(self.hosts)
        unknown = [n for n in names if n not in self.names()]
        if unknown:
            raise SandboxError(f"unknown host(s): {', '.join(unknown)} (inventory has: {', '.join(self.names())})")
        return [spec for spec in self.hosts if spec.name in names]


def _get(data: Any, dotted: str) -> Any:
    node = data
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise SandboxError(f"{INVENTORY}: missing key {dotted}")
        node = node[key]
    return node


def parse_config(data: Any) -> SandboxConfig:
    """Validate the few inventory keys the sandbox uses; errors name the key."""
    bridge_cidr = str(_get(data, "sandbox.bridge.address"))
    try:
        network = ipaddress.ip_interface(bridge_cidr).network
    except ValueError as exc:
        raise SandboxError(f"{INVENTORY}: sandbox.bridge.address {bridge_cidr!r}: {exc}") from exc
    if network.prefixlen == network.max_prefixlen:
        raise SandboxError(f"{INVENTORY}: sandbox.bridge.address needs a prefix, e.g. 10.77.0.1/24")
    hosts: list[HostSpec] = []
    raw_hosts = _get(data, "hosts")
    if not isinstance(raw_hosts, list):
        raise SandboxError(f"{INVENTORY}: hosts must be a list")
    for entry in raw_hosts:
        name, address = str(_get(entry, "name")), str(_get(entry, "address"))
        # Host names become netns names, machine names and file names: keep them boring.
        if not _HOST_NAME.match(name):
            raise SandboxError(f"{INVENTORY}: host name {name!r} is not a simple lower-case name")
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as exc:
            raise SandboxError(f"{INVENTORY}: host {name}: {exc}") from exc
        # The safety rule: sandbox hosts live on the bridge's subnet and nowhere else.
        if ip not in network or str(ip) == str(ipaddress.ip_interface(bridge_cidr).ip):
            raise SandboxError(f"{INVENTORY}: host {name} address {address} is not a host address in {network}")
        hosts.append(HostSpec(name=name, address=address))
    names = [h.name for h in hosts]
    if len(set(names)) != len(names) or len({h.address for h in hosts}) != len(hosts):
        raise SandboxError(f"{INVENTORY}: host names and addresses must be unique")
    port = _get(data, "sandbox.apt_repo_port")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise SandboxError(f"{INVENTORY}: sandbox.apt_repo_port must be a port number")
    bridge_name = str(_get(data, "sandbox.bridge.name"))
    if not re.match(r"^[a-zA-Z0-9_-]{1,15}$", bridge_name):
        raise SandboxError(f"{INVENTORY}: sandbox.bridge.name must be an interface name (15 chars max)")
    return SandboxConfig(
        bridge_name=bridge_name,
        bridge_cidr=bridge_cidr,
        apt_repo_port=port,
        release=str(_get(data, "sandbox.release")),
        hosts=tuple(hosts),
    )


def load_config(repo_root: Path) -> SandboxConfig:
    path = repo_root / INVENTORY
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SandboxError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SandboxError(f"{path} is not valid YAML: {exc}") from exc
    return parse_config(data)


def find_repo_root(start: Path | None = None) -> Path:
    """The checkout: HOMELAB_REPO, else the nearest pyproject.toml directory above the module, else cwd."""
    override = os.environ.get("HOMELAB_REPO")
    if override:
        return Path(override).resolve()
    candidates = [Path(__file__).resolve(), (start or Path.cwd()).resolve()]
    for origin in candidates:
        for parent in [origin, *origin.parents]:
            if (parent / "pyproject.toml").is_file() and (parent / INVENTORY).is_file():
                return parent
    raise SandboxError(f"cannot find the repository (a directory with pyproject.toml and {INVENTORY})")


@dataclass(frozen=True)
class Paths:
    """Every file the sandbox writes, derived from the checkout and two environment overrides."""

    repo_root: Path
    build: Path  # <build root>/sandbox
    cache: Path  # outside the repo so fresh clones reuse the image and the .debs

    @classmethod
    def for_repo(cls, repo_root: Path) -> Paths:
        build_root = os.environ.get("HOMELAB_BUILD_DIR")
        build = (Path(build_root).resolve() if build_root else repo_root / "build") / "sandbox"
        cache = Path(os.environ.get("HOMELAB_SANDBOX_CACHE") or DEFAULT_CACHE).resolve()
        return cls(repo_root=repo_root, build=build, cache=cache)

    @property
    def state_file(self) -> Path:
        return self.build / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.build / ".lock"

    @property
    def hosts_dir(self) -> Path:
        return self.build / "hosts"

    def host_dir(self, name: str) -> Path:
        return self.hosts_dir / name

    @property
    def ssh_dir(self) -> Path:
        return self.build / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def apt_server_log(self) -> Path:
        return self.build / "aptserver.log"

    @property
    def package_list(self) -> Path:
        return self.repo_root / PACKAGE_LIST

    def image_dir(self, release: str) -> Path:
        return self.cache / f"{release}-base"

    def apt_dir(self, release: str) -> Path:
        return self.cache / f"{release}-apt"


def parse_package_list(text: str, origin: str = str(PACKAGE_LIST)) -> list[str]:
    """Package names, one a line, ``#`` starts a comment; sorted and de-duplicated (the repo's cache key)."""
    names: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        for word in line.split("#", 1)[0].split():
            if not _PACKAGE_NAME.match(word):
                raise SandboxError(f"{origin}:{number}: {word!r} is not a Debian package name")
            names.add(word)
    return sorted(names)


def read_package_list(path: Path) -> list[str]:
    try:
        return parse_package_list(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError as exc:
        raise SandboxError(f"{path} is missing (one Debian package per line)") from exc


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
