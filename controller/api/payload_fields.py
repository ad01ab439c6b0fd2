"""Typed reads from a webhook payload of unknown shape.

A signed delivery is authentic, not well formed: a forge bug, an old server version or a
hostile holder of the secret can put a string where an object belongs, nulls anywhere
and nesting deeper than Python's stack. `parse` turns any body into a `Fields` or a
`Malformed` error, and `Fields` never raises while walking: a missing or mistyped value
reads as None, so each handler decides what is required and says so in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Numbers a forge sends (pull request numbers, project ids) fit in 64 bits, as SQLite's
# INTEGER does; a larger one is no such number and would overflow the store.
_LARGEST_INTEGER = 2**63 - 1


class Malformed(Exception):
    """The payload cannot be used; the message says what is wrong (answered with 400)."""


def parse(body: bytes) -> Fields:
    """The body as a JSON object, or `Malformed` (never RecursionError or a decode error)."""
    try:
        payload = json.loads(body)
    except RecursionError as error:
        # json's C scanner counts its depth against the interpreter's recursion limit.
        raise Malformed("body is not usable JSON: nested too deeply") from error
    except (UnicodeDecodeError, ValueError) as error:
        raise Malformed(f"body is not valid JSON: {error}") from error
    if not isinstance(payload, dict):
        raise Malformed("body must be a JSON object")
    return Fields(payload, "")


class Fields:
    """A value inside a payload, with the dotted path that led to it (for messages)."""

    __slots__ = ("_path", "_value")

    def __init__(self, value: Any, path: str) -> None:
        self._value = value
        self._path = path

    @property
    def path(self) -> str:
        return self._path or "payload"

    def at(self, *keys: str) -> Fields:
        """The value under `keys`; absent (None) when any step is missing or not an object."""
        value, path = self._value, self._path
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
            path = f"{path}.{key}" if path else key
        return Fields(value, path)

    @property
    def present(self) -> bool:
        return self._value is not None

    def text(self) -> str | None:
        return self._value if isinstance(self._value, str) else None

    def integer(self) -> int | None:
        # JSON true is a Python bool, which is an int: never a pull request number.
        value = self._value
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        return value if -_LARGEST_INTEGER <= value <= _LARGEST_INTEGER else None

    def flag(self) -> bool:
        return self._value is True

    def items(self) -> list[Fields]:
        if not isinstance(self._value, list):
            return []
        return [Fields(item, f"{self.path}[{index}]") for index, item in enumerate(self._value)]

    def required_text(self) -> str:
        value = self.text()
        if not value:
            raise Malformed(f"{self.path} must be a non-empty string")
        return value

    def required_integer(self) -> int:
        value = self.integer()
        if value is None:
            raise Malformed(f"{self.path} must be an integer of at most 64 bits")
        return value
