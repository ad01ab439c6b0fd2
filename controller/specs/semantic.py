"""Checks a JSON Schema cannot express: files the spec references, names that must be
unique or valid together, variables Shipyard reserves for itself."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.specs import tree as trees
from controller.specs.problems import field_path

MAX_PROMPT_BYTES = 256 * 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = ("PORT",)
_RESERVED_ENV_PREFIX = "SHIPYARD_"

Path = tuple[str | int, ...]


@dataclass
class Outcome:
    """What the checks found, and what they read on the way."""

    findings: list[tuple[Path, bool, str]] = field(default_factory=list)
    referenced_files: dict[str, bytes] = field(default_factory=dict)
    prompt_text: str = ""


def check(document: Mapping[str, Any], tree: trees.Tree) -> Outcome:
    """Check a document that passed the schema; read the files it references."""
    outcome = Outcome()
    spec = document["spec"]
    _check_prompt(spec["prompt"], tree, outcome)
    _check_environment(spec, outcome)
    _check_run(spec.get("run"), outcome)
    _check_tools(spec.get("tools", []), outcome)
    return outcome


def _check_prompt(prompt: Mapping[str, Any], tree: trees.Tree, outcome: Outcome) -> None:
    if "system" in prompt:
        outcome.prompt_text = prompt["system"]
        return
    where: Path = ("spec", "prompt", "file")
    try:
        path = trees.normalize(prompt["file"])
        data = tree.read(path, MAX_PROMPT_BYTES)
    except trees.TreeError as error:
        outcome.findings.append((where, False, f"prompt file {error}"))
        return
    try:
        outcome.prompt_text = data.decode("utf-8")
    except UnicodeDecodeError:
        outcome.findings.append((where, False, f"prompt file {path!r} is not UTF-8 text"))
        return
    outcome.referenced_files[path] = data


def _check_environment(spec: Mapping[str, Any], outcome: Outcome) -> None:
    seen: dict[str, Path] = {}
    entries: list[tuple[Path, str]] = [
        (("spec", "env", index, "name"), item["name"])
        for index, item in enumerate(spec.get("env", []))
    ]
    entries += [
        (("spec", "secrets", index, "env"), item["env"])
        for index, item in enumerate(spec.get("secrets", []))
    ]
    for index, item in enumerate(spec.get("env", [])):
        if "\x00" in item["value"]:
            where_value: Path = ("spec", "env", index, "value")
            outcome.findings.append((where_value, False, "contains a NUL character"))
    for where, name in entries:
        if not _ENV_NAME.match(name):
            message = (
                f"{name!r} is not a valid environment variable name "
                "(letters, digits and '_', not starting with a digit)"
            )
            outcome.findings.append((where, False, message))
        elif name in _RESERVED_ENV or name.startswith(_RESERVED_ENV_PREFIX):
            message = f"{name!r} is set by Shipyard itself (PORT and SHIPYARD_* are reserved)"
            outcome.findings.append((where, False, message))
        elif name in seen:
            first = field_path(seen[name])
            outcome.findings.append((where, False, f"{name!r} is already set by {first}"))
        else:
            seen[name] = where


def _check_run(run: Mapping[str, Any] | None, outcome: Outcome) -> None:
    if run is None or "cwd" not in run:
        return
    try:
        trees.normalize(run["cwd"])
    except trees.TreeError as error:
        outcome.findings.append((("spec", "run", "cwd"), False, str(error)))


def _check_tools(tools: list[Mapping[str, Any]], outcome: Outcome) -> None:
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        if "url" in tool and "mcp" in tool:
            message = "a tool takes a url or an mcp server reference, not both"
            outcome.findings.append((("spec", "tools", index), False, message))
        if tool["name"] in seen:
            message = f"tool name {tool['name']!r} is used twice in this agent"
            outcome.findings.append((("spec", "tools", index, "name"), False, message))
        seen.add(tool["name"])
