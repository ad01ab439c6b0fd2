"""A semantic diff of two agent manifests: what changed, named by field path.

Every changed leaf is one `FieldChange` (`spec.model.parameters.temperature: 0.2 → 0.7`).
Lists of named items (tools, env, secrets) are matched by name, so reordering is not a
change and `spec.tools[search].url` names the tool; tools that appear or disappear are
listed as added or removed. The prompt is compared as text and shown as a unified diff.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ARROW = "→"
ABSENT = "<none>"
_PLAIN = re.compile(r"[-\w./:@+]+")


class _Missing:
    def __repr__(self) -> str:
        return ABSENT


MISSING: Any = _Missing()


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any  # MISSING when the field was not set
    after: Any

    def render(self) -> str:
        return f"{self.path}: {show(self.before)} {ARROW} {show(self.after)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "from": None if self.before is MISSING else self.before,
            "to": None if self.after is MISSING else self.after,
        }


@dataclass
class AgentDiff:
    name: str
    change: str  # "added", "removed" or "modified"
    from_version: str | None = None
    to_version: str | None = None
    fields: list[FieldChange] = field(default_factory=list)
    tools_added: list[str] = field(default_factory=list)
    tools_removed: list[str] = field(default_factory=list)
    prompt: list[str] = field(default_factory=list)  # unified diff lines

    @property
    def empty(self) -> bool:
        return not (self.fields or self.tools_added or self.tools_removed or self.prompt)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "change": self.change,
            "fromVersion": self.from_version,
            "toVersion": self.to_version,
            "fields": [change.as_dict() for change in self.fields],
            "toolsAdded": self.tools_added,
            "toolsRemoved": self.tools_removed,
            "prompt": "\n".join(self.prompt) + "\n" if self.prompt else None,
        }

    def render(self) -> list[str]:
        versions = {
            "added": self.to_version,
            "removed": self.from_version,
            "modified": f"{self.from_version} {ARROW} {self.to_version}",
        }[self.change]
        lines = [f'agent "{self.name}" {self.change}: {versions}']
        if self.change != "modified":
            return lines
        lines.extend(f"  {change.render()}" for change in self.fields)
        if self.tools_added:
            lines.append(f"  tools added: {', '.join(self.tools_added)}")
        if self.tools_removed:
            lines.append(f"  tools removed: {', '.join(self.tools_removed)}")
        if self.prompt:
            lines.append("  prompt:")
            lines.extend(f"    {line}" for line in self.prompt)
        if self.empty:
            lines.append("  (no manifest field changed: a file the agent references did)")
        return lines


def show(value: Any) -> str:
    """A value as one short token: plain words bare, anything else as JSON."""
    if value is MISSING or value is None:
        return ABSENT
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def compare(
    name: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    from_version: str | None = None,
    to_version: str | None = None,
    prompts: tuple[str | None, str | None] = (None, None),
    labels: tuple[str, str] = ("before", "after"),
) -> AgentDiff:
    """How `after` differs from `before`; `prompts` are the resolved prompt texts if known."""
    result = AgentDiff(name, "modified", from_version, to_version)
    result.fields = [
        change for change in _walk(before, after, ()) if change.path not in ("spec.prompt.system",)
    ]
    old_tools = _named(_get(before, "spec", "tools"))
    new_tools = _named(_get(after, "spec", "tools"))
    result.tools_added = [tool for tool in new_tools if tool not in old_tools]
    result.tools_removed = [tool for tool in old_tools if tool not in new_tools]
    old_prompt = prompts[0] if prompts[0] is not None else _inline_prompt(before)
    new_prompt = prompts[1] if prompts[1] is not None else _inline_prompt(after)
    if old_prompt != new_prompt:
        old_file = _get(before, "spec", "prompt", "file") or "spec.prompt.system"
        new_file = _get(after, "spec", "prompt", "file") or "spec.prompt.system"
        result.prompt = unified(
            old_prompt or "", new_prompt or "", f"{labels[0]}:{old_file}", f"{labels[1]}:{new_file}"
        )
    return result


def unified(before: str, after: str, from_label: str, to_label: str) -> list[str]:
    return list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), from_label, to_label, lineterm=""
        )
    )


def _inline_prompt(manifest: Mapping[str, Any]) -> str | None:
    value = _get(manifest, "spec", "prompt", "system")
    return None if value is None else str(value)


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _named(items: Any) -> dict[str, Any]:
    """Items of a list keyed by their `name`, in order; {} if it is not such a list."""
    if not isinstance(items, list):
        return {}
    return {str(item["name"]): item for item in items if isinstance(item, Mapping)}


def _is_named_list(value: Any) -> bool:
    # An empty list fits too: a list of tools may start or end empty.
    return isinstance(value, list) and all(
        isinstance(item, Mapping) and "name" in item for item in value
    )


def _walk(before: Any, after: Any, path: tuple[str, ...]) -> Iterator[FieldChange]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in [*before, *(key for key in after if key not in before)]:
            yield from _walk(before.get(key, MISSING), after.get(key, MISSING), (*path, key))
        return
    named = (before is MISSING or _is_named_list(before)) and (
        after is MISSING or _is_named_list(after)
    )
    if named and not (before is MISSING and after is MISSING):
        old, new = _named(before), _named(after)
        tools = path == ("spec", "tools")
        for key in [*old, *(key for key in new if key not in old)]:
            if tools and (key not in old or key not in new):
                continue  # reported as a tool added or removed
            item_before = {k: v for k, v in old.get(key, {}).items() if k != "name"}
            item_after = {k: v for k, v in new.get(key, {}).items() if k != "name"}
            yield from _walk(item_before, item_after, (*path[:-1], f"{path[-1]}[{key}]"))
        return
    if isinstance(before, Mapping) and after is MISSING:
        for key in before:
            yield from _walk(before[key], MISSING, (*path, key))
        return
    if before is MISSING and isinstance(after, Mapping):
        for key in after:
            yield from _walk(MISSING, after[key], (*path, key))
        return
    if before != after:
        yield FieldChange(".".join(path), before, after)
