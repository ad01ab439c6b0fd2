"""Output as kubectl prints it: aligned tables with upper-case headers, JSON, YAML, names.

Tables pad every column but the last to its widest cell plus three spaces, as kubectl's
tabwriter does. Empty cells print as `<none>`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
import yaml

NONE = "<none>"
PADDING = 3
OUTPUTS = ("wide", "json", "yaml", "name")
LIST_API_VERSION = "v1"  # kubectl's List of mixed objects


def cell(value: object) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


class Table:
    """Rows printed under one set of column widths, so a watch stays aligned."""

    def __init__(
        self, headers: Sequence[str], no_headers: bool = False, keep_case: bool = False
    ) -> None:
        # Custom columns keep the headers the user wrote, as kubectl does.
        self.headers = [header if keep_case else header.upper() for header in headers]
        self.no_headers = no_headers
        self.widths = [len(header) for header in self.headers]

    def render(self, rows: Sequence[Sequence[object]]) -> list[str]:
        """The header (unless suppressed) and rows; widths grow to fit, never shrink."""
        cells = [[cell(value) for value in row] for row in rows]
        for row in cells:
            for index, text in enumerate(row):
                self.widths[index] = max(self.widths[index], len(text))
        lines = [] if self.no_headers else [self._line(self.headers)]
        lines.extend(self._line(row) for row in cells)
        return lines

    def more(self, rows: Sequence[Sequence[object]]) -> list[str]:
        """Further rows under the widths already printed (a watch's updates)."""
        return [self._line([cell(value) for value in row]) for row in rows]

    def _line(self, row: Sequence[str]) -> str:
        last = len(row) - 1
        # A cell wider than its column (a watch's later rows) still gets its padding.
        return "".join(
            text if index == last else text.ljust(self.widths[index]) + " " * PADDING
            for index, text in enumerate(row)
        ).rstrip()


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], no_headers: bool = False
) -> list[str]:
    return Table(headers, no_headers).render(rows)


def as_list(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several objects as kubectl wraps them for `-o json|yaml`."""
    return {"apiVersion": LIST_API_VERSION, "kind": "List", "items": list(items)}


def dumps(value: object, output: str) -> str:
    """JSON (indented by four, as kubectl) or YAML, ending in a newline."""
    if output == "json":
        return json.dumps(value, indent=4, ensure_ascii=False) + "\n"
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)


def echo_lines(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(line)
