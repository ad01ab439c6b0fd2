"""kubectl's JSONPath templates, for `-o jsonpath=…` and `-o custom-columns=…`.

The dialect of k8s.io/client-go/util/jsonpath: text with `{…}` actions. An action is a
path (`.items[0].metadata.name`, `$.items[*]`, `..name`, `['app.kubernetes.io/name']`,
`[1:3]`, `[-1]`, `[?(@.status.ready==true)]`, `.metadata.labels.team\\.name`), a quoted
literal (`{"\\n"}`), or `{range PATH}…{end}` repeating its body for every match. A path
starting with `.` reads the current object (the range's item inside a range), `$` the
whole document. Several matches print space-separated; maps and lists print as JSON;
a missing key prints nothing, as `kubectl get` does (it allows missing keys).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from controller.errors import ShipyardError


class JsonPathError(ShipyardError):
    """A template that does not parse; the message quotes it."""


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Path:
    steps: tuple[Callable[[Any], Iterator[Any]], ...]
    from_root: bool


@dataclass(frozen=True)
class _Range:
    path: _Path
    body: tuple[_Text | _Path | _Range, ...]


Node = _Text | _Path | _Range


def render(template: str, document: Any) -> str:
    """The template filled in from `document`."""
    return _render(parse(template), document, document)


def values(path: str, document: Any) -> list[Any]:
    """Every match of one path (with or without braces), for custom columns."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    return list(_matches(_path(text, path), document, document))


def text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def parse(template: str) -> tuple[Node, ...]:
    nodes: list[Node] = []
    stack: list[tuple[_Path, list[Node]]] = []
    for kind, text in _tokens(template):
        current = stack[-1][1] if stack else nodes
        if kind == "text":
            current.append(_Text(text))
            continue
        action = text.strip()
        if action == "end":
            if not stack:
                raise JsonPathError(f"{{end}} without {{range}} in {template!r}")
            path, body = stack.pop()
            (stack[-1][1] if stack else nodes).append(_Range(path, tuple(body)))
        elif action.startswith("range ") or action.startswith("range\t"):
            stack.append((_path(action[len("range") :].strip(), template), []))
        elif action[:1] in ("'", '"'):
            current.append(_Text(_literal(action, template)))
        elif action:
            current.append(_path(action, template))
    if stack:
        raise JsonPathError(f"{{range}} without {{end}} in {template!r}")
    return tuple(nodes)


def _render(nodes: tuple[Node, ...], root: Any, current: Any) -> str:
    out = []
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Path):
            out.append(" ".join(text_of(value) for value in _matches(node, root, current)))
        else:
            for item in _matches(node.path, root, current):
                out.append(_render(node.body, root, item))
    return "".join(out)


def _matches(path: _Path, root: Any, current: Any) -> Iterator[Any]:
    found: list[Any] = [root if path.from_root else current]
    for step in path.steps:
        found = [result for value in found for result in step(value)]
    yield from found


# Parsing -----------------------------------------------------------------------------------


def _tokens(template: str) -> Iterator[tuple[str, str]]:
    """("text", …) and ("action", …) in order; braces inside quotes do not count."""
    index, length = 0, len(template)
    while index < length:
        opening = template.find("{", index)
        if opening < 0:
            yield "text", template[index:]
            return
        if opening > index:
            yield "text", template[index:opening]
        position, quote = opening + 1, ""
        while position < length:
            char = template[position]
            if quote:
                if char == "\\":
                    position += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif char == "}":
                break
            position += 1
        else:
            raise JsonPathError(f"unclosed action in {template!r}")
        yield "action", template[opening + 1 : position]
        index = position + 1


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def _literal(action: str, template: str) -> str:
    quote = action[0]
    if len(action) < 2 or action[-1] != quote:
        raise JsonPathError(f"unterminated string {action!r} in {template!r}")
    body = action[1:-1]
    return re.sub(r"\\(.)", lambda match: _ESCAPES.get(match[1], match[1]), body)


_FIELD = re.compile(r"(?:\\.|[^.\[\]\s\\])+")
_FILTER = re.compile(
    r"^\?\((?P<left>@[^=!<>]*?)\s*(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<right>.+?))?\)$"
)
_SLICE = re.compile(r"^(-?\d*):(-?\d*)(?::(-?\d+))?$")


def _path(text: str, template: str) -> _Path:
    from_root = text.startswith("$")
    rest = text[1:] if text[:1] in ("$", "@") else text
    if rest and rest[0] not in ".[":
        raise JsonPathError(f"{text!r} in {template!r} is not a path (start it with . or $)")
    steps: list[Callable[[Any], Iterator[Any]]] = []
    index = 0
    while index < len(rest):
        if rest.startswith("..", index):
            steps.append(_descendants)
            index += 2
        elif rest[index] == ".":
            index += 1
        if index >= len(rest):
            break  # `{.}`: the current object
        if rest[index] == "[":
            closing = _closing_bracket(rest, index, template)
            steps.append(_bracket(rest[index + 1 : closing].strip(), template))
            index = closing + 1
            continue
        match = _FIELD.match(rest, index)
        if match is None:
            raise JsonPathError(f"cannot parse {rest[index:]!r} in {template!r}")
        name = re.sub(r"\\(.)", r"\1", match[0])
        steps.append(_all_values if name == "*" else _field(name))
        index = match.end()
    return _Path(tuple(steps), from_root)


def _closing_bracket(text: str, start: int, template: str) -> int:
    depth, quote = 0, ""
    for position in range(start, len(text)):
        char = text[position]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return position
    raise JsonPathError(f"unclosed [ in {template!r}")


def _bracket(inside: str, template: str) -> Callable[[Any], Iterator[Any]]:
    if inside == "*":
        return _all_values
    if inside[:1] in ("'", '"'):
        return _field(_literal(inside, template))
    if re.fullmatch(r"-?\d+", inside):
        return _index(int(inside))
    if slice_match := _SLICE.match(inside):
        start, stop, step = (int(part) if part else None for part in slice_match.groups())
        return _slice(slice(start, stop, step))
    if filter_match := _FILTER.match(inside):
        return _filter(filter_match, template)
    raise JsonPathError(f"cannot parse [{inside}] in {template!r}")


def _field(name: str) -> Callable[[Any], Iterator[Any]]:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, dict) and name in value:
            yield value[name]

    return step


def _index(number: int) -> Callable[[Any], Iterator[Any]]:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, list) and -len(value) <= number < len(value):
            yield value[number]

    return step


def _slice(part: slice) -> Callable[[Any], Iterator[Any]]:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, list):
            yield from value[part]

    return step


def _all_values(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield from value.values()
    elif isinstance(value, list):
        yield from value


def _descendants(value: Any) -> Iterator[Any]:
    """The value and everything below it, for `..name`."""
    yield value
    for child in _all_values(value):
        yield from _descendants(child)


def _filter(match: re.Match[str], template: str) -> Callable[[Any], Iterator[Any]]:
    left = _path(match["left"], template)
    operator, right = match["op"], match["right"]
    wanted = _operand(right.strip(), template) if right is not None else None

    def holds(item: Any) -> bool:
        found = list(_matches(left, item, item))
        if operator is None:
            return bool(found)
        return any(_compare(value, operator, wanted) for value in found)

    def step(value: Any) -> Iterator[Any]:
        for item in _all_values(value):
            if holds(item):
                yield item

    return step


def _operand(text: str, template: str) -> Any:
    if text[:1] in ("'", '"'):
        return _literal(text, template)
    if text in ("true", "false"):
        return text == "true"
    try:
        return json.loads(text)
    except ValueError as error:
        raise JsonPathError(f"cannot compare with {text!r} in {template!r}") from error


def _compare(value: Any, operator_name: str, wanted: Any) -> bool:
    if operator_name == "==":
        return bool(value == wanted)
    if operator_name == "!=":
        return bool(value != wanted)
    order = _ORDER[operator_name]
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(wanted, numbers):
        return order(float(value), float(wanted))
    if isinstance(value, str) and isinstance(wanted, str):
        return order(value, wanted)
    return False  # an ordering between a number and a string is never true


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
