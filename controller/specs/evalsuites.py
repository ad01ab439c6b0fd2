"""Discover, parse and check the eval suites (`evals/*.yaml`) of an agents repository.

Suites are read like manifests: through the position-keeping YAML reader, so every
problem names its file and line, and with the same limits against hostile files. What a
schema cannot say is checked here: a case's regex must not be able to backtrack for
ever, its JSON Schema must itself be valid, and the agent it names must exist.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import schemas
from controller.specs import tree as trees
from controller.specs import validation, yamldoc
from controller.specs.loading import MAX_MANIFEST_BYTES
from controller.specs.problems import Problem, field_path

if TYPE_CHECKING:
    import jsonschema

DEFAULT_ROOT = "evals"
API_VERSION = "shipyard.dev/v1alpha1"
KIND = "EvalSuite"
SUITE_BYTES = MAX_MANIFEST_BYTES

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    """One golden case: the request to send and the assertions on its answer."""

    name: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    content_type: str | None
    expect: Mapping[str, Any]


@dataclass(frozen=True)
class Suite:
    """A valid suite: its cases, where it is defined and a digest of its content.

    The digest keys cached results: the same version evaluated by the same suite content
    is never run again, while any edit to the suite runs it afresh.
    """

    name: str
    agent: str
    cases: tuple[Case, ...]
    digest: str
    file: str
    line: int


@dataclass(frozen=True)
class SuiteResult:
    """The valid suites and every problem found, side by side."""

    suites: tuple[Suite, ...]
    problems: tuple[Problem, ...]
    files: int


def collect(
    tree: trees.Tree,
    agents: Collection[str] | None,
    root: str = DEFAULT_ROOT,
    paths: list[str] | None = None,
) -> SuiteResult:
    """Load the suites under `root` (or exactly `paths`); with `agents`, check their names."""
    try:
        files = paths if paths is not None else tree.manifest_paths(root)
    except (trees.TreeError, OSError):
        files = []  # no evals directory: a repository without suites
    problems: list[Problem] = []
    suites: list[Suite] = []
    seen: dict[str, Suite] = {}
    for path in files:
        for suite in _load_file(tree, path, problems):
            first = seen.get(suite.name)
            if first is not None:
                message = f'suite "{suite.name}" is already defined at {first.file}:{first.line}'
                problems.append(Problem(suite.file, suite.line, 1, "metadata.name", message))
                continue
            if agents is not None and suite.agent not in agents:
                known = ", ".join(sorted(agents)) or "none"
                message = f'no agent is named "{suite.agent}" (agents: {known})'
                problems.append(Problem(suite.file, suite.line, 1, "spec.agent", message))
                continue
            seen[suite.name] = suite
            suites.append(suite)
    return SuiteResult(tuple(suites), tuple(problems), len(files))


def _load_file(tree: trees.Tree, path: str, problems: list[Problem]) -> list[Suite]:
    try:
        data = tree.read(path, SUITE_BYTES)
    except trees.TreeError as error:
        problems.append(Problem(path, 1, 1, "", str(error)))
        return []
    if b"\x00" in data:
        problems.append(Problem(path, 1, 1, "", "binary file (contains NUL bytes), not YAML"))
        return []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problems.append(Problem(path, line, 1, "", "not valid UTF-8; suites must be UTF-8 text"))
        return []
    try:
        documents = yamldoc.parse(text)
    except yamldoc.YamlProblem as error:
        problems.append(Problem(path, error.mark[0], error.mark[1], "", error.message))
        return []
    suites = []
    for document in documents:
        suite = _load_document(path, document, problems)
        if suite is not None:
            suites.append(suite)
    return suites


def _load_document(path: str, document: yamldoc.Document, problems: list[Problem]) -> Suite | None:
    if document.value is None:
        return None
    found = [Problem(path, mark[0], mark[1], "", message) for mark, message in document.problems]
    value = document.value
    if not isinstance(value, dict):
        message = "an eval suite must be a mapping with apiVersion, kind, metadata and spec"
        problems.append(Problem(path, document.mark[0], document.mark[1], "", message))
        return None
    for key, supported in (("apiVersion", API_VERSION), ("kind", KIND)):
        if value.get(key) != supported:
            got = value.get(key)
            message = (
                f"required field is missing (supported: {supported})"
                if got is None
                else f"{got!r} is not supported; the supported {key} is {supported}"
            )
            problems.append(_located(path, document, (key,), False, message))
            return None
    for field, is_key, message in _schema_problems(value):
        found.append(_located(path, document, field, is_key, message))
    if not found:
        for field, message in _semantic_problems(value):
            found.append(_located(path, document, field, False, message))
    problems.extend(found)
    if found:
        return None
    return _build(value, path, document.mark[0])


@cache
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema  # noqa: PLC0415  (only when suites exist)

    schema = schemas.load(schemas.EVALSUITE_V1ALPHA1)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_problems(value: Mapping[str, Any]) -> Iterator[tuple[Path, bool, str]]:
    validator = _validator()
    errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        yield from validation.explain(error)


def _semantic_problems(value: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    names: set[str] = set()
    for index, case in enumerate(value["spec"]["cases"]):
        where: Path = ("spec", "cases", index)
        if case["name"] in names:
            yield (*where, "name"), f'case "{case["name"]}" appears twice in this suite'
        names.add(case["name"])
        if "json" in case["request"] and "body" in case["request"]:
            yield (*where, "request"), "set json or body, not both"
        expect = case["expect"]
        if "regex" in expect:
            trouble = regex_problem(expect["regex"])
            if trouble:
                yield (*where, "expect", "regex"), trouble
        if "jsonSchema" in expect:
            trouble = _schema_problem(expect["jsonSchema"])
            if trouble:
                yield (*where, "expect", "jsonSchema"), trouble


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` is refused, or None: it must compile and must not nest quantifiers.

    A quantifier or an alternation inside a quantified group, as in `(a+)+`, `(\\w*)*` or
    `(a|aa)+`, can make the matcher backtrack exponentially on a crafted answer;
    Python's `re` has no timeout, so such patterns are refused before they ever run.
    """
    from re import _parser  # type: ignore[attr-defined]  # noqa: PLC0415

    try:
        re.compile(pattern)
        parsed = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        return f"not a valid regular expression: {error}"
    if _nests_quantifiers(parsed, inside_repeat=False):
        return (
            "nested quantifiers or alternatives inside a repeated group (such as (a+)+ or "
            "(a|aa)+) can backtrack for ever; rewrite the pattern without a repeated group "
            "that itself repeats or branches (a character class such as [ab]+ is fine)"
        )
    return None


_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def _nests_quantifiers(items: Any, *, inside_repeat: bool) -> bool:
    for op, argument in items:
        name = str(op)
        if name in _REPEATS:
            low, high, sub = argument
            repeats = high != low
            if (repeats and inside_repeat) or _nests_quantifiers(
                sub, inside_repeat=inside_repeat or repeats
            ):
                return True
            continue
        if name == "BRANCH" and inside_repeat:
            return True  # (a|aa)+: alternatives that overlap backtrack like nested repeats
        children = _children(name, argument)
        if any(_nests_quantifiers(child, inside_repeat=inside_repeat) for child in children):
            return True
    return False


def _children(name: str, argument: Any) -> list[Any]:
    """The sub-patterns of a group, an alternation or a lookaround."""
    if name == "SUBPATTERN":
        return [argument[-1]]
    if name == "BRANCH":
        return list(argument[1])
    if name in {"ASSERT", "ASSERT_NOT"}:
        return [argument[1]]
    return []


def _schema_problem(schema: Any) -> str | None:
    import jsonschema  # noqa: PLC0415

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        return f"not a valid JSON Schema: {error.message}"
    except RecursionError:
        return "not a valid JSON Schema: nested too deeply"
    if "$ref" in json.dumps(schema) and _remote_ref(schema):
        return "only local $refs (starting with #) are allowed"
    return None


def _remote_ref(node: Any) -> bool:
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                return True
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return False


def _build(value: Mapping[str, Any], path: str, line: int) -> Suite:
    spec = value["spec"]
    cases = tuple(_case(case) for case in spec["cases"])
    canonical = json.dumps(
        {"name": value["metadata"]["name"], "spec": spec}, sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    return Suite(value["metadata"]["name"], spec["agent"], cases, digest, path, line)


def _case(case: Mapping[str, Any]) -> Case:
    request = case["request"]
    body: bytes | None = None
    content_type: str | None = None
    if "json" in request:
        body = json.dumps(request["json"]).encode("utf-8")
        content_type = "application/json"
    elif "body" in request:
        body = request["body"].encode("utf-8")
        content_type = "text/plain; charset=utf-8"
    headers = tuple(sorted(request.get("headers", {}).items()))
    return Case(
        name=case["name"],
        method=request.get("method", "POST"),
        path=request["path"],
        headers=headers,
        body=body,
        content_type=content_type,
        expect=case["expect"],
    )


def _located(
    path: str, document: yamldoc.Document, field: Path, is_key: bool, message: str
) -> Problem:
    line, column = document.mark_of(field, prefer_key=is_key)
    return Problem(path, line, column, field_path(field), message)
