"""From a validated agent to what the local target needs to start it.

Secret references are resolved here, in memory, from the values the environment may
receive (`secret_scopes.SecretView`); values go straight into the child's environment and
are never written to disk, logged or put in status.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from controller.errors import ShipyardError
from controller.reconciler.secret_scopes import SecretView
from controller.specs.model import Agent
from controller.targets.local.processes import LaunchSpec

_NOT_VARIABLE = re.compile(r"[^A-Z0-9_]")


class NotLaunchable(ShipyardError):
    """The agent cannot run on the local target as declared (no command, a missing secret)."""


def secret_variable(secret: str, key: str) -> str:
    """`openai` / `api-key` → `OPENAI_API_KEY`: where the local target looks for a secret."""
    return _NOT_VARIABLE.sub("_", f"{secret}_{key}".upper())


def launch_spec(
    agent: Agent,
    environment: str,
    commit: str,
    workdir: Path,
    secrets: SecretView,
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
            raise NotLaunchable(secrets.explain(f"{reference.secret}/{reference.key}", name))
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
