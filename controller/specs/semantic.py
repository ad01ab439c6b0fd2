"""Checks a JSON Schema cannot express: files the spec references, names that must be
unique or valid together, variables Shipyard reserves for itself, resource requests no
greater than their limits; and, for one target, what that target needs (Kubernetes:
an image, requests a preview namespace's LimitRange admits)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.specs import canary_checks, quantity
from controller.specs import tree as trees
from controller.specs.problems import field_path
from controller.targets.kubernetes import rendering

MAX_PROMPT_BYTES = 256 * 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = ("PORT",)
_RESERVED_ENV_PREFIX = "SHIPYARD_"

Path = tuple[str | int, ...]

KUBERNETES = "kubernetes"
TARGETS = ("local", KUBERNETES)
NO_IMAGE = (
    "spec.image is required on the kubernetes target, which runs agents from container images"
)


@dataclass
class Outcome:
    """What the checks found, and what they read on the way."""

    findings: list[tuple[Path, bool, str]] = field(default_factory=list)
    referenced_files: dict[str, bytes] = field(default_factory=dict)
    prompt_text: str = ""


def check(document: Mapping[str, Any], tree: trees.Tree, target: str | None = None) -> Outcome:
    """Check a document that passed the schema; read the files it references. With a
    `target`, also what that target needs to run the agent."""
    outcome = Outcome()
    spec = document["spec"]
    _check_prompt(spec["prompt"], tree, outcome)
    _check_environment(spec, outcome)
    _check_run(spec.get("run"), outcome)
    _check_tools(spec.get("tools", []), outcome)
    _check_resources(spec.get("resources") or {}, outcome)
    outcome.findings += canary_checks.check(spec.get("rollout") or {})
    if target == KUBERNETES:
        _check_kubernetes(spec, outcome)
    return outcome


def _check_resources(resources: Mapping[str, Any], outcome: Outcome) -> None:
    """Quantities a cluster accepts, and no request above its own limit (a 422 there)."""
    parsed: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    for section in ("requests", "limits"):
        for name, value in (resources.get(section) or {}).items():
            try:
                parsed[section][name] = quantity.parse(value)
            except quantity.QuantityError as error:
                outcome.findings.append((("spec", "resources", section, name), False, str(error)))
    for name, requested in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and requested > limit:
            message = (
                f"request {resources['requests'][name]} is above the limit "
                f"{resources['limits'][name]} (spec.resources.limits.{name}); the Kubernetes "
                "API server refuses a request greater than its limit"
            )
            outcome.findings.append((("spec", "resources", "requests", name), False, message))


def _check_kubernetes(spec: Mapping[str, Any], outcome: Outcome) -> None:
    if not spec.get("image"):
        outcome.findings.append((("spec", "image"), True, NO_IMAGE))
    if not (spec.get("preview") or {}).get("enabled", True):
        return
    resources = spec.get("resources") or {}
    limits = resources.get("limits") or {}
    for name, value in (resources.get("requests") or {}).items():
        default = rendering.DEFAULT_CONTAINER_LIMITS.get(name)
        if name in limits or default is None:
            continue
        try:
            above = quantity.parse(value) > quantity.parse(default)
        except quantity.QuantityError:
            continue  # reported by _check_resources
        if above:
            message = (
                f"request {value} is above {default}, the default limit a preview namespace "
                f"gives a container without spec.resources.limits.{name} (LimitRange "
                f"{rendering.LIMIT_RANGE}): admission would refuse its pods; set "
                f"spec.resources.limits.{name}"
            )
            outcome.findings.append((("spec", "resources", "requests", name), False, message))


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
