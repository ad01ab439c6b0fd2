"""Safe YAML parsing that keeps positions and refuses hostile input.

`yaml.safe_load` loses line numbers, silently accepts duplicate keys, expands alias bombs
until memory runs out and recurses without bound on deep nesting. This module builds
plain JSON-like values straight from the parser's event stream, iteratively, and records
where every value and key stands, so each problem can name its line and column.
"""

from __future__ import annotations

import math
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


@dataclass
class _Frame:
    path: Path
    container: dict[str, Any] | list[Any]
    mark: Mark
    anchor: str | None
    size: int = 1
    pending_key: str | None = None
    pending_key_mark: Mark = (0, 0)
    pending_merge: bool = False
    merges: list[dict[str, Any]] = field(default_factory=list)


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
        detail = " ".join(part for part in (error.context, error.problem) if part)
        raise YamlProblem(mark, f"invalid YAML: {detail}") from error
    except yaml.YAMLError as error:
        raise YamlProblem((1, 1), f"invalid YAML: {error}") from error
    finally:
        loader.dispose()
    return documents


def _read_stream(loader: Any, documents: list[Document]) -> None:
    document: Document | None = None
    stack: list[_Frame] = []
    anchors: dict[str, tuple[Any, int]] = {}
    while loader.check_event():
        event = loader.get_event()
        if isinstance(event, yaml.DocumentStartEvent):
            document = Document(index=len(documents), mark=_mark(event.start_mark))
            anchors = {}
        elif isinstance(event, yaml.DocumentEndEvent):
            if document is not None:
                documents.append(document)
            document = None
        elif document is None:
            continue
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            _open(loader, event, document, stack)
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            frame = stack.pop()
            if isinstance(frame.container, dict):
                for merged in frame.merges:
                    for key, value in merged.items():
                        frame.container.setdefault(key, value)
            if frame.anchor is not None:
                anchors[frame.anchor] = (frame.container, frame.size)
            _place(document, stack, frame.container, frame.mark, frame.size)
        elif isinstance(event, yaml.ScalarEvent):
            _scalar(loader, event, document, stack, anchors)
        elif isinstance(event, yaml.AliasEvent):
            mark = _mark(event.start_mark)
            if event.anchor not in anchors:
                raise YamlProblem(mark, f"invalid YAML: unknown alias *{event.anchor}")
            value, size = anchors[event.anchor]
            _place(document, stack, value, mark, size)


def _open(
    loader: Any,
    event: yaml.MappingStartEvent | yaml.SequenceStartEvent,
    document: Document,
    stack: list[_Frame],
) -> None:
    mark = _mark(event.start_mark)
    if len(stack) >= MAX_DEPTH:
        raise YamlProblem(mark, f"document is nested deeper than {MAX_DEPTH} levels")
    is_mapping = isinstance(event, yaml.MappingStartEvent)
    expected = _MAP if is_mapping else _SEQ
    if event.tag not in (None, "!", expected):
        document.problems.append((mark, f"unsupported YAML tag {event.tag}"))
    path = _child_path(stack, mark) if stack else ()
    if stack and stack[-1].pending_merge and not is_mapping:
        stack[-1].pending_merge = False  # `<<: [*a, *b]`: the sequence's items are merged
        path = ("<<",)
    container: dict[str, Any] | list[Any] = {} if is_mapping else []
    stack.append(_Frame(path=path, container=container, mark=mark, anchor=event.anchor))


def _child_path(stack: list[_Frame], mark: Mark) -> Path:
    parent = stack[-1]
    if isinstance(parent.container, list):
        return (*parent.path, len(parent.container))
    if parent.pending_key is None:
        raise YamlProblem(mark, "mapping keys must be strings, not lists or mappings")
    return (*parent.path, parent.pending_key)


def _scalar(
    loader: Any,
    event: yaml.ScalarEvent,
    document: Document,
    stack: list[_Frame],
    anchors: dict[str, tuple[Any, int]],
) -> None:
    mark = _mark(event.start_mark)
    parent = stack[-1] if stack else None
    awaiting_key = (
        parent is not None
        and isinstance(parent.container, dict)
        and parent.pending_key is None
        and not parent.pending_merge
    )
    if parent is not None and awaiting_key:
        _take_key(loader, event, document, parent, mark)
        return
    value = _construct_scalar(loader, event, document, mark)
    if event.anchor is not None:
        anchors[event.anchor] = (value, 1)
    _place(document, stack, value, mark, 1)


def _take_key(
    loader: Any,
    event: yaml.ScalarEvent,
    document: Document,
    frame: _Frame,
    mark: Mark,
) -> None:
    # Keys stay the text that was written: `on:` or `1:` must not turn into True or 1.
    if event.tag is None and loader.resolve(yaml.ScalarNode, event.value, event.implicit) == _MERGE:
        frame.pending_merge = True
        return
    key = event.value
    assert isinstance(frame.container, dict)
    if key in frame.container:
        first = document.key_marks.get((*frame.path, key), frame.mark)
        document.problems.append(
            (mark, f'duplicate key "{key}" (first defined at line {first[0]})')
        )
    frame.pending_key = key
    frame.pending_key_mark = mark
    document.key_marks[(*frame.path, key)] = mark


def _construct_scalar(loader: Any, event: yaml.ScalarEvent, document: Document, mark: Mark) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag not in _SCALAR_TAGS:
        document.problems.append((mark, f"unsupported YAML tag {tag}"))
        return event.value
    if tag in (_STR, _TIMESTAMP):
        # Timestamps stay text: JSON has no date type and the schema asks for strings.
        return event.value
    node = yaml.ScalarNode(tag, event.value, style=event.style)
    try:
        value = loader.construct_object(node, deep=True)
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
        if parent.path == ("<<",):
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
