"""The manifest reference (docs/manifest.md) matches the schema, and the schema documents itself."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from controller.specs.reference import SUITE_SCHEMA_PATH, main, render_markdown, render_reference

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "agent.v1alpha1.schema.json"
DOC_PATH = ROOT / "docs" / "manifest.md"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert isinstance(ref, str)
    assert ref.startswith("#/"), f"non-local $ref {ref!r}"
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    assert isinstance(target, Mapping)
    return target


def _property_paths(root: Mapping[str, Any], node: Mapping[str, Any], path: str) -> Iterator[str]:
    """Every field path a manifest can hold, written as the reference writes them."""
    target = _resolve(root, node)
    for name, child in target.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        yield child_path
        yield from _property_paths(root, child, child_path)
    items = target.get("items")
    if isinstance(items, Mapping):
        yield from _property_paths(root, items, f"{path}[]")


def _undocumented(root: Mapping[str, Any], node: object, where: str) -> Iterator[str]:
    """Locations of properties without a description, anywhere in the schema (incl. $defs)."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _undocumented(root, item, f"{where}[{index}]")
        return
    if not isinstance(node, Mapping):
        return
    properties = node.get("properties")
    if isinstance(properties, Mapping):
        for name, prop in properties.items():
            if not isinstance(prop, Mapping):
                continue
            description = prop.get("description")
            if description is None and "$ref" in prop:
                description = _resolve(root, prop).get("description")
            if not isinstance(description, str) or not description.strip():
                yield f"{where}.properties.{name}"
    for key, value in node.items():
        if key not in {"examples", "default", "const", "enum"}:
            yield from _undocumented(root, value, f"{where}.{key}")


def test_doc_is_up_to_date(schema: dict[str, Any]) -> None:
    suite = json.loads(SUITE_SCHEMA_PATH.read_text(encoding="utf-8"))
    expected = render_reference(schema, suite)
    current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    assert current == expected, (
        "docs/manifest.md is out of date with schemas/agent.v1alpha1.schema.json; "
        "regenerate it with `python -m controller.specs.reference`"
    )


def test_render_is_deterministic(schema: dict[str, Any]) -> None:
    assert render_markdown(schema) == render_markdown(json.loads(json.dumps(schema)))


def test_every_property_path_is_documented(schema: dict[str, Any]) -> None:
    doc = render_markdown(schema)
    paths = list(_property_paths(schema, schema, ""))
    assert "spec.model.parameters.temperature" in paths
    assert "spec.tools[].name" in paths
    missing = [path for path in paths if f"`{path}`" not in doc]
    assert not missing, f"fields missing from the reference: {missing}"


def test_every_property_has_a_description(schema: dict[str, Any]) -> None:
    undocumented = list(_undocumented(schema, schema, "#"))
    assert not undocumented, f"schema properties without a description: {undocumented}"


def test_table_cells_escape_pipes() -> None:
    doc = render_markdown(
        {
            "type": "object",
            "properties": {
                "mode": {"description": "a | b", "type": "string", "pattern": "^(a|b)$"},
            },
        }
    )
    row = next(line for line in doc.splitlines() if line.startswith("| `mode`"))
    assert "a \\| b" in row
    assert "`^(a\\|b)$`" in row
    assert row.replace("\\|", "").count("|") == 7  # six columns


def test_check_flags_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "manifest.md"
    assert main(["--check", "--output", str(output)]) == 1
    assert "python -m controller.specs.reference" in capsys.readouterr().err
    assert main(["--output", str(output)]) == 0
    assert main(["--check", "--output", str(output)]) == 0
    output.write_text(output.read_text(encoding="utf-8") + "edited\n", encoding="utf-8")
    assert main(["--check", "--output", str(output)]) == 1
