"""Judge one answer against a case's expectations, and say in a sentence why it failed.

Each assertion is a function of (expectation, answer) returning a reason or None, kept in
one table so a new kind (a judging model, say) is one more entry. Answers are bounded
before any pattern runs, and suites never carry patterns that nest quantifiers (see
`evalsuites.regex_problem`), so no answer can make a check run for ever.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Bodies longer than this are judged on their first part only: enough for any golden
# answer, small enough that every check is quick.
MAX_JUDGED_BYTES = 256 * 1024


@dataclass(frozen=True)
class Answer:
    """What the agent replied: its status, body and how long the whole answer took."""

    status: int
    body: bytes
    latency_ms: float

    @property
    def text(self) -> str:
        return self.body[:MAX_JUDGED_BYTES].decode("utf-8", errors="replace")


_MISSING = object()


def _json_of(answer: Answer) -> Any:
    try:
        return json.loads(answer.text)
    except ValueError:
        return _MISSING


def _status(expected: Any, answer: Answer) -> str | None:
    if answer.status != expected:
        return f"status {answer.status}, expected {expected}"
    return None


def _contains(expected: Any, answer: Answer) -> str | None:
    text = answer.text
    for needle in expected:
        if needle not in text:
            return f"answer does not contain {needle!r}"
    return None


def _not_contains(expected: Any, answer: Answer) -> str | None:
    text = answer.text
    for needle in expected:
        if needle in text:
            return f"answer contains {needle!r}"
    return None


def _regex(expected: Any, answer: Answer) -> str | None:
    if re.search(expected, answer.text) is None:
        return f"answer does not match /{expected}/"
    return None


_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[([0-9]+)\]")


def lookup(document: Any, path: str) -> Any:
    """The value at a `$.a.b[0]` path, or `_MISSING` when there is none."""
    current = document
    for match in _STEP.finditer(path):
        key, index = match.groups()
        if key is not None:
            if not isinstance(current, dict) or key not in current:
                return _MISSING
            current = current[key]
        else:
            position = int(index)
            if not isinstance(current, list) or position >= len(current):
                return _MISSING
            current = current[position]
    return current


def _json_path(expected: Any, answer: Answer) -> str | None:
    document = _json_of(answer)
    if document is _MISSING:
        return "answer is not JSON"
    for assertion in expected:
        found = lookup(document, assertion["path"])
        if found is _MISSING:
            return f"{assertion['path']} is missing"
        wanted = assertion["equals"]
        # True == 1 in Python; in JSON they are different values.
        if found != wanted or isinstance(found, bool) != isinstance(wanted, bool):
            shown, expected_shown = json.dumps(found)[:80], json.dumps(wanted)[:80]
            return f"{assertion['path']} is {shown}, expected {expected_shown}"
    return None


def _json_schema(expected: Any, answer: Answer) -> str | None:
    import jsonschema  # noqa: PLC0415

    document = _json_of(answer)
    if document is _MISSING:
        return "answer is not JSON"
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(expected).iter_errors(document)
    )
    if error is not None:
        where = "".join(f"[{part!r}]" for part in error.absolute_path) or "answer"
        return f"{where} does not satisfy the schema: {error.message[:160]}"
    return None


def _max_latency(expected: Any, answer: Answer) -> str | None:
    if answer.latency_ms > expected:
        return f"took {answer.latency_ms:.0f} ms, over {expected} ms"
    return None


# In the order a person reads them: status first, latency last.
CHECKS: tuple[tuple[str, Callable[[Any, Answer], str | None]], ...] = (
    ("status", _status),
    ("contains", _contains),
    ("notContains", _not_contains),
    ("regex", _regex),
    ("jsonPath", _json_path),
    ("jsonSchema", _json_schema),
    ("maxLatencyMs", _max_latency),
)


def judge(expect: Mapping[str, Any], answer: Answer) -> str | None:
    """The first failed expectation's reason, or None when the answer meets them all."""
    for key, check in CHECKS:
        if key in expect:
            reason = check(expect[key], answer)
            if reason is not None:
                return reason
    return None
