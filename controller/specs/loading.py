"""Discover, parse, validate and version every agent manifest in a repository tree.

Loading never stops at the first problem: it reports all of them, each located by file,
line, column and field, and never lets hostile input through as a traceback or a hang.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from controller.errors import ManifestInvalid
from controller.specs import model, semantic, validation, versioning, yamldoc
from controller.specs import tree as trees
from controller.specs.problems import Problem, field_path

DEFAULT_ROOT = "agents"
MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LoadResult:
    """The valid agents and every problem found, side by side."""

    agents: tuple[model.Agent, ...]
    problems: tuple[Problem, ...]
    files: int

    @property
    def ok(self) -> bool:
        return not self.problems


def load(tree: trees.Tree, root: str = DEFAULT_ROOT) -> tuple[model.Agent, ...]:
    """The repository's agents; `ManifestInvalid` with every problem if any exist."""
    result = collect(tree, root)
    if result.problems:
        raise ManifestInvalid(result.problems)
    return result.agents


def collect(
    tree: trees.Tree,
    root: str = DEFAULT_ROOT,
    paths: list[str] | None = None,
    target: str | None = None,
) -> LoadResult:
    """Load the manifests under `root` (or exactly `paths`) and gather every problem;
    with a `target` (`semantic.TARGETS`), also what that target needs."""
    try:
        files = manifest_files(tree, root, paths)
    except (trees.TreeError, OSError) as error:
        return unlisted(root, error)
    return combine(load_file(tree, path, target) for path in files)


class Named(Protocol):
    """What the cross-file check needs of an agent: its name and where it is defined."""

    @property
    def name(self) -> str: ...

    @property
    def file(self) -> str: ...

    @property
    def line(self) -> int: ...


AgentT = TypeVar("AgentT", bound=Named)


@dataclass(frozen=True)
class FileResult(Generic[AgentT]):
    """One manifest file on its own: its agents and its problems, before names are compared."""

    path: str
    agents: tuple[AgentT, ...]
    problems: tuple[Problem, ...]


def manifest_files(
    tree: trees.Tree, root: str = DEFAULT_ROOT, paths: list[str] | None = None
) -> list[str]:
    """Exactly `paths`, else every manifest under `root`; `TreeError` or `OSError` if unlistable."""
    return paths if paths is not None else tree.manifest_paths(root)


def unlisted(root: str, error: Exception) -> LoadResult:
    """The result when the manifests under `root` cannot even be listed."""
    return LoadResult((), (Problem(root, 1, 1, "", f"cannot list manifests: {error}"),), 0)


def load_file(tree: trees.Tree, path: str, target: str | None = None) -> FileResult[model.Agent]:
    """Parse, validate and version one file: the per-file step, independent of other files."""
    problems: list[Problem] = []
    agents = _load_file(tree, path, problems, target)
    return FileResult(path, tuple(agents), tuple(problems))


def combine(results: Iterable[FileResult[model.Agent]]) -> LoadResult:
    """The cross-file step: per-file results, in file order, as one result."""
    agents, problems, files = unique(results)
    return LoadResult(tuple(agents), tuple(problems), files)


def unique(results: Iterable[FileResult[AgentT]]) -> tuple[list[AgentT], list[Problem], int]:
    """Every file's agents and problems in file order, and how many files there were.

    An agent whose name an earlier one already took is a problem, not an agent.
    """
    problems: list[Problem] = []
    agents: list[AgentT] = []
    defined: dict[str, AgentT] = {}
    files = 0
    for result in results:
        files += 1
        problems.extend(result.problems)
        for agent in result.agents:
            first = defined.get(agent.name)
            if first is not None:
                message = f'agent "{agent.name}" is already defined at {first.file}:{first.line}'
                problems.append(Problem(agent.file, agent.line, 1, "metadata.name", message))
                continue
            defined[agent.name] = agent
            agents.append(agent)
    return agents, problems, files


def _load_file(
    tree: trees.Tree, path: str, problems: list[Problem], target: str | None
) -> list[model.Agent]:
    try:
        data = tree.read(path, MAX_MANIFEST_BYTES)
    except trees.TreeError as error:
        problems.append(Problem(path, 1, 1, "", str(error)))
        return []
    text = _decode(path, data, problems)
    if text is None:
        return []
    try:
        documents = yamldoc.parse(text)
    except yamldoc.YamlProblem as error:
        problems.append(Problem(path, error.mark[0], error.mark[1], "", error.message))
        return []
    agents: list[model.Agent] = []
    for document in documents:
        agent = _load_document(tree, path, document, problems, target)
        if agent is not None:
            agents.append(agent)
    return agents


def _decode(path: str, data: bytes, problems: list[Problem]) -> str | None:
    if b"\x00" in data:
        problems.append(Problem(path, 1, 1, "", "binary file (contains NUL bytes), not YAML"))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        message = f"not valid UTF-8 (byte 0x{data[error.start]:02x}); manifests must be UTF-8 text"
        problems.append(Problem(path, line, column, "", message))
        return None


def _load_document(
    tree: trees.Tree,
    path: str,
    document: yamldoc.Document,
    problems: list[Problem],
    target: str | None,
) -> model.Agent | None:
    if document.value is None:
        return None  # an empty document, such as a trailing `---`
    before = len(problems)
    for mark, message in document.problems:
        problems.append(Problem(path, mark[0], mark[1], "", message))
    value = document.value
    if not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else f"a single value ({value!r:.40})"
        message = (
            f"a manifest must be a mapping with apiVersion, kind, metadata and spec, not {kind}"
        )
        problems.append(Problem(path, document.mark[0], document.mark[1], "", message))
        return None
    if not _is_agent(value, path, document, problems):
        return None
    for field, is_key, message in validation.check(value):
        problems.append(_located(path, document, field, is_key, message))
    if len(problems) > before:
        return None
    outcome = semantic.check(value, tree, target)
    for field, is_key, message in outcome.findings:
        problems.append(_located(path, document, field, is_key, message))
    if outcome.findings:
        return None
    spec = model.build_spec(value, outcome.prompt_text)
    version = versioning.compute(spec, outcome.referenced_files)
    return model.Agent(spec=spec, version=version, file=path, line=document.mark[0], manifest=value)


def _is_agent(
    value: Mapping[str, Any], path: str, document: yamldoc.Document, problems: list[Problem]
) -> bool:
    """Check apiVersion and kind first: the rest of the schema only means something for them."""
    for key, supported in (("apiVersion", model.API_VERSION), ("kind", model.KIND)):
        found = value.get(key)
        if found == supported:
            continue
        if found is None:
            message = f"required field is missing (supported: {supported})"
        else:
            message = f"{found!r} is not supported; the supported {key} is {supported}"
        problems.append(_located(path, document, (key,), False, message))
        return False
    return True


def _located(
    path: str, document: yamldoc.Document, field: tuple[str | int, ...], is_key: bool, message: str
) -> Problem:
    line, column = document.mark_of(field, prefer_key=is_key)
    return Problem(path, line, column, field_path(field), message)
