"""Renders the manifest reference (docs/manifest.md) from the JSON Schema,
so the docs cannot drift from the contract.

``render_markdown`` is a pure function of the schema: it walks every object the schema
describes (properties, array ``items`` and local ``$ref``s to ``#/$defs/...``) and writes one
table per object, with the field path, type, whether it is required, its default, its
description and its constraints.  Run ``python -m controller.specs.reference`` to regenerate
the file, or with ``--check`` to fail when it is stale (a unit test does the same).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_OUTPUT",
    "SCHEMA_PATH",
    "SUITE_SCHEMA_PATH",
    "main",
    "render_markdown",
    "render_reference",
]

_REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = _REPO_ROOT / "schemas" / "agent.v1alpha1.schema.json"
SUITE_SCHEMA_PATH = _REPO_ROOT / "schemas" / "evalsuite.v1alpha1.schema.json"
DEFAULT_OUTPUT = _REPO_ROOT / "docs" / "manifest.md"

_GENERATOR = "python -m controller.specs.reference"
_TEST = "tests/unit/test_manifest_reference.py"
_DEFAULT_API_VERSION = "shipyard.dev/v1alpha1"
Schema = Mapping[str, Any]
_HEADER = ("Field", "Type", "Required", "Default", "Description", "Constraints")


@dataclass(frozen=True)
class _Section:
    """One object of the schema: its path, its (resolved) schema and the ref it came from."""

    path: str
    schema: Schema
    description: str
    ref: str | None


# --------------------------------------------------------------------------- schema helpers


def _resolve(root: Schema, node: Schema) -> tuple[Schema, str | None]:
    """Follow a local ``$ref`` (``#/...``), returning the target and the ref followed."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node, None
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    target: Any = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        target = target.get(part) if isinstance(target, Mapping) else None
    if not isinstance(target, Mapping):
        raise ValueError(f"$ref {ref!r} does not resolve to a schema object")  # noqa: TRY004
    return target, ref


def _merged(root: Schema, node: Schema) -> tuple[dict[str, Any], str | None]:
    """The schema of ``node`` with its ``$ref`` target merged underneath its own keywords."""
    target, ref = _resolve(root, node)
    if ref is None:
        return dict(node), None
    merged = dict(target)
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged, ref


def _properties(schema: Schema) -> Schema:
    props = schema.get("properties")
    return props if isinstance(props, Mapping) else {}


def _sub(schema: Schema, key: str) -> Schema | None:
    value = schema.get(key)
    return value if isinstance(value, Mapping) else None


def _types(schema: Schema) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [str(t) for t in declared]
    if "const" in schema:
        return [_json_type(schema["const"])]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return sorted({_json_type(v) for v in enum})
    if "properties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    return []


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# --------------------------------------------------------------------------- walking


def _sections(root: Schema) -> list[_Section]:
    """All objects with fields, depth first in schema order, the top level first."""
    found: list[_Section] = []

    def visit(path: str, node: Schema, refs: tuple[str, ...]) -> None:
        schema, ref = _merged(root, node)
        if ref is not None and ref in refs:
            return  # recursive definition: documented where it first appears
        chain = refs if ref is None else (*refs, ref)
        if _properties(schema):
            found.append(_Section(path, schema, _text(schema.get("description")), ref))
            for name, child in _properties(schema).items():
                if isinstance(child, Mapping):
                    visit(_join(path, name), child, chain)
        items = _sub(schema, "items")
        if items is not None:
            visit(f"{path}[]", items, chain)
        extra = _sub(schema, "additionalProperties")
        if extra is not None:
            visit(f"{path}.*" if path else "*", extra, chain)

    visit("", root, ())
    return found


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _text(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


# --------------------------------------------------------------------------- formatting


def _code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it contains."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _cell(text: str) -> str:
    """Make ``text`` safe inside a table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _type_label(root: Schema, schema: Schema) -> str:
    types = _types(schema)
    label = " or ".join(types) if types else "any"
    if types == ["array"]:
        items = _sub(schema, "items")
        if items is not None:
            item_types = _types(_merged(root, items)[0])
            if item_types:
                label = f"array of {' or '.join(item_types)}"
    elif types == ["object"] and not _properties(schema):
        values = _sub(schema, "additionalProperties")
        if values is not None:
            value_types = _types(_merged(root, values)[0])
            label = f"map of string to {' or '.join(value_types) or 'any'}"
    return label


def _bound(low: object, high: object) -> str | None:
    """A min/max pair in words ("1 to 30", "at most 63"), or None if neither is set."""
    if low is not None and high is not None:
        return f"exactly {low}" if low == high else f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return None


def _count(low: object, high: object, nouns: tuple[str, str]) -> str | None:
    """A min/max number of things ("at most 64 items", "exactly 1 field")."""
    bound = _bound(low, high)
    if bound is None:
        return None
    last = high if high is not None else low
    return f"{bound} {nouns[0] if last == 1 else nouns[1]}"


def _value_constraints(schema: Schema) -> list[str]:
    """Constraints on one value (not on the fields of an object)."""
    out: list[str] = []
    if "const" in schema:
        out.append(f"must be {_code(_json(schema['const']))}")
    enum = schema.get("enum")
    if isinstance(enum, list):
        out.append("one of " + ", ".join(_code(_json(v)) for v in enum))
    bounds = (
        ("minimum", "minimum"),
        ("exclusiveMinimum", "greater than"),
        ("maximum", "maximum"),
        ("exclusiveMaximum", "less than"),
        ("multipleOf", "multiple of"),
    )
    out.extend(f"{label} {schema[key]}" for key, label in bounds if key in schema)
    length = _bound(schema.get("minLength"), schema.get("maxLength"))
    if length is not None:
        out.append(f"length {length}")
    if "pattern" in schema:
        out.append(f"pattern {_code(str(schema['pattern']))}")
    if "format" in schema:
        out.append(f"format {_code(str(schema['format']))}")
    count = _count(schema.get("minItems"), schema.get("maxItems"), ("item", "items"))
    if count is not None:
        out.append(count)
    if schema.get("uniqueItems") is True:
        out.append("items unique")
    nouns = ("field", "fields") if _properties(schema) else ("entry", "entries")
    entries = _count(schema.get("minProperties"), schema.get("maxProperties"), nouns)
    if entries is not None:
        out.append(entries)
    return out


def _field_constraints(root: Schema, schema: Schema) -> list[str]:
    out = _value_constraints(schema)
    if _properties(schema):
        return out  # an object with fields: its own section lists the rest
    items = _sub(schema, "items")
    if items is not None:
        item = _value_constraints(_merged(root, items)[0])
        if item:
            out.append("each item: " + ", ".join(item))
    keys = _sub(schema, "propertyNames")
    if keys is not None:
        key = _value_constraints(_merged(root, keys)[0])
        if key:
            out.append("keys: " + ", ".join(key))
    values = _sub(schema, "additionalProperties")
    if values is not None:
        value = _value_constraints(_merged(root, values)[0])
        if value:
            out.append("values: " + ", ".join(value))
    return out


def _alternatives(keyword: str, branches: object) -> str | None:
    if not isinstance(branches, list) or not branches:
        return None
    names: list[str] = []
    for branch in branches:
        required = branch.get("required") if isinstance(branch, Mapping) else None
        if not isinstance(branch, Mapping) or set(branch) != {"required"}:
            return f"must also satisfy `{keyword}` in the schema ({len(branches)} alternatives)"
        if not isinstance(required, list):
            return None
        names.append(" and ".join(_code(str(n)) for n in required))
    joined = ", ".join(names)
    if keyword == "anyOf":
        return f"At least one of {joined} must be set."
    if keyword == "oneOf":
        return f"Exactly one of {joined} must be set."
    return f"All of {joined} must be set."


def _object_notes(schema: Schema) -> list[str]:
    notes: list[str] = []
    for keyword in ("anyOf", "oneOf", "allOf"):
        note = _alternatives(keyword, schema.get(keyword))
        if note is not None:
            notes.append(note)
    low, high = schema.get("minProperties"), schema.get("maxProperties")
    if low is not None and low == high:
        notes.append(f"Exactly {low} of the fields below must be set.")
    else:
        if low is not None:
            notes.append(f"At least {low} of the fields below must be set.")
        if high is not None:
            notes.append(f"At most {high} of the fields below may be set.")
    if schema.get("additionalProperties") is False:
        notes.append("No other fields are allowed.")
    return notes


def _rows(root: Schema, section: _Section) -> Iterator[tuple[str, ...]]:
    required = section.schema.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    for name, child in _properties(section.schema).items():
        if not isinstance(child, Mapping):
            continue
        schema, _ = _merged(root, child)
        default = _code(_json(schema["default"])) if "default" in schema else ""
        yield (
            _code(_join(section.path, name)),
            _type_label(root, schema),
            "yes" if name in required_names else "no",
            default,
            _text(schema.get("description")),
            "; ".join(_field_constraints(root, schema)),
        )


def _heading(section: _Section) -> str:
    return f"## {_code(section.path)}" if section.path else "## Top level"


def _render_section(root: Schema, section: _Section) -> list[str]:
    lines = [_heading(section), ""]
    # The top level's description already opens the document.
    description = section.description if section.path else ""
    intro = " ".join(part for part in (description, *_object_notes(section.schema)) if part)
    if section.ref is not None:
        intro = f"{intro} Shared definition {_code(section.ref)}.".strip()
    if intro:
        lines += [intro, ""]
    lines.append("| " + " | ".join(_HEADER) + " |")
    lines.append("|" + "|".join("---" for _ in _HEADER) + "|")
    for row in _rows(root, section):
        lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
    lines.append("")
    return lines


def _api_version(schema: Schema) -> str:
    api = _sub(_properties(schema), "apiVersion")
    const = api.get("const") if api is not None else None
    return const if isinstance(const, str) else _DEFAULT_API_VERSION


def render_markdown(schema: Schema) -> str:
    """The manifest reference for ``schema``, as a Markdown document ending in a newline."""
    lines = [
        f"# Agent manifest reference ({_code(_api_version(schema))})",
        "",
        f"> This file is generated from the JSON Schema by `{_GENERATOR}`; do not edit it by hand.",
        f"> `{_TEST}` fails when it is out of date.",
        "",
    ]
    description = _text(schema.get("description"))
    if description:
        lines += [description, ""]
    schema_id = schema.get("$id")
    if isinstance(schema_id, str):
        lines += [f"Schema: {_code(schema_id)} (JSON Schema 2020-12).", ""]
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        example = yaml.safe_dump(examples[0], sort_keys=False, allow_unicode=True)
        lines += ["## Example", "", "```yaml", example.rstrip("\n"), "```", ""]
    lines += [
        "## Fields",
        "",
        "Field paths are written from the document root: `spec.model.name`;",
        "`[]` stands for every element of a list (`spec.tools[].name`)",
        "and `*` for every value of a map.",
        "",
    ]
    for section in _sections(schema):
        lines += _render_section(schema, section)
    return "\n".join(lines).rstrip("\n") + "\n"


def render_reference(agent_schema: Schema, suite_schema: Schema) -> str:
    """The whole reference: the Agent manifest, then the EvalSuite as a section of it."""
    suite = render_markdown(suite_schema).splitlines()
    # The suite's own title and generated-file note become one section heading.
    body = [line for line in suite[1:] if not line.startswith(">")]
    while body and not body[0]:
        body.pop(0)
    demoted = [f"#{line}" if line.startswith("#") else line for line in body]
    heading = f"## EvalSuite reference ({_code(_api_version(suite_schema))}, `evals/*.yaml`)"
    return render_markdown(agent_schema) + "\n" + "\n".join([heading, "", *demoted]) + "\n"


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """Write the manifest reference, or with ``--check`` report whether it is stale."""
    parser = argparse.ArgumentParser(
        prog=_GENERATOR,
        description="Render docs/manifest.md from the agent manifest JSON Schema.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the file differs from what would be generated",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where to write the reference (default: {DEFAULT_OUTPUT})",
    )
    args = parser.parse_args(argv)
    output: Path = args.output
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    suite_schema = json.loads(SUITE_SCHEMA_PATH.read_text(encoding="utf-8"))
    rendered = render_reference(schema, suite_schema)
    if args.check:
        try:
            current = output.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != rendered:
            state = "is missing" if current is None else "is out of date"
            print(f"{output} {state}; run `{_GENERATOR}` to regenerate it.", file=sys.stderr)
            return 1
        print(f"{output} is up to date.")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(rendered)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
