"""How every instance of every agent version ended, with the output it left behind.

When an agent prints `boom: missing MODEL_KEY` and exits, its process is restarted or
stopped and its live log buffer moves on; this module keeps what a person needs to see
why, as a kubelet keeps a container's `lastState` and its `--previous` logs: the exit code
or signal, when the instance started and ended, and the last 64 KiB of its stdout and
stderr. Records are kept per (agent, environment, version), a few instances each, so a
failed rollout's crash output outlives the stopped process.

Like the live buffer, the output may hold anything, secrets included: it stays in memory,
bounded, and dies with the controller.
"""

from __future__ import annotations

import signal
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from controller.targets.local.logbuffer import LogLine

OUTPUT_LIMIT = 64 * 1024
"""Bytes of an instance's last output (UTF-8 text of its lines) that are kept."""

INSTANCES_PER_VERSION = 5
VERSIONS_KEPT = 256
"""Oldest (agent, environment, version) records are dropped past this many."""

TerminationKey = tuple[str, str, str]
"""(agent, environment, version)."""


@dataclass(frozen=True)
class Termination:
    """One ended instance: why and when it ended, and its last output, oldest line first."""

    agent: str
    environment: str
    version: str
    reason: str  # "Error" (non-zero exit or a signal), "Completed" (exit 0), "Stopped"
    exit_code: int | None  # None when a signal ended it
    signal: str | None  # e.g. "SIGKILL"
    message: str  # "exited with code 3", "killed by SIGKILL"
    started_at: float
    finished_at: float
    output: tuple[LogLine, ...]
    truncated: bool  # older output of this instance did not fit the limit
    healthy: bool = False  # it was answering its health check when it ended

    @property
    def routine(self) -> bool:
        """Stopped while healthy: replaced by a newer version, removed, torn down."""
        return self.reason == "Stopped" and self.healthy

    @property
    def last_line(self) -> str | None:
        """The last line the agent itself printed (stdout or stderr), if any."""
        return last_output_line(self.output)

    def as_dict(self, lines: int | None = None) -> dict[str, object]:
        """The record as JSON; with `lines`, only that many of the last output lines."""
        output = self.output if lines is None else self.output[-lines:] if lines else ()
        return {
            "agent": self.agent,
            "environment": self.environment,
            "version": self.version,
            "reason": self.reason,
            "exitCode": self.exit_code,
            "signal": self.signal,
            "message": self.message,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "lastLine": self.last_line,
            "truncated": self.truncated,
            "healthy": self.healthy,
            "output": [
                {"timestamp": line.timestamp, "stream": line.stream, "line": line.line}
                for line in output
            ],
        }


def last_output_line(lines: Sequence[LogLine], limit: int = 300) -> str | None:
    """The last non-blank line the agent itself printed, cut to `limit` characters."""
    for line in reversed(lines):
        if line.stream != "shipyard" and line.line.strip():
            text = line.line.strip()
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return None


def capture(
    key: TerminationKey,
    returncode: int,
    started_at: float,
    lines: Iterable[LogLine],
    *,
    stopped: bool,
    healthy: bool = False,
) -> Termination:
    """The record of one instance that ran from `started_at` and exited with `returncode`.

    `lines` is the process's log buffer; only this instance's lines (read at or after
    `started_at`) are kept, the newest up to `OUTPUT_LIMIT` bytes.
    """
    agent, environment, version = key
    mine = [line for line in lines if line.timestamp >= started_at]
    kept: list[LogLine] = []
    size = 0
    for line in reversed(mine):
        size += len(line.line.encode("utf-8", "replace")) + 1
        if size > OUTPUT_LIMIT:
            break
        kept.append(line)
    kept.reverse()
    signal_name: str | None = None
    exit_code: int | None = returncode
    if returncode < 0:
        exit_code = None
        try:
            signal_name = signal.Signals(-returncode).name
        except ValueError:
            signal_name = f"signal {-returncode}"
        message = f"killed by {signal_name}"
    else:
        message = f"exited with code {returncode}"
    if stopped:
        reason = "Stopped"
    elif returncode == 0:
        reason = "Completed"
    else:
        reason = "Error"
    return Termination(
        agent,
        environment,
        version,
        reason,
        exit_code,
        signal_name,
        message,
        started_at,
        time.time(),
        tuple(kept),
        len(kept) < len(mine),
        healthy,
    )


class Terminations:
    """The last few ended instances of every version, newest last; bounded in total."""

    def __init__(
        self,
        instances_per_version: int = INSTANCES_PER_VERSION,
        versions_kept: int = VERSIONS_KEPT,
    ) -> None:
        self._instances_per_version = instances_per_version
        self._versions_kept = versions_kept
        self._records: OrderedDict[TerminationKey, deque[Termination]] = OrderedDict()

    def record(self, termination: Termination) -> None:
        key = (termination.agent, termination.environment, termination.version)
        kept = self._records.pop(key, None)
        if kept is None:
            kept = deque(maxlen=self._instances_per_version)
        kept.append(termination)
        self._records[key] = kept  # most recently ended last
        while len(self._records) > self._versions_kept:
            self._records.popitem(last=False)

    def of_version(self, agent: str, environment: str, version: str) -> list[Termination]:
        """Ended instances of one version, oldest first."""
        return list(self._records.get((agent, environment, version), ()))

    def last(
        self,
        agent: str,
        environment: str,
        version: str | None = None,
        *,
        routine: bool = True,
    ) -> Termination | None:
        """The most recently ended instance of the agent in the environment (of `version`,
        if given): what `logs --previous` shows. `routine=False` passes over healthy
        instances Shipyard stopped (a version replaced by a newer one): what describe's
        Last State shows, so a rollout's routine stop does not hide a crash."""
        newest: Termination | None = None
        for (name, env, ver), kept in self._records.items():
            if name != agent or env != environment or (version is not None and ver != version):
                continue
            for candidate in reversed(kept):
                if routine or not candidate.routine:
                    if newest is None or candidate.finished_at >= newest.finished_at:
                        newest = candidate
                    break
        return newest
