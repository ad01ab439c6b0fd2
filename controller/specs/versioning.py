"""Agent versions: a short content hash, so equal content is the same version everywhere.

The hash covers the normalized spec (defaults applied, so spelling a default out changes
nothing) and the bytes of every file the spec references. A commit that leaves both alone
leaves the version alone, on any branch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

from controller.specs.model import (
    AgentSpec,
    Analysis,
    Observability,
    PromptSpec,
    RolloutSettings,
)

VERSION_LENGTH = 10
_NO_OBSERVABILITY = Observability()
# Rollout fields added after versions existed: left out while unset, so those keep their hash.
_LATER_ROLLOUT_FIELDS = {
    "steps": (),
    "analysis": None,
    "sticky_header": None,
    "require_evals": False,
}
_LATER_ANALYSIS_FIELDS = {"queries": ()}

# Per dataclass: its field names and a getter of all their values at once.
_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


def compute(spec: AgentSpec, referenced_files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    digest.update(canonical(spec).encode())
    for path in sorted(referenced_files):
        digest.update(b"\x00file\x00" + path.encode() + b"\x00")
        digest.update(hashlib.sha256(referenced_files[path]).digest())
    return digest.hexdigest()[:VERSION_LENGTH]


def canonical(spec: AgentSpec) -> str:
    """The spec as compact JSON with sorted keys: every field of every nested dataclass.

    The same text `json.dumps(dataclasses.asdict(spec), sort_keys=True)` gives, without
    asdict's deep copy: the encoder asks `_plain` for each dataclass as it meets it.
    """
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> dict[str, Any]:
    kind = type(value)
    fields = _FIELDS.get(kind)
    if fields is None:
        if isinstance(value, Mapping):
            return dict(value)
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            raise TypeError(f"{kind.__name__} is not part of an agent spec")
        names = tuple(field.name for field in dataclasses.fields(value))
        fields = _FIELDS[kind] = (names, _getter(names))
    names, values = fields
    plain = dict(zip(names, values(value), strict=True))
    if kind is PromptSpec and value.file is not None:
        plain["text"] = None  # the prompt's text is covered by its file's bytes
    if kind is AgentSpec and value.observability == _NO_OBSERVABILITY:
        # Added after versions existed: left out at its defaults, so they keep their hash.
        del plain["observability"]
    later = (
        _LATER_ROLLOUT_FIELDS
        if kind is RolloutSettings
        else _LATER_ANALYSIS_FIELDS
        if kind is Analysis
        else None
    )
    for name, unset in (later or {}).items():
        if plain[name] == unset:
            del plain[name]
    return plain


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function from an object to the tuple of its attributes `names`, in that order."""
    if len(names) == 1:
        only = operator.attrgetter(names[0])
        return lambda value: (only(value),)
    getter: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names)
    return getter
