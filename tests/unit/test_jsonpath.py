"""kubectl's JSONPath templates as `-o jsonpath=` and `-o custom-columns=` read them."""

from __future__ import annotations

from typing import Any

import pytest

from controller.cli import jsonpath, output_format

LIST: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "metadata": {
                "name": "alpha",
                "labels": {"team": "support", "app.kubernetes.io/name": "alpha"},
            },
            "status": {"ready": True, "replicas": 3},
        },
        {"metadata": {"name": "beta", "labels": {}}, "status": {"ready": False, "replicas": 1}},
    ],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[*].metadata.name}", "alpha beta"),
        ('{range .items[*]}{.metadata.name}{"\\t"}{.status.ready}{"\\n"}{end}',
         "alpha\ttrue\nbeta\tfalse\n"),
        ("{.items[0].metadata.labels.team}", "support"),
        ("{.items[-1].metadata.name}", "beta"),
        ("{.items[1:].metadata.name}", "beta"),
        ("{..name}", "alpha beta"),
        ("{.items[?(@.status.ready==true)].metadata.name}", "alpha"),
        ("{.items[?(@.status.replicas>1)].metadata.name}", "alpha"),
        ("{.items[?(@.metadata.labels.team)].metadata.name}", "alpha"),
        ("{.items[?(@.metadata.name!='alpha')].metadata.name}", "beta"),
        ("{.items[0].metadata.labels['app.kubernetes.io/name']}", "alpha"),
        ("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}", "alpha"),
        ("{.items[1].metadata.labels}", "{}"),
        ("{.kind} of {.items[*].status.replicas}", "List of 3 1"),
        ("{$.kind}", "List"),
        ("{.nothing.here}", ""),
        ("plain text", "plain text"),
    ],
)  # fmt: skip
def test_templates_render_as_kubectl(template: str, expected: str) -> None:
    assert jsonpath.render(template, LIST) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{.items[", "unclosed action"),
        ("{.items[0}", "unclosed ["),
        ("{range .items[*]}{.x}", "{range} without {end}"),
        ("{end}", "{end} without {range}"),
        ("{metadata}", "is not a path"),
        ("{.items[?(@.a==)]}", "cannot parse"),
        ('{"unterminated}', "unclosed action"),
    ],
)
def test_bad_templates_are_named(template: str, message: str) -> None:
    with pytest.raises(jsonpath.JsonPathError, match=message.replace("[", r"\[")):
        jsonpath.render(template, LIST)


def test_custom_columns_keep_headers_and_join_matches() -> None:
    output = output_format.parse("custom-columns=Name:.metadata.name,LABELS:.metadata.labels.*")
    assert output.columns == (("Name", ".metadata.name"), ("LABELS", ".metadata.labels.*"))
    assert output.cells(LIST["items"][0]) == ["alpha", "support,alpha"]
    assert output.cells(LIST["items"][1]) == ["beta", None]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("table", "unknown output format 'table'"),
        ("jsonpath=", "jsonpath= needs a template"),
        ("custom-columns=NAME", "HEADER:PATH"),
        ("custom-columns=NAME:metadata", "is not a path"),
    ],
)
def test_bad_formats_are_named(text: str, message: str) -> None:
    with pytest.raises(jsonpath.JsonPathError, match=message):
        output_format.parse(text)
