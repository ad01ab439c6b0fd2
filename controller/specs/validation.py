"""JSON Schema validation whose errors read like advice, not like validator internals."""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import fastjsonschema

import schemas
from controller.specs import model

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError

Path = tuple[str | int, ...]

_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}

# Messages for constraints whose generic wording would send a person hunting: keyed by the
# schema location of the keyword that failed.
_EXPLAINED: dict[tuple[str, ...], str] = {
    ("properties", "metadata", "properties", "name", "pattern"): (
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting with a letter "
        "and ending with a letter or digit"
    ),
    ("properties", "metadata", "properties", "labels", "propertyNames", "pattern"): (
        "label keys are an optional DNS prefix and '/', then letters, digits, '-', '_' or '.'"
    ),
    ("properties", "metadata", "properties", "labels", "additionalProperties", "pattern"): (
        "label values are letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    ),
    ("properties", "spec", "anyOf"): (
        "set spec.image (for Kubernetes) or spec.run (for the local target), or both"
    ),
    ("properties", "spec", "properties", "prompt", "minProperties"): (
        "set exactly one of prompt.system (inline text) or prompt.file (a file in the repository)"
    ),
    ("properties", "spec", "properties", "prompt", "maxProperties"): (
        "set exactly one of prompt.system (inline text) or prompt.file, not both"
    ),
    ("properties", "spec", "properties", "tools", "items", "minProperties"): (
        "a tool needs a url (HTTP endpoint) or an mcp server reference"
    ),
    ("properties", "spec", "properties", "preview", "properties", "ttl", "pattern"): (
        "must be a duration such as 72h, 90m, 1h30m or 2d"
    ),
    ("properties", "spec", "properties", "image", "pattern"): "must not contain spaces",
}

# What each pattern of the schema means, so no message ever shows a raw regular expression.
# Keyed by the pattern itself: wherever a pattern is reused, its meaning is the same.
PATTERN_MEANINGS: dict[str, str] = {
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$": (
        "a DNS-1123 label: lowercase letters, digits and '-', starting with a letter and "
        "ending with a letter or digit"
    ),
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": (
        "lowercase letters, digits and '-', starting and ending with a letter or digit"
    ),
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$": (
        "a Kubernetes object name (DNS-1123 subdomain): lowercase letters, digits, '-' and "
        "'.', such as openai-credentials"
    ),
    r"^[-._a-zA-Z0-9]+$": "letters, digits, '-', '_' or '.', such as api-key",
    r"^[^\s]+$": "a value without spaces",
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$": (
        "a label key: an optional DNS prefix and '/', then letters, digits, '-', '_' or '.'"
    ),
    r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$": (
        "a label value: letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    ),
    r"^/[^\s]*$": "an HTTP path starting with '/' and without spaces, such as /healthz",
    r"^[A-Za-z][A-Za-z0-9_-]*$": (
        "a name of letters, digits, '_' and '-', starting with a letter, such as search_docs"
    ),
    r"^https?://[^\s]+$": "an http:// or https:// URL without spaces",
    r"^(?=.*[0-9])([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$": (
        "a duration such as 72h, 90m, 1h30m or 2d"
    ),
    r"^[0-9]+(\.[0-9]+)?(ms|s)$": "a time such as 2s, 1.5s or 250ms",
    r"^\s*result\s*(<=|>=|==|!=|<|>)\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$": (
        "result compared with a number, such as result >= 0.95 (<, <=, >, >=, ==, !=)"
    ),
    r"^[A-Za-z0-9-]+$": "a header name: letters, digits and '-', such as x-conversation-id",
    r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$": (
        "a Kubernetes CPU quantity: cores such as 1 or 0.5, or millicores such as 500m"
    ),
    r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$": (
        "a Kubernetes quantity such as 512Mi, 1Gi or 128M"
    ),
}


DRAFT_07 = "http://json-schema.org/draft-07/schema#"


@cache
def _validator() -> jsonschema.Draft202012Validator:
    # Imported when first needed: valid documents never get this far, and the import
    # costs more than validating hundreds of them.
    import jsonschema  # noqa: PLC0415

    schema = schemas.load()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def fast_schema() -> dict[str, Any]:
    """The shipped schema restated for draft-07, for the compiled fast path.

    Every keyword the schema uses means the same in draft-07 and 2020-12 (`$defs`
    references are plain JSON pointers), so only `$schema` changes, plus one spelling:
    fastjsonschema rewrites a pattern's `$` to `\\Z`, which unlike Python's `$` refuses a
    trailing newline, so each `$` anchor is restated as the lookahead `$` stands for.
    Were a pattern left as it is, the fast path would only be stricter, never laxer:
    the reference validator decides whatever the fast one rejects.
    """
    schema = copy.deepcopy(schemas.load())
    schema["$schema"] = DRAFT_07
    _restate_patterns(schema)
    return schema


def _restate_patterns(schema: Any) -> None:
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and isinstance(value, str):
                    node[key] = _DOLLAR.sub(r"(?=\\n?\\Z)", value)
                elif key not in ("examples", "default", "const", "enum"):
                    pending.append(value)


# An unescaped `$`. The schema only uses it as an anchor; inside a character class the
# restated `\\Z` would not compile, so such a pattern would fail loudly, not pass quietly.
_DOLLAR = re.compile(r"(?<!\\)\$")


@cache
def _fast_validator() -> Callable[[Any], Any]:
    # use_default=False: validation must never write defaults into the document.
    return fastjsonschema.compile(fast_schema(), use_default=False, use_formats=False)


def prepare() -> None:
    """Compile the fast validator now (before forking workers, so they share it)."""
    _fast_validator()


def is_valid(document: Mapping[str, Any]) -> bool:
    """Whether the compiled draft-07 validator accepts the document.

    False also when the compiled code stumbles on input it did not expect, so that the
    reference validator decides: only a True is taken at its word.
    """
    try:
        _fast_validator()(document)
    except Exception:  # JsonSchemaValueException, or anything the compiled code tripped on
        return False
    return True


def check(document: Mapping[str, Any]) -> Iterator[tuple[Path, bool, str]]:
    """Every schema violation as (field path, whether the path names a key, message)."""
    # Most documents are valid: the compiled validator says so in a fraction of the time.
    # Whenever it objects, the reference 2020-12 validator decides and explains.
    if is_valid(document):
        return
    validator = _validator()
    if validator.is_valid(document):
        return
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        yield from _explain(error)


def _explain(error: ValidationError) -> Iterator[tuple[Path, bool, str]]:
    path: Path = tuple(error.absolute_path)
    schema_location = tuple(str(part) for part in error.absolute_schema_path)
    if schema_location in _EXPLAINED:
        yield path, False, _EXPLAINED[schema_location]
        return
    keyword = error.validator
    if keyword == "additionalProperties" and isinstance(error.instance, Mapping):
        subschema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = list(subschema.get("properties", {}))
        for name in error.instance:
            if name not in allowed:
                yield (*path, name), True, _unknown_field(str(name), allowed)
        return
    expected: Any = error.validator_value
    if keyword == "required" and isinstance(expected, list):
        for name in expected:
            if isinstance(error.instance, Mapping) and name not in error.instance:
                yield (*path, name), False, "required field is missing"
        return
    if keyword == "const" and path in {("apiVersion",), ("kind",)}:
        supported = model.API_VERSION if path == ("apiVersion",) else model.KIND
        yield (
            path,
            False,
            f"{error.instance!r} is not supported; the supported {path[0]} is {supported}",
        )
        return
    if keyword == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_JSON_TYPES.get(name, name) for name in names)
        yield path, False, f"must be {wanted}, not {_describe(error.instance)}"
        return
    if keyword == "pattern":
        meaning = PATTERN_MEANINGS.get(str(expected), "the form this field takes")
        yield path, False, f"{error.instance!r} is not {meaning}"
        return
    if keyword == "enum":
        options = ", ".join(str(option) for option in expected)
        yield path, False, f"{error.instance!r} is not one of: {options}"
        return
    yield path, False, error.message


def _unknown_field(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    hint = f'did you mean "{close[0]}"?' if close else f"known fields: {', '.join(allowed)}"
    return f'unknown field "{name}" ({hint})'


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def explain(error: ValidationError) -> Iterator[tuple[Path, bool, str]]:
    """One violation as advice: what `check` says of it. For other documents' schemas too."""
    return _explain(error)
