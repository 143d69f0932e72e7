"""Command line: ``python -m homelab.sandbox image|up|down|reset|status [--hosts a,b]``.

Expected failures print one ``sandbox: ...`` line and exit 1; only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from homelab.sandbox import lifecycle
from homelab.sandbox.config import find_repo_root
from homelab.sandbox.errors import SandboxError
from homelab.sandbox.system import NOT_ROOT, is_root

COMMANDS = {
    "image": "build the cached base image and the local apt repo (all downloading happens here)",
    "up": "create what is missing and boot the hosts (running hosts are left alone)",
    "down": "stop every host and remove everything the sandbox created",
    "reset": "wipe hosts back to the base image and boot them again",
    "status": "show each host: running/stopped, address, ssh",
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m homelab.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=list(COMMANDS), help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
    parser.add_argument("--hosts", default="", help="comma-separated host names (up, reset, status); default all")
    return parser.parse_args(list(argv))


def _hosts(value: str) -> list[str] | None:
    names = [name.strip() for name in value.split(",") if name.strip()]
    return names or None


def run(args: argparse.Namespace) -> int:
    if args.command != "status" and not is_root():
        print(NOT_ROOT, file=sys.stderr)
        return 1
    ctx = lifecycle.Context.create(find_repo_root())
    hosts = _hosts(args.hosts)
    if args.command == "image":
        lifecycle.build_image(ctx)
    elif args.command == "up":
        lifecycle.up(ctx, hosts)
    elif args.command == "reset":
        lifecycle.reset(ctx, hosts)
    elif args.command == "down":
        removed = lifecycle.down(ctx)
        for line in removed:
            print(f"sandbox: removed {line}")
        print(
            f"sandbox: down: removed {len(removed)} thing(s) in {ctx.progress.elapsed():.1f}s"
            if removed
            else "sandbox: down: nothing to remove"
        )
    else:
        for host in lifecycle.status(ctx, hosts):
            print(f"{host.name:<16} {'running' if host.running else 'stopped':<8} {host.address:<15} ssh {host.ssh}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so an interrupted image build stops mmdebstrap and removes its temp tree.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "sandbox: interrupted; 'python -m homelab.sandbox down' removes whatever was created",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
