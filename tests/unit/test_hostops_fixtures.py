"""Fixture tests for every custom fact and operation in homelab.hostops (no host is contacted).

``tests/fixtures/hostops/<Name>/<case>.json``, where ``<Name>`` is a fact class or an operation function:

- fact: ``{"kwargs": {...}, "command": "...", "output": [...lines], "fact": <parsed value>}``: the shell
  command the fact runs for those arguments, and what ``process`` makes of recorded output.
- operation: ``{"args": [], "kwargs": {...}, "host_data": {...}, "facts": {...}, "commands": [...],
  "noops": [...]}`` or ``"exception": {"name", "message"}``: given those facts (for a fact with arguments, a
  map from ``"arg=value, ..."`` to its value; otherwise the value), the operation yields exactly
  ``commands`` (a command fed on stdin is ``{"command", "stdin"}``) and reports exactly ``noops``.
  ``host_data.homelab_secrets`` values become ``Secret`` objects, as the runner passes them. ``"executing":
  false`` runs the operation as in a dry run's change detection (default: the execution pass).

Set HOSTOPS_FIXTURES_WRITE=1 to write the current output into the fixtures (then review the diff).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.command import StringCommand
from pyinfra.api.facts import FactBase
from pyinfra.context import ctx_host, ctx_state

from homelab.hostops import facts, operations
from homelab.hostops.secretvalue import Secret

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hostops"
WRITE = os.environ.get("HOSTOPS_FIXTURES_WRITE") == "1"

FACTS = {
    name: cls
    for name, cls in vars(facts).items()
    if inspect.isclass(cls) and issubclass(cls, FactBase) and cls.__module__ == facts.__name__
}
OPERATIONS = {
    name: fn
    for name, fn in vars(operations).items()
    if callable(fn) and hasattr(fn, "_inner") and getattr(fn, "__module__", "") == operations.__name__
}


def _cases() -> Iterator[Any]:
    for directory in sorted(FIXTURES.iterdir()):
        for path in sorted(directory.glob("*.json")):
            yield pytest.param(directory.name, path, id=f"{directory.name}/{path.stem}")


def _bound(cls: type[FactBase[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    signature = inspect.signature(cls().command)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def fact_key(arguments: dict[str, Any]) -> str:
    """How a fixture names one call of a fact: ``"path=/etc/x, port=6443"`` (non-strings as JSON)."""
    parts = []
    for key in sorted(arguments):
        value = arguments[key]
        parts.append(f"{key}={value if isinstance(value, str) else json.dumps(value)}")
    return ", ".join(parts)


class FakeData:
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None


class FakeHost:
    """Just enough of pyinfra's Host for an operation body: data, facts from the fixture, noop reasons."""

    def __init__(self, name: str, data: dict[str, Any], fact_values: dict[str, Any]) -> None:
        self.name = name
        self.data = FakeData(data)
        self.fact_values = fact_values
        self.noops: list[str] = []
        self.used: set[str] = set()

    def noop(self, description: str) -> None:
        self.noops.append(description)

    def get_fact(self, cls: type[FactBase[Any]], *args: Any, **kwargs: Any) -> Any:
        short = cls.__name__ if cls.__module__ == facts.__name__ else cls.name
        if short not in self.fact_values:
            raise AssertionError(f"fixture has no facts for {short}")
        arguments = _bound(cls, args, kwargs)
        values = self.fact_values[short]
        if not inspect.signature(cls().command).parameters:
            self.used.add(short)
            return values
        key = fact_key(arguments)
        if key not in values:
            raise AssertionError(f"fixture has no {short} for {key!r} (has {sorted(values)})")
        self.used.add(f"{short}[{key}]")
        return values[key]


class FakeState:
    """The part of pyinfra's State an operation body reads: whether this is the execution pass."""

    def __init__(self, executing: bool) -> None:
        self.is_executing = executing


def _command_json(command: Any) -> Any:
    if isinstance(command, str):
        return command.strip()
    assert isinstance(command, StringCommand), f"unexpected command type {type(command)}"
    text = command.get_raw_value()
    stdin = command.connector_arguments.get("_stdin")
    return {"command": text, "stdin": stdin} if stdin is not None else text


def _host_data(raw: dict[str, Any]) -> dict[str, Any]:
    data = dict(raw)
    data["homelab_secrets"] = {k: Secret(v) for k, v in (raw.get("homelab_secrets") or {}).items()}
    return data


def _write(path: Path, case: dict[str, Any]) -> None:
    path.write_text(json.dumps(case, indent=2) + "\n", encoding="utf-8")


@pytest.mark.parametrize(("name", "path"), list(_cases()))
def test_fixture(name: str, path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    if name in FACTS:
        _check_fact(FACTS[name], path, case)
    elif name in OPERATIONS:
        _check_operation(OPERATIONS[name], path, case)
    else:
        pytest.fail(f"{path.parent.name} is neither a fact nor an operation of homelab.hostops")


def _check_fact(cls: type[FactBase[Any]], path: Path, case: dict[str, Any]) -> None:
    fact = cls()
    kwargs = case.get("kwargs", {})
    command = fact.command(**kwargs)
    command_text = command.get_raw_value() if isinstance(command, StringCommand) else command
    output = case.get("output", [])
    value = fact.process(output) if output else type(fact).default()
    if WRITE:
        case.update(command=command_text, fact=value)
        _write(path, case)
    assert command_text == case["command"]
    assert value == case["fact"]


def _check_operation(op: Any, path: Path, case: dict[str, Any]) -> None:
    host = FakeHost(case.get("host", "sbx-test"), _host_data(case.get("host_data", {})), case.get("facts", {}))
    got_exception: dict[str, str] | None = None
    commands: list[Any] = []
    # "executing": false replays the change-detection pass of a dry run
    with ctx_host.use(host), ctx_state.use(FakeState(case.get("executing", True))):
        try:
            commands = [_command_json(c) for c in op._inner(*case.get("args", []), **case.get("kwargs", {}))]
        except Exception as exc:
            got_exception = {"name": type(exc).__name__, "message": str(exc)}
    if WRITE:
        case.pop("exception", None)
        if got_exception:
            case["exception"] = got_exception
            case.pop("commands", None)
        else:
            case["commands"] = commands
        case["noops"] = host.noops
        _write(path, case)
    if "exception" in case or got_exception:
        assert got_exception == case.get("exception")
        return
    assert commands == case["commands"]
    assert host.noops == case.get("noops", [])
    if not commands:
        assert host.noops, "an operation that changes nothing must say why (host.noop)"


def test_every_fact_and_operation_has_fixtures() -> None:
    covered = {d.name for d in FIXTURES.iterdir() if any(d.glob("*.json"))}
    missing = sorted((set(FACTS) | set(OPERATIONS)) - covered)
    assert not missing, f"no fixture cases for: {', '.join(missing)}"


def test_secret_values_never_in_a_command_line() -> None:
    """Across all operation fixtures, a secret from host data only ever travels as stdin."""
    for directory in sorted(FIXTURES.iterdir()):
        for path in directory.glob("*.json"):
            case = json.loads(path.read_text(encoding="utf-8"))
            secrets = (case.get("host_data") or {}).get("homelab_secrets") or {}
            for command in case.get("commands", []):
                line = command["command"] if isinstance(command, dict) else command
                for value in secrets.values():
                    assert value not in line, f"{path}: secret in a command line"
