"""Warnings a request earns, sent back as `Warning: 299 - "…"` response headers.

kube-apiserver collects warnings in the request's context (`warning.AddWarning`) from
wherever they arise — field validation under `fieldValidation=Warn` (the default),
deprecated APIs — and writes each as an RFC 7234 warning header with code 299 and agent
`-`; kubectl prints them as `Warning: …` on stderr. The fake handles each request on its
own thread, so a context variable plays the request context: the HTTP layer opens a
collection around a request, and code deep in an operation adds to it without threading a
parameter through every call. Writes made by the fake's own controllers collect nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_collected: ContextVar[list[str] | None] = ContextVar("fake_apiserver_warnings", default=None)


@contextmanager
def collect() -> Iterator[list[str]]:
    """Collect the warnings added while the block runs (each text once, in order)."""
    found: list[str] = []
    token = _collected.set(found)
    try:
        yield found
    finally:
        _collected.reset(token)


def add(text: str) -> None:
    found = _collected.get()
    if found is not None and text not in found:
        found.append(text)


def header(text: str) -> str:
    """The header's value as apiserver writes it: code 299, agent "-", quoted text."""
    # Go's strconv.Quote and JSON agree for the printable text warnings carry.
    return f"299 - {json.dumps(text, ensure_ascii=False)}"
