"""The dashboard's pages escape whatever a repository or a request put in them, and say
ages and problems as the CLI does."""

from __future__ import annotations

import json

from controller.api.ui import markup, pages, version_diff
from controller.store.records import Event, Revision, Rollout, RolloutResult

HOSTILE = '<script>alert("x")</script>'


def test_a_commit_message_cannot_inject_markup_into_the_timeline() -> None:
    rollout = Rollout(1, "alpha", "production", None, "v1", "abc123", HOSTILE, 0.0, 1.0,
                      RolloutResult.HEALTHY, HOSTILE)  # fmt: skip
    revision = Revision(1, "alpha", "production", "v1", "abc123", "main", "ann", HOSTILE, 0.0, "{}")
    view = pages.AgentView(
        environment="production",
        status={
            "name": "alpha", "version": "v1", "desiredVersion": "v1", "state": "Healthy",
            "message": HOSTILE, "ready": True, "since": None, "url": None,
        },
        rollouts=[rollout], revisions=[revision], pin=None,
        events=[Event(1, 0.0, "Warning", "Crashed", "production", "alpha", HOSTILE)],
        requests=[], logs=[(0.0, "stdout", HOSTILE)], logs_note="", previous=False,
    )  # fmt: skip
    page = pages.agent(view, may_write=True)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_a_stalled_environment_lists_problems_as_file_line_and_field() -> None:
    environment = {
        "name": "preview-x", "branch": "x", "commit": "0123456789",
        "conditions": [{"type": "Stalled", "status": "True", "message": "invalid manifests"}],
        "problems": [{"file": "agents/a.yaml", "line": 7, "field": "spec.bogus",
                      "message": HOSTILE}],
        "agents": [],
    }  # fmt: skip
    page = pages.overview([environment], {"x": [12]})
    assert "<code>agents/a.yaml:7 (spec.bogus)</code>" in page
    assert "pull request #12" in page
    assert "<script>" not in page


def test_ages_read_as_kubectl_prints_them() -> None:
    assert markup.age(None) == "—"
    assert markup.age(100.0, now=145.0) == "45s"
    assert markup.age(0.0, now=3 * 3600 + 5) == "3h"
    assert markup.age(0.0, now=2 * 86400) == "2d"


def _revision(
    number: int, version: str, manifest: dict[str, object], prompt: str | None
) -> Revision:
    return Revision(number, "alpha", "production", version, f"c{number}" * 4, "main", "ann",
                    f"Change {number}", float(number), json.dumps(manifest), prompt)  # fmt: skip


def _manifest(temperature: float, tools: list[str], model: str = "small") -> dict[str, object]:
    return {
        "apiVersion": "shipyard.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "alpha"},
        "spec": {"model": {"provider": "local", "name": model,
                           "parameters": {"temperature": temperature}},
                 "prompt": {"file": "prompts/alpha.md"},
                 "tools": [{"name": name, "url": f"http://{name}"} for name in tools]},
    }  # fmt: skip


REVISIONS = [
    _revision(1, "v1", _manifest(0.2, ["search"]), "Be brief.\n"),
    _revision(2, "v2", _manifest(0.7, ["search", "calc"], "large"), f"Be brief.\n{HOSTILE}\n"),
    _revision(3, "v1", _manifest(0.2, ["search"]), "Be brief.\n"),  # undone back to v1
]


def test_the_default_comparison_is_what_the_serving_revision_changed() -> None:
    chosen = version_diff.choose("alpha", REVISIONS, "v1", None, None)
    assert (chosen.older, chosen.newer) == (REVISIONS[1], REVISIONS[2])
    assert chosen.note == ""
    section = version_diff.section("/ui/x", REVISIONS, chosen)
    assert "<code>spec.model.name</code></th><td><code>large</code></td><td><code>small</code>" in (
        section
    )
    assert "Tools removed: calc" in section
    assert '<span class="removed">-' in section  # the hostile prompt line, taken away
    assert "<script>" not in section
    assert '<option value="3" selected>' in section


def test_any_two_revisions_compare_oldest_first_and_bad_choices_are_said() -> None:
    chosen = version_diff.choose("alpha", REVISIONS, "v1", "2", "1")
    assert (chosen.older, chosen.newer) == (REVISIONS[0], REVISIONS[1])
    assert chosen.diff is not None
    changed = {change.path: (change.before, change.after) for change in chosen.diff.fields}
    assert changed["spec.model.parameters.temperature"] == (0.2, 0.7)
    assert chosen.diff.tools_added == ["calc"]
    assert any(HOSTILE in line for line in chosen.diff.prompt)

    same = version_diff.choose("alpha", REVISIONS, "v1", "1", "3")
    assert "Same version" in version_diff.section("/ui/x", REVISIONS, same)
    bad = version_diff.choose("alpha", REVISIONS, "v1", "x<y", "99")
    assert "is not a revision number" in bad.note
    assert "Revision 99 is not among" in bad.note
    shown = version_diff.section("/ui/x", REVISIONS, bad)
    assert "x&lt;y" in shown
    assert bad.newer == REVISIONS[2]  # the default stands in for what was not understood
    lone = version_diff.choose("alpha", REVISIONS[:1], "v1", None, None)
    assert lone.note == ""
    assert "nothing to compare" in version_diff.section("/ui/x", REVISIONS[:1], lone)


def test_after_an_undo_to_the_first_revision_the_default_shows_what_it_left() -> None:
    chosen = version_diff.choose("alpha", REVISIONS[:2], "v1", None, None)
    assert (chosen.older, chosen.newer) == (REVISIONS[0], REVISIONS[1])
