"""The environment's secrets: an age-encrypted YAML mapping in secrets/<env>.age.

The identity (private key) lives outside the repository in ~/.config/homelab/<env>.key (0600). The sandbox
generates its identity and every secret it needs; a real lab's operator creates them with
``python -m homelab.secrets init lab`` and ``python -m homelab.secrets set lab NAME`` (value read from stdin).
Digests never see a value: ``hmac(name)`` is HMAC-SHA256 keyed by a key derived from the identity.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import json
import os
import re
import secrets as _random

from homelab import redact
from homelab.atomic import write_bytes_atomic
from homelab.paths import Layout
from homelab.problems import Problem


class SecretsError(Exception):
    pass


class Secrets:
    """Decrypted secrets of one environment, registered with the redaction layer on load."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._values: dict[str, str] | None = None
        self._key: bytes | None = None
        # HMACs from the project cache: valid while the secrets file and identity are byte-identical
        self.known_hmacs: dict[str, str] = {}

    # -- identity -------------------------------------------------------------------------------------
    def _identity_text(self) -> str:
        path = self.layout.identity_file
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            raise SecretsError(f"age identity {path} not found") from None

    def _identity(self) -> object:
        from pyrage import x25519

        return x25519.Identity.from_str(self._identity_text())

    def hmac_key(self) -> bytes:
        if self._key is None:
            self._key = hashlib.sha256(b"homelab-digest-key\0" + self._identity_text().encode()).digest()
        return self._key

    # -- values ---------------------------------------------------------------------------------------
    def load(self) -> dict[str, str]:
        if self._values is None:
            path = self.layout.secrets_file
            if not path.exists():
                self._values = {}
            else:
                import pyrage
                import yaml

                try:
                    plain = pyrage.decrypt(path.read_bytes(), [self._identity()])
                except Exception as exc:  # pyrage raises its own error types
                    raise SecretsError(f"cannot decrypt {self.layout.rel(path)} with {self.layout.identity_file}: "
                                       f"{type(exc).__name__}") from None
                data = yaml.safe_load(plain.decode()) or {}
                if not isinstance(data, dict):
                    raise SecretsError(f"{self.layout.rel(path)}: decrypted content is not a mapping")
                self._values = {str(k): str(v) for k, v in data.items()}
            for name, value in self._values.items():
                redact.register(name, value)
        return self._values

    def names(self) -> list[str]:
        return sorted(self.load())

    def value(self, name: str) -> str:
        values = self.load()
        if name not in values:
            raise SecretsError(missing_message(self.layout, name))
        return values[name]

    def hmac(self, name: str) -> str:
        if name in self.known_hmacs:
            return self.known_hmacs[name]
        return _hmac.new(self.hmac_key(), self.value(name).encode(), hashlib.sha256).hexdigest()

    def save(self, values: dict[str, str]) -> None:
        import yaml
        from pyrage import encrypt, x25519

        identity = x25519.Identity.from_str(self._identity_text())
        plain = yaml.safe_dump(dict(sorted(values.items())), default_flow_style=False).encode()
        write_bytes_atomic(self.layout.secrets_file, encrypt(plain, [identity.to_public()]), mode=0o600)
        self._values = dict(values)
        for name, value in values.items():
            redact.register(name, value)


def missing_message(layout: Layout, name: str) -> str:
    return (f"secret {name!r} is missing from {layout.rel(layout.secrets_file)}; add it with "
            f"`python -m homelab.secrets set {layout.env} {name}`")


def init_identity(layout: Layout) -> bool:
    """Create the environment's age identity if absent; True when created."""
    from pyrage import x25519

    path = layout.identity_file
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_bytes_atomic(path, (str(x25519.Identity.generate()) + "\n").encode(), mode=0o600)
    return True


def ensure_sandbox_secrets(layout: Layout, required: list[str]) -> list[str]:
    """The sandbox makes its own identity and random values for every required secret; returns new names."""
    init_identity(layout)
    store = Secrets(layout)
    values = dict(store.load())
    created = [n for n in required if n not in values]
    for name in created:
        values[name] = "sbx-" + _random.token_urlsafe(24)
    if created or not layout.secrets_file.exists():
        store.save(values)
    return created


def check_secrets(layout: Layout, required: dict[str, str]) -> list[Problem]:
    """Problems for an unreadable secrets file or missing secrets. ``required``: name -> where it is used."""
    problems: list[Problem] = []
    if not required:
        return problems
    store = Secrets(layout)
    try:
        values = store.load()
    except SecretsError as exc:
        return [Problem(layout.rel(layout.secrets_file), "", str(exc),
                        f"create the identity with `python -m homelab.secrets init {layout.env}`")]
    have = set(values)
    problems += shape_problems(layout, values)
    for name, where in sorted(required.items()):
        if name not in have:
            problems.append(Problem(where.split(" ")[0], where.split(" ", 1)[1] if " " in where else "",
                                    f"secret {name!r} is missing",
                                    f"put it into {layout.rel(layout.secrets_file)}: "
                                    f"`python -m homelab.secrets set {layout.env} {name}`"))
    return problems


def shape_problems(layout: Layout, values: dict[str, str]) -> list[Problem]:
    """The decrypted mapping against schemas/secrets.schema.json. Messages name the secret, never its value
    (jsonschema's own messages quote the instance, so they are not used)."""
    from jsonschema import Draft202012Validator

    schema = json.loads((layout.root / "schemas" / "secrets.schema.json").read_text())
    rel = layout.rel(layout.secrets_file)
    problems = []
    for error in Draft202012Validator(schema).iter_errors(values):
        path = list(error.absolute_path)
        if not path:
            # a property-name error has no path: jsonschema reports it on the mapping itself
            bad = [k for k in values if not re.match(schema["propertyNames"]["pattern"], k)]
            problems += [Problem(rel, k, "secret name has the wrong form",
                                 "lower-case dotted names like postgres.admin_password") for k in bad]
        else:
            name = str(path[0]) if path else ""
            problems.append(Problem(rel, name, "secret value must be a non-empty string",
                                    f"set it again with `python -m homelab.secrets set {layout.env} {name}`"))
    return sorted(set(problems))


def sandbox_mode_ok() -> bool:
    return os.environ.get("HOMELAB_NO_SECRET_GENERATION") != "1"


def main(argv: list[str] | None = None) -> int:
    """``python -m homelab.secrets init|set|list|remove ENV [NAME]``; values are read from stdin, never argv."""
    import argparse
    import getpass
    import sys

    from homelab.paths import layout as make_layout

    parser = argparse.ArgumentParser(prog="python -m homelab.secrets", description="manage secrets/<env>.age")
    parser.add_argument("command", choices=["init", "set", "list", "remove"])
    parser.add_argument("env")
    parser.add_argument("name", nargs="?")
    args = parser.parse_args(argv)
    lay = make_layout(args.env)
    if args.command == "init":
        created = init_identity(lay)
        print(f"{'created' if created else 'kept existing'} identity {lay.identity_file} (0600); keep a backup of it")
        store = Secrets(lay)
        if not lay.secrets_file.exists():
            store.save({})
            print(f"created empty {lay.rel(lay.secrets_file)}")
        return 0
    store = Secrets(lay)
    try:
        values = dict(store.load())
    except SecretsError as exc:
        print(f"secrets: {exc}", file=sys.stderr)
        return 1
    if args.command == "list":
        for name in sorted(values):
            print(name)
        return 0
    if not args.name:
        print("secrets: NAME is required", file=sys.stderr)
        return 2
    if args.command == "remove":
        values.pop(args.name, None)
        store.save(values)
        print(f"removed {args.name}")
        return 0
    value = getpass.getpass(f"value for {args.name}: ") if sys.stdin.isatty() else sys.stdin.read().rstrip("\n")
    if not value:
        print("secrets: empty value refused", file=sys.stderr)
        return 1
    values[args.name] = value
    store.save(values)
    print(f"stored {args.name} in {lay.rel(lay.secrets_file)} (value not shown)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
