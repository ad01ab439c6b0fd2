"""Secret scopes: which values production and previews may receive, and why not others."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.reconciler import secret_scopes
from controller.reconciler.secret_scopes import SecretsFileError, parse, view

PREVIEW = "preview-feature"
FILE = """\
# The format before scopes existed: everything here is production only.
OPENAI_API_KEY=sk-live-production
export QUOTED="with spaces"

[previews]
OPENAI_API_KEY=sk-test-previews
PREVIEW_ONLY=p

[all]
SENTRY_DSN=https://dsn.example/1
"""


def test_lines_before_any_section_are_production_only() -> None:
    secrets = parse("OPENAI_API_KEY=sk-live\nOTHER='x'\n")
    assert dict(view(secrets, "production")) == {"OPENAI_API_KEY": "sk-live", "OTHER": "x"}
    assert dict(view(secrets, PREVIEW)) == {}


def test_each_environment_gets_its_scope_and_the_shared_values() -> None:
    secrets = parse(FILE)
    assert dict(view(secrets, "production")) == {
        "OPENAI_API_KEY": "sk-live-production",
        "QUOTED": "with spaces",
        "SENTRY_DSN": "https://dsn.example/1",
    }
    assert dict(view(secrets, PREVIEW)) == {
        "OPENAI_API_KEY": "sk-test-previews",
        "PREVIEW_ONLY": "p",
        "SENTRY_DSN": "https://dsn.example/1",
    }


def test_a_scope_of_its_own_wins_over_all() -> None:
    secrets = parse("[all]\nKEY=shared\n[production]\nKEY=prod\n")
    assert view(secrets, "production")["KEY"] == "prod"
    assert view(secrets, PREVIEW)["KEY"] == "shared"


def test_a_preview_asking_for_a_production_secret_is_told_how_to_expose_it() -> None:
    previews = view(parse("OPENAI_API_KEY=sk-live\n"), PREVIEW, secrets_file=Path("/etc/s.env"))
    assert "OPENAI_API_KEY" not in previews
    message = previews.explain("openai/api-key", "OPENAI_API_KEY")
    assert "scoped to production" in message
    assert "[previews]" in message
    assert "[all]" in message
    assert "/etc/s.env" in message
    assert "sk-live" not in message


@pytest.mark.parametrize(
    ("environment", "advice"),
    [("production", "before any section"), (PREVIEW, "under [previews] or [all]")],
    ids=["production", "preview"],
)
def test_a_missing_secret_says_where_to_add_it(environment: str, advice: str) -> None:
    message = view(parse(""), environment).explain("openai/api-key", "OPENAI_API_KEY")
    assert "is not set" in message
    assert advice in message


@pytest.mark.parametrize(
    "variable",
    ["SHIPYARD_WEBHOOK_SECRET", "SHIPYARD_WRITE_TOKENS", "SHIPYARD_GITHUB_TOKEN", "KUBECONFIG"],
)
def test_the_controllers_names_are_never_resolvable(variable: str) -> None:
    # Even an operator who writes one into the secrets file, scoped everywhere.
    secrets = parse(f"{variable}=x\n[all]\n{variable}=y\n")
    for environment in ("production", PREVIEW):
        scoped = view(secrets, environment)
        assert variable not in scoped
        assert "controller's credentials" in scoped.explain("shipyard/x", variable)


def test_a_value_that_is_a_controller_credential_is_refused_under_any_name() -> None:
    webhook_secret = "whsec-0123456789"
    secrets = parse(
        f"[all]\nINNOCENT={webhook_secret}\nBEARER=Bearer {webhook_secret}\nFINE=other\n"
    )
    for environment in ("production", PREVIEW):
        scoped = view(secrets, environment, credentials={webhook_secret})
        assert dict(scoped) == {"FINE": "other"}
        message = scoped.explain("innocent/x", "INNOCENT")
        assert "controller's own credentials" in message
        assert webhook_secret not in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[staging]\nX=1\n", "unknown section [staging]"),
        ("sk-live-value-without-a-name\n", "expected NAME=VALUE"),
        ("BAD-NAME=1\n", "expected NAME=VALUE"),
    ],
    ids=["unknown-section", "no-name", "bad-name"],
)
def test_a_bad_secrets_file_is_refused_without_echoing_values(text: str, problem: str) -> None:
    with pytest.raises(SecretsFileError, match=r"s\.env:\d+") as caught:
        parse(text, "s.env")
    assert problem in str(caught.value)
    assert "sk-live" not in str(caught.value)


def test_no_file_means_no_secrets(tmp_path: Path) -> None:
    assert secret_scopes.read_file(None) == secret_scopes.ScopedSecrets()
    assert secret_scopes.read_file(tmp_path / "absent.env") == secret_scopes.ScopedSecrets()


def test_values_never_show_in_reprs() -> None:
    secrets = parse("[all]\nKEY=hunter2-value\n")
    assert "hunter2" not in repr(secrets)
    assert "hunter2" not in repr(view(secrets, PREVIEW))
