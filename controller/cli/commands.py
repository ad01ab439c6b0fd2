"""The commands that read and steer a running controller (plus `diff`), for `main` to add."""

from __future__ import annotations

import click

from controller.cli import (
    describe_command,
    diff_command,
    get_command,
    logs_command,
    rollout_command,
)

ALL: tuple[click.Command, ...] = (
    get_command.get,
    describe_command.describe,
    rollout_command.rollout,
    diff_command.diff,
    logs_command.logs,
)
