"""Ages as kubectl prints them (`95s`, `3m20s`, `45m`, `5h12m`, `30h`, `2d21h`, `200d`).

The rules are those of `duration.HumanDuration` in k8s.io/apimachinery: the unit grows
with the duration, and a second, smaller unit is shown only while it still matters.
"""

from __future__ import annotations

import time
from datetime import datetime

UNKNOWN = "<unknown>"

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_YEAR = 365 * _DAY


def human_duration(seconds: float) -> str:
    """`seconds` in kubectl's human format; a clock skew under two seconds reads `0s`."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 2 * _MINUTE:
        return f"{whole}s"
    minutes = whole // _MINUTE
    if minutes < 10:
        rest = whole % _MINUTE
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 3 * 60:
        return f"{minutes}m"
    hours = whole // _HOUR
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 8 * 24:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 2 * 365 * 24:
        return f"{days}d"
    years = days // 365
    if hours < 8 * 365 * 24:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def since(timestamp: float | str | None, now: float | None = None) -> str:
    """The age of a Unix timestamp or an RFC 3339 time; `<unknown>` when there is none."""
    moment = to_epoch(timestamp)
    if moment is None:
        return UNKNOWN
    return human_duration((time.time() if now is None else now) - moment)


def to_epoch(timestamp: float | str | None) -> float | None:
    """Seconds since the epoch of a number or an RFC 3339 string; None if neither."""
    if timestamp is None or isinstance(timestamp, bool):
        return None
    if isinstance(timestamp, int | float):
        return float(timestamp)
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
