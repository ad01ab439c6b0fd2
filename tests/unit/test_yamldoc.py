"""The position-keeping YAML reader: values, marks, and the YAML features it keeps or refuses."""

from __future__ import annotations

import pytest

from controller.specs import yamldoc


def test_values_and_their_positions() -> None:
    (document,) = yamldoc.parse("a: 1\nb:\n  - x\n  - {c: true}\n")
    assert document.value == {"a": 1, "b": ["x", {"c": True}]}
    assert document.value_marks[("b", 1, "c")] == (4, 9)
    assert document.key_marks[("b",)] == (2, 1)
    assert document.mark_of(("b", 1, "c", "missing")) == (4, 9)


def test_keys_stay_text_and_dates_stay_strings() -> None:
    (document,) = yamldoc.parse("on: 2024-01-01\n1: yes\n")
    assert document.value == {"on": "2024-01-01", "1": True}


def test_merge_keys_and_aliases_are_supported() -> None:
    text = "base: &base {model: m, temperature: 1}\nagent:\n  <<: *base\n  temperature: 2\n"
    (document,) = yamldoc.parse(text)
    assert document.value["agent"] == {"model": "m", "temperature": 2}
    assert not document.problems


def test_several_documents_keep_their_order_and_start_lines() -> None:
    documents = yamldoc.parse("a: 1\n---\nb: 2\n---\n")
    assert [d.value for d in documents] == [{"a": 1}, {"b": 2}, None]
    assert [d.mark[0] for d in documents] == [1, 2, 4]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("? [a, b]\n: 1\n", id="complex-key"),
        pytest.param("a: *missing\n", id="unknown-alias"),
    ],
)
def test_unreadable_streams_raise_a_located_problem(text: str) -> None:
    with pytest.raises(yamldoc.YamlProblem) as caught:
        yamldoc.parse(text)
    assert caught.value.mark[0] >= 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "b: &b {p: 1}\nc: &c {q: 2}\nm:\n  <<: [*b, *c]\n  z: 3\n",
            {"p": 1, "q": 2, "z": 3},
            id="list-of-aliases",
        ),
        pytest.param("m:\n  <<: {p: 1}\n  q: 2\n", {"p": 1, "q": 2}, id="inline-mapping"),
        pytest.param("m:\n  <<: [{p: 1}, {p: 2, r: 3}]\n", {"p": 1, "r": 3}, id="first-wins"),
    ],
)
def test_merge_key_forms(text: str, expected: dict[str, int]) -> None:
    (document,) = yamldoc.parse(text)
    assert document.value["m"] == expected
    assert not document.problems


def test_merge_key_of_scalars_is_a_problem_not_a_crash() -> None:
    (document,) = yamldoc.parse("m:\n  <<: [1, 2]\n")
    assert document.problems == [((2, 7), "a merge key (<<) takes a mapping or a list of mappings")]


def test_alias_as_a_key_is_refused_with_its_position() -> None:
    with pytest.raises(yamldoc.YamlProblem) as caught:
        yamldoc.parse("a: &x k\n*x : 1\n")
    assert caught.value.mark == (2, 1)
    assert "not aliases (*x)" in caught.value.message


def _block_nesting(depth: int) -> str:
    return "".join("  " * level + f"k{level}:\n" for level in range(depth)) + "  " * depth + "x\n"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: " + "[" * 65 + "]" * 65 + "\n", id="flow-just-past-the-limit"),
        pytest.param("a: " + "[" * 999 + "]" * 999 + "\n", id="flow-below-libyaml-limit"),
        pytest.param("a: " + "[" * 5000 + "]" * 5000 + "\n", id="flow-past-libyaml-limit"),
        pytest.param("a: " + "{b: " * 5000 + "}" * 5000 + "\n", id="flow-mappings"),
        pytest.param(_block_nesting(65), id="block-just-past-the-limit"),
        pytest.param(_block_nesting(1500), id="block-past-libyaml-limit"),
    ],
)
def test_deep_nesting_gets_shipyards_message_whichever_parser_stops_it(text: str) -> None:
    """Recent libyaml stops deep nesting itself, often before Shipyard counts the levels;
    the message is Shipyard's either way, and it points inside the document."""
    with pytest.raises(yamldoc.YamlProblem) as caught:
        yamldoc.parse(text)
    assert caught.value.message == f"document is nested deeper than {yamldoc.MAX_DEPTH} levels"
    assert caught.value.mark >= (1, 1)


def test_nesting_up_to_the_limit_is_read() -> None:
    (document,) = yamldoc.parse("a: " + "[" * 63 + "]" * 63 + "\n")
    value = document.value["a"]
    for _ in range(62):
        value = value[0]
    assert value == []
