"""Durations on the command line (`15s`, `2m`, `1h30m`), as kubectl and Flux spell them."""

from __future__ import annotations

import re

import click

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse(text: str) -> float:
    """Seconds in `text`; a bare number means seconds. ValueError when malformed."""
    stripped = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", stripped):
        return float(stripped)
    parts = _PART.findall(stripped)
    if not parts or "".join(amount + unit for amount, unit in parts) != stripped:
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 5m, 1h30m)")
    return sum(float(amount) * _SECONDS[unit] for amount, unit in parts)


def option_callback(ctx: click.Context, param: click.Parameter, value: object) -> float | None:
    """A click callback turning a duration flag into seconds, or a usage error."""
    if value is None:
        return None
    try:
        seconds = parse(str(value))
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from error
    if seconds <= 0:
        raise click.BadParameter(f"{value!r} must be longer than zero", ctx=ctx, param=param)
    return seconds
