"""The agent page's semantic diff between any two of its revisions, as `shipyard diff` shows.

Both manifests and prompt texts come from the revisions the page already read (each
revision keeps its manifest and its prompt file's text), so comparing costs no git
checkout and no extra store query. By default the page compares the revision serving
with the one before it of another version: what the last rollout changed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from controller.api.ui.markup import attr, short, text
from controller.specs import manifest_diff
from controller.specs.manifest_diff import AgentDiff
from controller.store.records import Revision


@dataclass(frozen=True)
class Comparison:
    """Which revisions were compared (None when not decided) and what changed."""

    older: Revision | None
    newer: Revision | None
    diff: AgentDiff | None
    note: str  # why nothing (or less than asked) is shown; "" when all is well


def choose(
    agent: str,
    revisions: Sequence[Revision],
    serving: str | None,
    asked_from: str | None,
    asked_to: str | None,
) -> Comparison:
    """Compare the revisions numbered `asked_from` and `asked_to` (query text, maybe bad),
    each defaulting as the page's default comparison does."""
    if not revisions:
        return Comparison(None, None, None, "No revisions yet.")
    by_number = {revision.number: revision for revision in revisions}
    known = f"{revisions[0].number} to {revisions[-1].number}"
    newer, problem = _pick(asked_to, by_number, known)
    if newer is None:
        newer = _serving(revisions, serving)
    older, older_problem = _pick(asked_from, by_number, known)
    problem = " ".join(part for part in (older_problem, problem) if part)
    if older is None:
        # What the serving revision changed from the one before it of another version;
        # after an undo to an old revision, what the newer one it left would change.
        others = [r for r in revisions if r.version != newer.version]
        before = [r for r in others if r.number < newer.number]
        older = before[-1] if before else (others[-1] if others else None)
    if older is None:
        return Comparison(None, newer, None, problem)
    if older.number > newer.number:
        older, newer = newer, older
    return Comparison(older, newer, compare(agent, older, newer), problem)


def compare(agent: str, older: Revision, newer: Revision) -> AgentDiff:
    return manifest_diff.compare(
        agent,
        _manifest(older),
        _manifest(newer),
        from_version=older.version,
        to_version=newer.version,
        prompts=(older.prompt_text, newer.prompt_text),
        labels=(f"#{older.number}", f"#{newer.number}"),
    )


def _manifest(revision: Revision) -> dict[str, object]:
    loaded = json.loads(revision.manifest_json)
    return loaded if isinstance(loaded, dict) else {}


def _pick(
    asked: str | None, by_number: dict[int, Revision], known: str
) -> tuple[Revision | None, str]:
    if not asked:
        return None, ""
    if not asked.strip().isdigit():
        return None, f"“{asked[:40]}” is not a revision number (revisions {known})."
    found = by_number.get(int(asked))
    if found is None:
        return None, f"Revision {int(asked)} is not among the revisions shown ({known})."
    return found, ""


def _serving(revisions: Sequence[Revision], serving: str | None) -> Revision:
    for revision in reversed(revisions):
        if revision.version == serving:
            return revision
    return revisions[-1]


def section(href: str, revisions: Sequence[Revision], comparison: Comparison) -> str:
    """The page's "Changes between versions" section: a GET form to pick two revisions,
    then every changed field, the tools added or removed, and the prompt's unified diff."""
    heading = '<h2 id="diff">Changes between versions</h2>'
    if not revisions:
        return f"{heading}<p>No revisions yet.</p>"
    note = (
        f'<p class="problems" role="status">{text(comparison.note)}</p>' if comparison.note else ""
    )
    form = (
        f'<form method="get" action="{href}#diff" class="filters">'
        f"{_select('From', 'from', revisions, comparison.older)}"
        f"{_select('To', 'to', revisions, comparison.newer)}"
        '<button type="submit">Compare</button></form>'
    )
    return f"{heading}{form}{note}{_changes(comparison)}"


def _select(label: str, name: str, revisions: Sequence[Revision], chosen: Revision | None) -> str:
    picked = chosen.number if chosen is not None else None
    options = "".join(
        f'<option value="{r.number}"{" selected" if r.number == picked else ""}>'
        f"#{r.number} {text(r.version)} · {short(r.commit)} · "
        f"{text(_first_line(r.message))}</option>"
        for r in reversed(revisions)
    )
    return f'<label>{label} <select name="{attr(name)}">{options}</select></label>'


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= 60 else line[:59] + "…"


def _changes(comparison: Comparison) -> str:
    older, newer, diff = comparison.older, comparison.newer, comparison.diff
    if older is None or newer is None or diff is None:
        return "<p>Only one version so far: nothing to compare.</p>"
    title = (
        f"<p>Revision #{older.number} <code>{text(older.version)}</code> "
        f"({short(older.commit)}) → revision #{newer.number} <code>{text(newer.version)}</code> "
        f"({short(newer.commit)})</p>"
    )
    if older.version == newer.version:
        return f"{title}<p>Same version: nothing differs.</p>"
    if diff.empty:
        return f"{title}<p>No manifest field changed: a file the agent references did.</p>"
    return f"{title}{_fields(diff)}{_tools(diff)}{_prompt(diff)}"


def _fields(diff: AgentDiff) -> str:
    if not diff.fields:
        return ""
    rows = "".join(
        f"<tr><th scope=row><code>{text(change.path)}</code></th>"
        f"<td><code>{text(manifest_diff.show(change.before))}</code></td>"
        f"<td><code>{text(manifest_diff.show(change.after))}</code></td></tr>"
        for change in diff.fields
    )
    return (
        '<div class="scroll"><table class="diff-fields"><caption>Changed fields</caption>'
        "<thead><tr><th scope=col>Field</th><th scope=col>Before</th><th scope=col>After</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _tools(diff: AgentDiff) -> str:
    parts = []
    if diff.tools_added:
        parts.append(f"<li>Tools added: {text(', '.join(diff.tools_added))}</li>")
    if diff.tools_removed:
        parts.append(f"<li>Tools removed: {text(', '.join(diff.tools_removed))}</li>")
    return f"<ul>{''.join(parts)}</ul>" if parts else ""


def _prompt(diff: AgentDiff) -> str:
    if not diff.prompt:
        return ""
    lines = "\n".join(f'<span class="{_kind(line)}">{text(line)}</span>' for line in diff.prompt)
    return (
        "<h3>Prompt</h3>"
        f'<pre class="diff" tabindex=0 aria-label="Prompt diff, unified format">{lines}</pre>'
    )


def _kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "added", "-": "removed"}.get(line[:1], "same")
