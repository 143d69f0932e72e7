"""tailscale stage: the node on the tailnet, its Tailscale IPv4 read back for k3s (Story 12.2).

Manages: Tailscale from its apt repository with the repository's signing key, tailscaled running, the auth
key delivered as a 0600 file, and ``tailscale up --auth-key=file:...`` when the node has no Tailscale IPv4.
Where the inventory's ``standins.tailscale`` applies (the sandbox), the package and daemon are planned
operations only; instead a tailscale0 interface carries the host's inventory ``tailscale_ip`` and a
stand-in ``tailscale`` CLI answers ``ip -4`` and ``status``.
"""

from __future__ import annotations

from pathlib import Path

from pyinfra.api.deploy import deploy
from pyinfra.context import host

from homelab.hostops import hostdata
from homelab.hostops import operations as hl

FILES = Path(__file__).parent / "files"
KEYRING = "/usr/share/keyrings/tailscale-archive-keyring.gpg"
REPO = {
    "name": "tailscale",
    "key_url": "https://pkgs.tailscale.com/stable/{id}/{codename}.noarmor.gpg",
    "keyring": KEYRING,
    "line": f"deb [signed-by={KEYRING}] https://pkgs.tailscale.com/stable/{{id}} {{codename}} main",
}


@deploy("tailscale")
def apply() -> None:
    hl.apt_packages(name="Tailscale from its apt repository", packages=["tailscale"], repo=REPO,
                    unless_standin="tailscale")
    hl.service(name="tailscaled running", unit="tailscaled.service", unless_standin="tailscale")
    standin = hl.tailscale_standin(
        name="Stand-in tailscale CLI and tailscale0 unit",
        cli_text=(FILES / "tailscale-standin").read_text(encoding="utf-8"),
        address=host.data.get("tailscale_ip"), mtu=host.data.get("tailscale_mtu"),
    )
    hl.service(name="Stand-in tailscale0 interface up", unit=hl.TAILSCALE_STANDIN_UNIT, restart_on=[standin],
               when_standin="tailscale")
    hl.secret_file(name="Tailscale auth key file (0600)", path=hostdata.TAILSCALE_AUTHKEY_FILE,
                   secret="tailscale.auth_key")
    hl.tailscale_up(name="Node joined the tailnet", authkey_path=hostdata.TAILSCALE_AUTHKEY_FILE,
                    hostname=host.name, expected_ip=host.data.get("tailscale_ip"))
