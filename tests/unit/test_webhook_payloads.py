"""Defensive payload reads and the served-repository binding of webhook deliveries."""

from __future__ import annotations

import pytest

from controller.api.payload_fields import Fields, Malformed, parse
from controller.api.webhook_binding import ServedRepositories
from preview.remotes import project_path_from_remote


class TestParse:
    def test_deep_nesting_is_malformed_not_a_recursion_error(self) -> None:
        with pytest.raises(Malformed, match="nested too deeply"):
            parse(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")

    @pytest.mark.parametrize("body", [b"[]", b'"x"', b"null", b"3"])
    def test_only_objects_are_payloads(self, body: bytes) -> None:
        with pytest.raises(Malformed, match="must be a JSON object"):
            parse(body)

    @pytest.mark.parametrize(
        "body", [b"{", b"\xff\xfe", b'{"a": NaN', b'{"n": ' + b"9" * 5000 + b"}"]
    )
    def test_invalid_json_says_so(self, body: bytes) -> None:
        with pytest.raises(Malformed, match="not valid JSON"):
            parse(body)


class TestFields:
    def test_walking_through_the_wrong_types_reads_as_absent(self) -> None:
        payload = Fields({"head": "a string", "base": None, "labels": "bug"}, "")
        assert payload.at("head", "repo", "full_name").text() is None
        assert not payload.at("base", "repo").present
        assert payload.at("labels").items() == []

    def test_booleans_are_not_numbers(self) -> None:
        assert Fields(True, "n").integer() is None
        assert Fields(7, "n").integer() == 7

    def test_numbers_beyond_64_bits_are_not_numbers(self) -> None:
        assert Fields(2**63 - 1, "n").integer() == 2**63 - 1
        assert Fields(2**63, "n").integer() is None
        with pytest.raises(Malformed, match="number must be an integer of at most 64 bits"):
            Fields({"number": 10**30}, "").at("number").required_integer()

    def test_required_values_name_their_path(self) -> None:
        payload = Fields({"pull_request": {"head": {"ref": 5}}}, "")
        with pytest.raises(Malformed, match=r"pull_request\.head\.ref must be a non-empty string"):
            payload.at("pull_request", "head", "ref").required_text()
        with pytest.raises(Malformed, match="number must be an integer"):
            payload.at("number").required_integer()


class TestBinding:
    @pytest.mark.parametrize(
        ("remote", "path"),
        [
            ("https://gitlab.example.com/group/sub/agents.git", "group/sub/agents"),
            ("git@gitlab.example.com:group/agents.git", "group/agents"),
            ("ssh://git@host:2222/acme/agents", "acme/agents"),
            ("/srv/git/agents.git", None),
            ("file:///srv/git/acme/agents.git", None),
            ("https://host/agents.git", None),
        ],
    )
    def test_project_paths_come_from_the_remote(self, remote: str, path: str | None) -> None:
        assert project_path_from_remote(remote) == path

    def test_flags_win_over_the_remote_and_names_match_in_any_case(self) -> None:
        served = ServedRepositories.derive(
            "https://github.com/Acme/Agents.git", gitlab_project="acme/sub/agents"
        )
        assert served.matches("github", "acme/agents")
        assert served.matches("gitea", "ACME/AGENTS")
        assert served.matches("gitlab", "Acme/Sub/Agents")
        assert not served.matches("gitlab", "acme/agents")

    def test_a_local_path_serves_no_name(self) -> None:
        served = ServedRepositories.derive("/srv/git/agents")
        assert served.served("github") is None
        assert not served.matches("github", "acme/agents")
