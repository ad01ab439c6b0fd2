"""The dashboard's pages escape whatever a repository or a request put in them, and say
ages and problems as the CLI does."""

from __future__ import annotations

from controller.api.ui import markup, pages
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
