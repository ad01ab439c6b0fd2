"""Include and exclude globs decide which branches get previews; production is never filtered."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preview.environments import EnvironmentPolicy, is_production
from preview.naming import PRODUCTION, environment_name

POLICY = EnvironmentPolicy(
    default_branch="main", include=("feature/*", "fix/*"), exclude=("*/wip*",)
)


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        pytest.param("main", PRODUCTION, id="default-branch"),
        pytest.param("feature/login", "preview-feature-login--", id="included"),
        pytest.param("fix/crash", "preview-fix-crash--", id="second-include"),
        pytest.param("feature/team/login", "preview-feature-team-login--", id="star-crosses-slash"),
        pytest.param("feature/wip-login", None, id="excluded"),
        pytest.param("fix/team/wip", None, id="excluded-across-slash"),
        pytest.param("release/1.0", None, id="not-included"),
        pytest.param("Feature/login", None, id="case-sensitive"),
        pytest.param("feature", None, id="prefix-without-slash"),
        pytest.param("feature/swipe", "preview-feature-swipe--", id="exclude-needs-slash-wip"),
    ],
)
def test_policy(branch: str, expected: str | None) -> None:
    environment = POLICY.environment_for(branch)
    if expected is None or expected == PRODUCTION:
        assert environment == expected
    else:
        assert environment is not None
        assert environment.startswith(expected)
        assert environment == environment_name(branch, "main")


def test_default_includes_every_branch() -> None:
    policy = EnvironmentPolicy(default_branch="main")
    assert policy.environment_for("feature-x") == "preview-feature-x"
    assert policy.environment_for("anything/at/all") == environment_name("anything/at/all", "main")


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(EnvironmentPolicy("main", include=()), id="nothing-included"),
        pytest.param(EnvironmentPolicy("main", exclude=("*",)), id="everything-excluded"),
        pytest.param(EnvironmentPolicy("main", include=("feature/*",)), id="default-not-included"),
        pytest.param(EnvironmentPolicy("main", exclude=("main",)), id="default-excluded"),
    ],
)
def test_default_branch_is_production_whatever_the_patterns(policy: EnvironmentPolicy) -> None:
    assert policy.environment_for("main") == PRODUCTION


@given(st.text(), st.text(min_size=1))
def test_only_the_default_branch_is_production(branch: str, default: str) -> None:
    environment = EnvironmentPolicy(default_branch=default).environment_for(branch)
    assert environment is not None
    assert is_production(environment) is (branch == default)


def test_is_production() -> None:
    assert is_production(PRODUCTION)
    assert not is_production("preview-production")
    assert not is_production("Production")


def test_rejects_empty_default_branch() -> None:
    with pytest.raises(ValueError, match="default_branch"):
        EnvironmentPolicy(default_branch="")


def test_rejects_a_bare_string_of_patterns() -> None:
    with pytest.raises(TypeError, match="include"):
        EnvironmentPolicy(default_branch="main", include="feature/*")  # type: ignore[arg-type]


def test_is_a_frozen_value() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        POLICY.default_branch = "trunk"  # type: ignore[misc]
    assert EnvironmentPolicy("main") == EnvironmentPolicy("main")
