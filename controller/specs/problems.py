"""A problem found in a manifest, located precisely enough for a person to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one manifest: where (file, line, column, field) and what."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def render(self) -> str:
        """`FILE:LINE:COL: FIELD-PATH: message`, the shape compilers and linters use."""
        location = f"{self.file}:{self.line}:{self.column}"
        if self.field:
            return f"{location}: {self.field}: {self.message}"
        return f"{location}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
        }


def field_path(path: tuple[str | int, ...]) -> str:
    """`("spec", "tools", 0, "name")` → `spec.tools[0].name`."""
    rendered = ""
    for part in path:
        if isinstance(part, int):
            rendered += f"[{part}]"
        else:
            rendered += f".{part}" if rendered else part
    return rendered
