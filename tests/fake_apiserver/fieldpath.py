"""Field paths and field sets in structured-merge-diff's shapes, and the `fieldsV1` codec.

`metadata.managedFields[].fieldsV1` is what clients see of server-side apply's
ownership: a tree of `f:<field>`, `k:<json key>`, `v:<json value>` and `i:<index>`
entries, with `".": {}` marking a node that is itself owned and also has owned
children. Conflict messages print paths as `.spec.template.spec.containers[name="app"]
.image`. Both encodings live here, so ssa.py deals in plain sets of tuples.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable
from typing import Any

Json = dict[str, Any]
PathElement = tuple[str, str]  # ("f", name) | ("k", key json) | ("v", value json) | ("i", n)
Path = tuple[PathElement, ...]
FieldSet = frozenset[Path]

_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def field(name: str) -> PathElement:
    return ("f", name)


def key(pairs: Iterable[tuple[str, Any]]) -> PathElement:
    if isinstance(pairs, tuple):
        try:
            return _key_of_pairs(pairs)
        except TypeError:  # a key value that is itself a map or list: not hashable
            pass
    return ("k", _canonical(dict(pairs)))


@functools.lru_cache(maxsize=65536)
def _key_of_pairs(pairs: tuple[tuple[str, Any], ...]) -> PathElement:
    # Every walk of a keyed list asks for its items' keys again: a container's
    # `{"name":"app"}` is rendered once, not once per comparison.
    return ("k", _canonical(dict(pairs)))


def value(item: Any) -> PathElement:
    return ("v", _canonical(item))


def index(n: int) -> PathElement:
    return ("i", str(n))


def to_string(path: Path) -> str:
    """structured-merge-diff's `Path.String()`: `.spec.containers[name="a"].image`."""
    out = []
    for kind, payload in path:
        if kind == "f":
            out.append(f".{payload}")
        elif kind == "k":
            pairs = json.loads(payload)
            inner = ",".join(f"{k}={_canonical(v)}" for k, v in sorted(pairs.items()))
            out.append(f"[{inner}]")
        elif kind == "v":
            out.append(f"[={payload}]")
        else:
            out.append(f"[{payload}]")
    return "".join(out)


# Marks, among a node's children in `_build`'s tree, that the node itself is in the set.
_MEMBER: PathElement = ("", "")


def _order(element: PathElement) -> tuple[int, str]:
    return (_RANK[element[0]], element[1])


@functools.lru_cache(maxsize=8192)
def _encoded(paths: FieldSet) -> Json:
    return _build(paths)


# Both directions by identity, as `_decoded` below: a field set decoded from a stored
# tree, or kept unchanged by a write, encodes to that very tree without building it
# again; a tree built here decodes to its set without walking it. Each entry holds its
# key's object, so an id cannot be reused while cached.
_trees: dict[int, tuple[FieldSet, Json]] = {}


def to_fields_v1(paths: Iterable[Path]) -> Json:
    """The fieldsV1 tree of a field set. Shared between objects: never mutate it."""
    fields = paths if isinstance(paths, frozenset) else frozenset(paths)
    cached = _trees.get(id(fields))
    if cached is not None and cached[0] is fields:
        return cached[1]
    tree = _encoded(fields)
    _remember(fields, tree)
    return tree


def _remember(fields: FieldSet, tree: Json) -> None:
    with _decoded_lock:
        if len(_trees) > 50_000:
            _trees.clear()
        if len(_decoded) > 50_000:
            _decoded.clear()
        _trees[id(fields)] = (fields, tree)
        _decoded.setdefault(id(tree), (tree, fields))


def _build(paths: Iterable[Path]) -> Json:
    # Plain nested dicts, not node objects: every object's first write builds one (the
    # uid in its ownerReferences makes each set unique), so this is on every create.
    root: dict[PathElement, Any] = {}
    for path in paths:
        node = root
        for element in path:
            child = node.get(element)
            if child is None:
                child = node[element] = {}
            node = child
        node[_MEMBER] = True
    return _render(root)


def _render(node: dict[PathElement, Any]) -> Json:
    out: Json = {}
    member = _MEMBER in node
    if member and len(node) > 1:
        out["."] = {}
    children = [element for element in node if element is not _MEMBER]
    if len(children) > 1:
        children.sort(key=_order)
    for element in children:
        out[f"{element[0]}:{element[1]}"] = _render(node[element])
    return out


_decoded: dict[int, tuple[Any, FieldSet]] = {}
_decoded_lock = threading.Lock()


def from_fields_v1(fields: Any) -> FieldSet:
    # Stored objects are immutable, so a tree decodes to the same set every time; the
    # cache holds the tree itself, so its id cannot be reused while cached.
    cached = _decoded.get(id(fields))
    if cached is not None and cached[0] is fields:
        return cached[1]
    result: set[Path] = set()
    if isinstance(fields, dict):
        _collect(fields, (), result)
    decoded = frozenset(result)
    if isinstance(fields, dict):
        _remember(decoded, fields)
    return decoded


def _collect(node: Json, prefix: Path, out: set[Path]) -> None:
    for raw, child in node.items():
        if raw == ".":
            out.add(prefix)
            continue
        kind, _, payload = raw.partition(":")
        if kind in ("k", "v"):
            try:
                payload = _canonical(json.loads(payload))
            except ValueError:
                continue
        element = (kind, payload)
        path = (*prefix, element)
        if isinstance(child, dict) and child:
            _collect(child, path, out)
        else:
            out.add(path)
