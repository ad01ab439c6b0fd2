"""What every `describe` prints alike: `Label:  value` fields, indented tables, and the
Events table kubectl ends with (repeats folded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.cli import age, printers

EVENT_SOURCE = "shipyard-controller"
LABEL_WIDTH = 14


def field(label: str, value: object) -> str:
    return f"{label + ':':<{LABEL_WIDTH}}{printers.cell(value)}"


def indent(lines: Sequence[str], by: int = 2) -> list[str]:
    return [" " * by + line for line in lines]


def conditions(conditions: Sequence[dict[str, Any]]) -> list[str]:
    if not conditions:
        return ["<none>"]
    rows = [[c.get("type"), c.get("status"), c.get("reason"), c.get("message")] for c in conditions]
    return printers.table(("TYPE", "STATUS", "REASON", "MESSAGE"), rows)


def events_table(events: Sequence[dict[str, Any]], now: float) -> list[str]:
    """`TYPE REASON AGE FROM MESSAGE`, identical events folded as kubectl does.

    Events with the same type, reason and message count as one, listed at its last
    occurrence with `AGE (xN over FIRST)`.
    """
    folded: dict[tuple[str, str, str], dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: (e.get("time") or 0, e.get("id") or 0)):
        key = (event.get("type", ""), event.get("reason", ""), event.get("message", ""))
        seen = folded.pop(key, None)
        if seen is None:
            seen = {"first": event.get("time"), "count": 0}
        seen.update(event=event, last=event.get("time"), count=seen["count"] + 1)
        folded[key] = seen  # re-inserted: ordered by last occurrence
    rows = []
    for entry in folded.values():
        event = entry["event"]
        when = age.since(entry["last"], now)
        if entry["count"] > 1:
            when += f" (x{entry['count']} over {age.since(entry['first'], now)})"
        rows.append(
            [event.get("type"), event.get("reason"), when, EVENT_SOURCE, event.get("message")]
        )
    headers = ("TYPE", "REASON", "AGE", "FROM", "MESSAGE")
    # kubectl underlines the headers of describe's events table with dashes.
    return printers.table(headers, [["-" * len(name) for name in headers], *rows])
