"""From a validated agent to what the local target needs to start it.

Secret references are resolved here, in memory, from the controller's environment and an
optional secrets file; values go straight into the child's environment and are never
written to disk, logged or put in status.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from controller.errors import ShipyardError
from controller.specs.model import Agent
from controller.targets.local.processes import LaunchSpec

_NOT_VARIABLE = re.compile(r"[^A-Z0-9_]")


class NotLaunchable(ShipyardError):
    """The agent cannot run on the local target as declared (no command, a missing secret)."""


def secret_variable(secret: str, key: str) -> str:
    """`openai` / `api-key` → `OPENAI_API_KEY`: where the local target looks for a secret."""
    return _NOT_VARIABLE.sub("_", f"{secret}_{key}".upper())


def read_secrets_file(path: Path | None) -> dict[str, str]:
    """`KEY=VALUE` lines (a dotenv subset); blank lines and `#` comments are skipped."""
    if path is None or not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        name, value = stripped.split("=", 1)
        values[name.strip()] = value.strip().strip("'\"")
    return values


def launch_spec(
    agent: Agent,
    environment: str,
    commit: str,
    workdir: Path,
    secrets: Mapping[str, str],
) -> LaunchSpec:
    spec = agent.spec
    if spec.run is None:
        raise NotLaunchable(
            f'agent "{agent.name}" has no spec.run; the local target starts agents from '
            "spec.run.command"
        )
    variables = {item.name: item.value for item in spec.env}
    for reference in spec.secrets:
        name = secret_variable(reference.secret, reference.key)
        value = secrets.get(name)
        if value is None:
            raise NotLaunchable(
                f"secret {reference.secret}/{reference.key} for {reference.env} is not set: "
                f"export {name} to the controller or add it to the secrets file"
            )
        variables[reference.env] = value
    variables["SHIPYARD_MODEL"] = f"{spec.model.provider}/{spec.model.name}"
    if spec.prompt.file is not None:
        variables["SHIPYARD_PROMPT_FILE"] = str(workdir / spec.prompt.file)
    else:
        variables["SHIPYARD_PROMPT"] = spec.prompt.text
    cwd = workdir / spec.run.cwd if spec.run.cwd else workdir
    health = spec.health_check
    return LaunchSpec(
        agent=agent.name,
        environment=environment,
        version=agent.version,
        commit=commit,
        command=spec.run.command,
        cwd=Path(os.path.normpath(cwd)),
        env=variables,
        health_path=health.path,
        health_period=float(health.period_seconds),
        health_timeout=float(health.timeout_seconds),
        failure_threshold=health.failure_threshold,
        initial_delay=float(health.initial_delay_seconds),
    )
