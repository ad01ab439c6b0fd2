"""Label selectors with kubectl's syntax and meaning.

`key=value` (or `==`), `key!=value`, `key` (exists), `!key` (absent), `key in (a,b)` and
`key notin (a,b)`, joined by commas (all must hold). As in Kubernetes, `!=` and `notin`
also match objects that lack the label.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from controller.errors import ShipyardError

Matcher = Callable[[Mapping[str, str]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EQUALS = re.compile(rf"\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*")
_SET = re.compile(rf"\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*")
_EXISTS = re.compile(rf"\s*(?P<bang>!?)\s*(?P<key>{_KEY})\s*")
_VALUE_ONLY = re.compile(_VALUE)


class SelectorError(ShipyardError):
    """A selector that does not parse; the message quotes the part that does not."""


def parse(selector: str) -> Matcher:
    """A predicate over labels; an empty selector matches everything."""
    requirements = [_requirement(part) for part in _split(selector) if part.strip()]
    return lambda labels: all(requirement(labels) for requirement in requirements)


def _split(selector: str) -> list[str]:
    """Split on the commas between requirements, not those inside `in (a,b)`."""
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in selector {selector!r}")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise SelectorError(f"unbalanced parentheses in selector {selector!r}")
    parts.append(current)
    if len(parts) > 1 and any(not part.strip() for part in parts):
        raise SelectorError(f"empty requirement in selector {selector!r}")
    return parts


def _requirement(text: str) -> Matcher:
    if match := _SET.fullmatch(text):
        key = match["key"]
        values = {value.strip() for value in match["values"].split(",")}
        bad = [value for value in values if not _VALUE_ONLY.fullmatch(value)]
        if bad or values == {""}:
            raise SelectorError(f"invalid values in {text.strip()!r}")
        if match["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALS.fullmatch(text):
        key, value = match["key"], match["value"]
        if match["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.fullmatch(text):
        key = match["key"]
        if match["bang"]:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(
        f"cannot parse {text.strip()!r} in the selector (examples: team=support, "
        "tier!=backoffice, 'tier in (frontline,backoffice)', '!experimental')"
    )
