"""Pieces the API-backed commands share: the environment flag and short commit names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from preview import naming

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_ENVIRONMENT = naming.PRODUCTION
SHORT_SHA = 12  # as the controller's own messages name commits


def environment_option(function: F) -> F:
    return click.option(
        "-e",
        "--environment",
        "-n",
        "--namespace",
        "environment",
        default=DEFAULT_ENVIRONMENT,
        show_default=True,
        metavar="ENV",
        help="Environment: production or preview-<branch> (-n/--namespace, as in kubectl).",
    )(function)


def short(sha: object) -> str | None:
    return str(sha)[:SHORT_SHA] if sha else None


def first_line(text: object) -> str:
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
