"""A secret value carried in pyinfra host data.

Host data can end up in debug output (``pyinfra --debug-inventory``, reprs in tracebacks), so the value is
wrapped: ``str()``/``repr()`` show a mask and only ``reveal()`` returns the text. The only consumer is
``operations.secret_file``, which sends it on the stdin of a remote command, never in argv.
"""

from __future__ import annotations

import hashlib


class Secret:
    """A secret string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def file_bytes(self) -> bytes:
        """The exact bytes written to the host: the value plus one newline (what stdin delivery sends)."""
        text = self._value if self._value.endswith("\n") else self._value + "\n"
        return text.encode()

    def file_sha256(self) -> str:
        return hashlib.sha256(self.file_bytes()).hexdigest()

    def __repr__(self) -> str:
        return "Secret(****)"

    __str__ = __repr__

    def __copy__(self) -> Secret:
        # pyinfra's HostData hands out shallow copies of data values.
        return self

    def __deepcopy__(self, memo: object) -> Secret:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        # Refuse pickling so a secret cannot travel into a cache or a subprocess by accident.
        raise TypeError("Secret values are not picklable")
