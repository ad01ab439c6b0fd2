"""Branch names become environment names and host labels that DNS accepts and never collide."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preview import naming
from preview.naming import (
    DEFAULT_LOCAL_URL_TEMPLATE,
    MAX_AGENT_NAME,
    MAX_ENVIRONMENT,
    MAX_LABEL,
    PRODUCTION,
    branch_slug,
    environment_name,
    host_label,
    is_dns_label,
    preview_url,
)

DEFAULT = "main"
LONGEST_AGENT = "a" * MAX_AGENT_NAME

# Lone surrogates are what undecodable bytes in a ref name become under
# surrogateescape, so they must be handled like any other character.
ANY_TEXT = st.text(st.characters() | st.characters(categories=["Cs"]))
# A tiny alphabet makes branches that clean to the same text, and so provokes collisions.
NEAR_MISSES = st.text(alphabet="abc-/")
BRANCHES = st.one_of(st.text(), ANY_TEXT, NEAR_MISSES)


def hashed(branch: str) -> str:
    """The hash suffix, computed independently of the implementation."""
    digest = hashlib.sha256(branch.encode("utf-8", "surrogatepass")).digest()
    return base64.b32encode(digest).decode().lower()[:8]


class TestEnvironmentName:
    @pytest.mark.parametrize(
        ("branch", "expected"),
        [
            pytest.param("main", PRODUCTION, id="default-branch"),
            pytest.param("feature-x", "preview-feature-x", id="untouched"),
            pytest.param("production", "preview-production", id="branch-named-production"),
            pytest.param("a" * 29, "preview-" + "a" * 29, id="untouched-longest"),
            pytest.param(
                "Feature/Login", "preview-feature-login--" + hashed("Feature/Login"), id="uppercase"
            ),
            pytest.param("Main", "preview-main--" + hashed("Main"), id="default-branch-other-case"),
            pytest.param("fix/login", "preview-fix-login--" + hashed("fix/login"), id="slash"),
            pytest.param(
                "fix/ümlaut-ß", "preview-fix-mlaut--" + hashed("fix/ümlaut-ß"), id="unicode-latin"
            ),
            pytest.param("日本語", "preview-x--" + hashed("日本語"), id="unicode-only"),
            pytest.param(
                "a" * 200, "preview-" + "a" * 19 + "--" + hashed("a" * 200), id="200-chars"
            ),
            pytest.param(
                "a" * 30, "preview-" + "a" * 19 + "--" + hashed("a" * 30), id="untouched-too-long"
            ),
            pytest.param(
                "abcdefghijklmnopqr-stuvwxyz0123",
                "preview-abcdefghijklmnopqr--" + hashed("abcdefghijklmnopqr-stuvwxyz0123"),
                id="dash-at-cut-is-trimmed",
            ),
            pytest.param(
                "$(rm -rf /);`x`|&",
                "preview-rm-rf-x--" + hashed("$(rm -rf /);`x`|&"),
                id="shell-metacharacters",
            ),
            pytest.param("///", "preview-x--" + hashed("///"), id="only-symbols"),
            pytest.param("", "preview-x--" + hashed(""), id="empty"),
            pytest.param("-feature-", "preview-feature--" + hashed("-feature-"), id="edge-dashes"),
            pytest.param(
                "feature--x", "preview-feature-x--" + hashed("feature--x"), id="double-dash"
            ),
            pytest.param("\udcff", "preview-x--" + hashed("\udcff"), id="lone-surrogate"),
        ],
    )
    def test_table(self, branch: str, expected: str) -> None:
        assert environment_name(branch, DEFAULT) == expected

    def test_hashed_slug_cannot_be_claimed_by_naming_a_branch_after_it(self) -> None:
        # Without a readable part, a bare hash would look like an untouched branch name.
        bare_hash = hashed("日本語")
        assert branch_slug(bare_hash) == bare_hash
        assert branch_slug("日本語") != bare_hash
        # Naming a branch after a hashed slug changes it (dashes collapse), so it is hashed too.
        assert branch_slug(branch_slug("日本語")) != branch_slug("日本語")

    def test_limits_fit_one_host_label(self) -> None:
        assert MAX_ENVIRONMENT == 37
        assert MAX_AGENT_NAME + len("--") + MAX_ENVIRONMENT == MAX_LABEL


class TestEnvironmentNameProperties:
    @given(BRANCHES)
    def test_is_a_short_dns_label(self, branch: str) -> None:
        environment = environment_name(branch, DEFAULT)
        assert is_dns_label(environment)
        assert len(environment) <= MAX_ENVIRONMENT

    @given(BRANCHES)
    def test_host_label_fits_with_longest_agent(self, branch: str) -> None:
        label = host_label(LONGEST_AGENT, environment_name(branch, DEFAULT))
        assert len(label) <= MAX_LABEL
        assert is_dns_label(label)

    @given(BRANCHES)
    def test_is_deterministic(self, branch: str) -> None:
        assert environment_name(branch, DEFAULT) == environment_name(branch, DEFAULT)

    @given(BRANCHES)
    def test_untouched_exactly_when_already_a_short_slug(self, branch: str) -> None:
        slug = branch_slug(branch)
        if slug == branch:
            assert "--" not in slug
        else:
            assert slug.endswith("--" + hashed(branch))

    @given(
        st.one_of(
            st.lists(st.text(), unique=True, min_size=2, max_size=20),
            st.lists(ANY_TEXT, unique=True, min_size=2, max_size=20),
            st.lists(NEAR_MISSES, unique=True, min_size=2, max_size=20),
        )
    )
    def test_different_branches_get_different_environments(self, branches: list[str]) -> None:
        previews = [branch for branch in branches if branch != DEFAULT]
        environments = {environment_name(branch, DEFAULT) for branch in previews}
        assert len(environments) == len(previews)


class TestLabels:
    @pytest.mark.parametrize(
        ("text", "valid"),
        [
            pytest.param("a", True, id="single"),
            pytest.param("a-b--c9", True, id="inner-dashes"),
            pytest.param("9lives", True, id="leading-digit"),
            pytest.param("a" * 63, True, id="63-chars"),
            pytest.param("a" * 64, False, id="64-chars"),
            pytest.param("", False, id="empty"),
            pytest.param("-a", False, id="leading-dash"),
            pytest.param("a-", False, id="trailing-dash"),
            pytest.param("A", False, id="uppercase"),
            pytest.param("a.b", False, id="dot"),
            pytest.param("a\n", False, id="trailing-newline"),
            pytest.param("ü", False, id="non-ascii"),
        ],
    )
    def test_is_dns_label(self, text: str, valid: bool) -> None:
        assert is_dns_label(text) is valid

    def test_host_label_joins_with_double_dash(self) -> None:
        assert host_label("support-bot", "preview-feature-x") == "support-bot--preview-feature-x"

    def test_host_label_rejects_overlong(self) -> None:
        with pytest.raises(ValueError, match="63"):
            host_label("a" * 25, "preview-" + "b" * 29)

    def test_host_label_rejects_invalid(self) -> None:
        with pytest.raises(ValueError, match="DNS label"):
            host_label("Support", "production")


class TestPreviewUrl:
    def test_default_local_template(self) -> None:
        url = preview_url(DEFAULT_LOCAL_URL_TEMPLATE, "support-bot", "preview-feature-x", 8080)
        assert url == "http://support-bot--preview-feature-x.localhost:8080/"

    def test_cluster_template_without_port(self) -> None:
        template = "https://{agent}--{environment}.preview.example.com/"
        assert (
            preview_url(template, "bot", PRODUCTION)
            == "https://bot--production.preview.example.com/"
        )

    @pytest.mark.parametrize(
        "template",
        [
            pytest.param("https://{agnet}.example.com/", id="typo"),
            pytest.param("https://{}.example.com/", id="positional"),
            pytest.param("https://{agent.__class__}.example.com/", id="attribute"),
            pytest.param("https://{agent:{width}}.example.com/", id="nested-in-spec"),
        ],
    )
    def test_rejects_unknown_placeholders(self, template: str) -> None:
        with pytest.raises(ValueError, match="unknown placeholders"):
            preview_url(template, "bot", PRODUCTION, 80)

    def test_rejects_missing_port(self) -> None:
        with pytest.raises(ValueError, match="port"):
            preview_url(DEFAULT_LOCAL_URL_TEMPLATE, "bot", PRODUCTION)

    def test_rejects_names_that_are_not_labels(self) -> None:
        with pytest.raises(ValueError, match="DNS label"):
            preview_url(DEFAULT_LOCAL_URL_TEMPLATE, "bot", "preview/../x", 80)

    def test_rejects_malformed_template(self) -> None:
        with pytest.raises(ValueError, match="expected '}'"):
            preview_url("https://{agent.example.com/", "bot", PRODUCTION)


def test_module_constants() -> None:
    assert naming.PREVIEW_PREFIX == "preview-"
    assert naming.MAX_LABEL == 63
