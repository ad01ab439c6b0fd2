"""`-o` as kubectl takes it: a name (`wide`, `json`, `yaml`, `name`) or a name with a
template (`jsonpath=TEMPLATE`, `custom-columns=HEADER:PATH,…`).

Templates are parsed when the flag is read, so a bad one is a usage error before any
request is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from controller.cli import jsonpath, printers

TEMPLATED = ("jsonpath", "custom-columns")


@dataclass(frozen=True)
class Output:
    kind: str  # wide, json, yaml, name, jsonpath, custom-columns, or "" for the table
    template: str = ""
    columns: tuple[tuple[str, str], ...] = ()  # custom-columns: (header, path)

    @property
    def structured(self) -> bool:
        """Printed from the whole object, not from table cells."""
        return self.kind in ("json", "yaml", "jsonpath")

    def render(self, value: Any) -> str:
        """json, yaml or jsonpath text of one object or a List."""
        if self.kind == "jsonpath":
            return jsonpath.render(self.template, value)
        return printers.dumps(value, self.kind)

    def cells(self, obj: Any) -> list[object]:
        """One custom-columns row: each path's matches joined by commas."""
        row: list[object] = []
        for _, path in self.columns:
            found = jsonpath.values(path, obj)
            row.append(",".join(jsonpath.text_of(value) for value in found) or None)
        return row


def parse(text: str) -> Output:
    """The format `-o` names; JsonPathError when it names none or its template is bad."""
    kind, _, template = text.partition("=")
    if kind in printers.OUTPUTS and not template:
        return Output(kind)
    if kind not in TEMPLATED:
        known = ", ".join([*printers.OUTPUTS, *(f"{name}=…" for name in TEMPLATED)])
        raise jsonpath.JsonPathError(f"unknown output format {text!r} (known: {known})")
    if not template:
        raise jsonpath.JsonPathError(f"{kind}= needs a template, e.g. {_example(kind)}")
    if kind == "jsonpath":
        jsonpath.parse(template)
        return Output(kind, template)
    return Output(kind, template, _columns(template))


def option_callback(ctx: click.Context, param: click.Parameter, value: object) -> Output | None:
    """A click callback turning `-o`'s text into an Output, or a usage error."""
    if value is None:
        return None
    try:
        return parse(str(value))
    except jsonpath.JsonPathError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from error


def _columns(spec: str) -> tuple[tuple[str, str], ...]:
    columns = []
    for part in spec.split(","):
        header, colon, path = part.partition(":")
        if not colon or not header.strip() or not path.strip():
            raise jsonpath.JsonPathError(
                f"custom-columns wants HEADER:PATH pairs separated by commas, not {part!r}"
            )
        jsonpath.values(path, {})  # parses it
        columns.append((header.strip(), path.strip()))
    return tuple(columns)


def _example(kind: str) -> str:
    if kind == "jsonpath":
        return "jsonpath='{.items[*].metadata.name}'"
    return "custom-columns=NAME:.metadata.name,VERSION:.status.version"
