"""What a pod's status says about a rollout before the Deployment's deadline does.

A Deployment only reports `ProgressDeadlineExceeded` after `progressDeadlineSeconds`
(ten minutes by default), while the kubelet and the scheduler say within seconds that a
version cannot run: a container in CrashLoopBackOff (or killed for memory), an image that
cannot be pulled, a container whose config (a Secret, a ConfigMap key) is missing, a pod
no node can take. `problem` reads those from one pod, as `kubectl describe pod` shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KubeObject = dict[str, Any]

# Waiting reasons that do not clear up on their own (the kubelet backs off and retries).
STUCK_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


@dataclass(frozen=True)
class PodProblem:
    """Why one pod of a version cannot become ready."""

    reason: str  # CrashLoopBackOff, OOMKilled, ImagePullBackOff, …, Unschedulable
    pod: str
    container: str | None
    message: str
    restarts: int = 0
    exit_code: int | None = None
    terminated_before: bool = False  # a previous container ran: it has logs to read

    def describe(self) -> str:
        where = f"pod {self.pod}" + (f", container {self.container}" if self.container else "")
        facts = []
        if self.restarts:
            facts.append(f"restarted {self.restarts} times")
        if self.exit_code is not None:
            facts.append(f"last exit code {self.exit_code}")
        detail = f" ({', '.join(facts)})" if facts else ""
        message = f": {self.message}" if self.message else ""
        return f"{self.reason} in {where}{detail}{message}"


def problem(pod: KubeObject) -> PodProblem | None:
    """The first reason `pod` cannot run, or None while it may still come up."""
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return None
    name = str(metadata.get("name", ""))
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return PodProblem("Unschedulable", name, None, str(condition.get("message", "")))
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in containers:
        found = _container_problem(name, container)
        if found is not None:
            return found
    return None


def _container_problem(pod: str, container: KubeObject) -> PodProblem | None:
    state = container.get("state") or {}
    last = (container.get("lastState") or {}).get("terminated") or {}
    name = str(container.get("name", ""))
    restarts = int(container.get("restartCount") or 0)
    exit_code = last.get("exitCode")
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    if terminated.get("reason") == "OOMKilled" or (
        waiting.get("reason") == "CrashLoopBackOff" and last.get("reason") == "OOMKilled"
    ):
        code = terminated.get("exitCode", exit_code)
        return PodProblem(
            "OOMKilled",
            pod,
            name,
            "the container used more memory than its limit",
            restarts,
            int(code) if code is not None else None,
            bool(last),
        )
    reason = waiting.get("reason")
    if reason in STUCK_WAITING:
        return PodProblem(
            str(reason),
            pod,
            name,
            str(waiting.get("message", "")),
            restarts,
            int(exit_code) if exit_code is not None else None,
            bool(last),
        )
    return None
