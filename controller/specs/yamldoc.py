"""Safe YAML parsing that keeps positions and refuses hostile input.

`yaml.safe_load` loses line numbers, silently accepts duplicate keys, expands alias bombs
until memory runs out and recurses without bound on deep nesting. This module builds
plain JSON-like values straight from the parser's event stream, iteratively, and records
where every value and key stands, so each problem can name its line and column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

import yaml

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH = 64
MAX_NODES = 100_000

Path = tuple[str | int, ...]
Mark = tuple[int, int]  # 1-based (line, column)

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = {_STR, _NULL, _BOOL, _INT, _FLOAT, _TIMESTAMP}


class YamlProblem(Exception):
    """The stream cannot be read any further; where and why."""

    def __init__(self, mark: Mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


@dataclass
class Document:
    """One YAML document: its value and where each value and mapping key stands."""

    index: int
    mark: Mark
    value: Any = None
    value_marks: dict[Path, Mark] = field(default_factory=dict)
    key_marks: dict[Path, Mark] = field(default_factory=dict)
    problems: list[tuple[Mark, str]] = field(default_factory=list)

    def mark_of(self, path: Path, *, prefer_key: bool = False) -> Mark:
        """Position of the value at `path`, or of its closest recorded ancestor."""
        probe = path
        while True:
            if prefer_key and probe in self.key_marks:
                return self.key_marks[probe]
            if probe in self.value_marks:
                return self.value_marks[probe]
            if not probe:
                return self.mark
            probe = probe[:-1]


class _Frame:
    """An open mapping or sequence, and what it waits for next."""

    __slots__ = (
        "anchor",
        "container",
        "is_mapping",
        "mark",
        "merges",
        "path",
        "pending_key",
        "pending_merge",
        "size",
    )

    def __init__(
        self,
        path: Path,
        container: dict[str, Any] | list[Any],
        mark: Mark,
        anchor: str | None,
    ) -> None:
        self.path = path
        self.container = container
        self.is_mapping = isinstance(container, dict)
        self.mark = mark
        self.anchor = anchor
        self.size = 1
        self.pending_key: str | None = None
        self.pending_merge = False
        self.merges: list[dict[str, Any]] = []


def _mark(raw: Any) -> Mark:
    # libyaml and the pure-Python parser have different Mark classes with the same fields.
    return (raw.line + 1, raw.column + 1) if raw is not None else (1, 1)


def parse(text: str) -> list[Document]:
    """Every document of a YAML stream; a stream that breaks off raises `YamlProblem`.

    Problems local to one document (a duplicate key, an unsupported tag) are collected on
    that document so that all of them can be reported at once.
    """
    loader: Any = _Loader(text)  # the stubs leave the parser API untyped
    documents: list[Document] = []
    try:
        _read_stream(loader, documents)
    except yaml.MarkedYAMLError as error:
        mark = _mark(error.problem_mark) if error.problem_mark else (1, 1)
        if _is_nesting_limit(error):
            raise YamlProblem(mark, _nesting_message()) from error
        detail = " ".join(part for part in (error.context, error.problem) if part)
        raise YamlProblem(mark, f"invalid YAML: {detail}") from error
    except yaml.YAMLError as error:
        raise YamlProblem((1, 1), f"invalid YAML: {error}") from error
    finally:
        loader.dispose()
    return documents


_ScalarEvent = yaml.ScalarEvent
_MappingStartEvent = yaml.MappingStartEvent
_SequenceStartEvent = yaml.SequenceStartEvent
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_MERGED_LIST: Path = ("<<",)  # the path of a list whose mappings are merged


def _read_stream(loader: Any, documents: list[Document]) -> None:  # noqa: PLR0915
    """Build every document from the event stream: one loop, an explicit stack, no recursion.

    This loop is where loading spends most of its time, so it is one long function on
    purpose: scalars are most of the events, and their common cases (a key, a plain value
    in a mapping or a list) are handled inline, without a call; rarer events go through
    the helpers below.
    """
    get_event = loader.get_event
    resolve, resolvable_starts, merge_starts = _resolution(loader)
    document: Document | None = None
    stack: list[_Frame] = []
    parent: _Frame | None = None  # always stack[-1], or None when the stack is empty
    anchors: dict[str, tuple[Any, int]] = {}
    value_marks: dict[Path, Mark] = {}
    key_marks: dict[Path, Mark] = {}
    while True:
        event = get_event()
        if event is None:
            return
        kind = type(event)
        if document is None:
            if kind is yaml.DocumentStartEvent:
                document = Document(index=len(documents), mark=_mark(event.start_mark))
                value_marks = document.value_marks
                key_marks = document.key_marks
                anchors = {}
            continue
        if kind is _ScalarEvent:
            start = event.start_mark
            mark = (start.line + 1, start.column + 1)
            text = event.value
            tag = event.tag
            if (
                parent is not None
                and parent.is_mapping
                and parent.pending_key is None
                and not parent.pending_merge
            ):
                # A key stays the text that was written: `on:` or `1:` must not turn into
                # True or 1.
                if (
                    tag is None
                    and text[:1] in merge_starts
                    and resolve(text, event.implicit) == _MERGE
                ):
                    parent.pending_merge = True
                    continue
                path = (*parent.path, text)
                if text in parent.container:
                    first = key_marks.get(path, parent.mark)
                    document.problems.append(
                        (mark, f'duplicate key "{text}" (first defined at line {first[0]})')
                    )
                parent.pending_key = text
                key_marks[path] = mark
                continue
            if tag is None or tag == "!":
                tag = resolve(text, event.implicit) if text[:1] in resolvable_starts else _STR
            if tag in (_STR, _TIMESTAMP):
                # Timestamps stay text: JSON has no date type and the schema asks for strings.
                value: Any = text
            else:
                value = _construct_scalar(loader, tag, event, document, mark)
            if event.anchor is not None:
                anchors[event.anchor] = (value, 1)
            if parent is None or parent.pending_merge:
                _place(document, stack, value, mark, 1)
                continue
            # The common case of `_place`, inlined.
            parent.size += 1
            if parent.size > MAX_NODES:
                raise YamlProblem(document.mark, _bomb_message())
            container = parent.container
            if parent.is_mapping:
                key = parent.pending_key
                assert key is not None
                container[key] = value  # type: ignore[call-overload]
                value_marks[(*parent.path, key)] = mark
                parent.pending_key = None
            else:
                if parent.path != _MERGED_LIST:
                    value_marks[(*parent.path, len(container))] = mark
                container.append(value)  # type: ignore[union-attr]
        elif kind is _MappingStartEvent or kind is _SequenceStartEvent:
            parent = _open(event, kind is _MappingStartEvent, document, stack)
        elif kind in _ENDS:
            frame = stack.pop()
            parent = stack[-1] if stack else None
            if frame.merges:
                merged_into = frame.container
                assert isinstance(merged_into, dict)
                for merged in frame.merges:
                    for key, value in merged.items():
                        merged_into.setdefault(key, value)
            if frame.anchor is not None:
                anchors[frame.anchor] = (frame.container, frame.size)
            _place(document, stack, frame.container, frame.mark, frame.size)
        elif kind is yaml.AliasEvent:
            mark = _mark(event.start_mark)
            if event.anchor not in anchors:
                raise YamlProblem(mark, f"invalid YAML: unknown alias *{event.anchor}")
            if (
                parent is not None
                and parent.is_mapping
                and parent.pending_key is None
                and not parent.pending_merge
            ):
                raise YamlProblem(
                    mark, f"mapping keys must be written out, not aliases (*{event.anchor})"
                )
            value, size = anchors[event.anchor]
            _place(document, stack, value, mark, size)
        elif kind is yaml.DocumentEndEvent:
            documents.append(document)
            document = None


Resolve = Callable[[str, tuple[bool, bool]], str]


def _resolution(loader: Any) -> tuple[Resolve, Container[str], Container[str]]:
    """How the loader resolves plain scalars' tags, and which first characters can resolve
    to any tag but text, or to the merge key; a scalar starting otherwise is text."""
    if loader.yaml_path_resolvers:  # the tag then depends on the position: ask the loader
        everything = _Everything()
        return (
            lambda text, implicit: str(loader.resolve(yaml.ScalarNode, text, implicit)),
            everything,
            everything,
        )
    loader_class: type[yaml.SafeLoader] = type(loader)
    found = _RESOLUTIONS.get(loader_class)
    if found is None:
        found = _RESOLUTIONS[loader_class] = _implicit_resolution(loader_class)
    return found


_RESOLUTIONS: dict[type, tuple[Resolve, Container[str], Container[str]]] = {}


def _implicit_resolution(
    loader_class: type[yaml.SafeLoader],
) -> tuple[Resolve, Container[str], Container[str]]:
    """`BaseResolver.resolve` for scalars, without its generic per-call overhead: the
    implicit resolvers registered for the first character, then the wildcard ones, in
    order; else plain text. Worked out once per loader class (Shipyard registers none)."""
    registered: dict[str | None, list[tuple[str, re.Pattern[str]]]] = (
        loader_class.yaml_implicit_resolvers
    )
    wildcard = registered.get(None, [])
    default: str = loader_class.DEFAULT_SCALAR_TAG

    def resolve(text: str, implicit: tuple[bool, bool]) -> str:
        if implicit[0]:
            candidates = registered.get(text[0] if text else "")
            if candidates:
                for tag, regexp in candidates:
                    if regexp.match(text):
                        return tag
            for tag, regexp in wildcard:
                if regexp.match(text):
                    return tag
        return default

    def starts(tag: str | None) -> Container[str]:
        def wanted(resolvers: list[tuple[str, re.Pattern[str]]]) -> bool:
            return any(tag is None or resolved == tag for resolved, _ in resolvers)

        if wanted(wildcard):
            return _Everything()
        return frozenset(
            start
            for start, resolvers in registered.items()
            if start is not None and wanted(resolvers)
        )

    return resolve, starts(None), starts(_MERGE)


class _Everything:
    def __contains__(self, item: object) -> bool:
        return True


def _open(
    event: yaml.MappingStartEvent | yaml.SequenceStartEvent,
    is_mapping: bool,
    document: Document,
    stack: list[_Frame],
) -> _Frame:
    mark = _mark(event.start_mark)
    if len(stack) >= MAX_DEPTH:
        raise YamlProblem(mark, _nesting_message())
    expected = _MAP if is_mapping else _SEQ
    if event.tag not in (None, "!", expected):
        document.problems.append((mark, f"unsupported YAML tag {event.tag}"))
    path = _child_path(stack, mark) if stack else ()
    if stack and stack[-1].pending_merge and not is_mapping:
        # `<<: [*a, *b]`: the items are merged when the list closes (see `_place`).
        path = _MERGED_LIST
    container: dict[str, Any] | list[Any] = {} if is_mapping else []
    frame = _Frame(path, container, mark, event.anchor)
    stack.append(frame)
    return frame


def _child_path(stack: list[_Frame], mark: Mark) -> Path:
    parent = stack[-1]
    if not parent.is_mapping:
        return (*parent.path, len(parent.container))
    if parent.pending_merge:  # `<<: {…}` written out in place
        return (*parent.path, "<<")
    if parent.pending_key is None:
        raise YamlProblem(mark, "mapping keys must be strings, not lists or mappings")
    return (*parent.path, parent.pending_key)


def _construct_scalar(
    loader: Any, tag: str, event: yaml.ScalarEvent, document: Document, mark: Mark
) -> Any:
    """A resolved scalar that is not text: null, a boolean or a number."""
    if tag not in _SCALAR_TAGS:
        document.problems.append((mark, f"unsupported YAML tag {tag}"))
        return event.value
    node = yaml.ScalarNode(tag, event.value, style=event.style)
    try:
        # What `construct_object` would call, minus its bookkeeping for recursive nodes.
        value = loader.yaml_constructors[tag](loader, node)
    except (yaml.YAMLError, ValueError):
        document.problems.append((mark, f"cannot read {event.value!r} as {tag.rsplit(':', 1)[-1]}"))
        return event.value
    if isinstance(value, float) and not math.isfinite(value):
        document.problems.append((mark, f"{event.value} is not a finite number"))
    return value


def _place(document: Document, stack: list[_Frame], value: Any, mark: Mark, size: int) -> None:
    if not stack:
        document.value = value
        document.value_marks[()] = mark
        if size > MAX_NODES:
            raise YamlProblem(document.mark, _bomb_message())
        return
    parent = stack[-1]
    parent.size += size
    if parent.size > MAX_NODES:
        raise YamlProblem(document.mark, _bomb_message())
    container = parent.container
    if isinstance(container, list):
        if parent.path == _MERGED_LIST:
            container.append(value)
            return
        document.value_marks[(*parent.path, len(container))] = mark
        container.append(value)
        return
    if parent.pending_merge:
        parent.pending_merge = False
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                message = "a merge key (<<) takes a mapping or a list of mappings"
                document.problems.append((mark, message))
                return
        # Earlier sources win over later ones, and explicit keys over all of them.
        parent.merges.extend(sources)
        return
    key = parent.pending_key
    assert key is not None
    container[key] = value
    document.value_marks[(*parent.path, key)] = mark
    parent.pending_key = None


def _bomb_message() -> str:
    return f"document expands to more than {MAX_NODES} values through aliases (a YAML alias bomb?)"


def _nesting_message() -> str:
    return f"document is nested deeper than {MAX_DEPTH} levels"


def _is_nesting_limit(error: yaml.MarkedYAMLError) -> bool:
    """Whether the parser itself gave up on deep nesting.

    The libyaml inside recent PyYAML wheels (6.0.4) stops at its own nesting limit; its
    scanner reads a flow collection ahead of the events, so a deep `[[[…` can reach that
    limit before `_open` counts past `MAX_DEPTH`. Either way the input is too deep, and
    the user reads one message, Shipyard's.
    """
    return "nesting depth" in (error.problem or "")
