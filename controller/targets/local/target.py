"""The local target: agent versions as supervised processes, switched without downtime.

A new version starts beside the old one; only when it turns healthy does traffic move to
it and the old one stop. A version that never turns healthy, or crashes before it does,
is stopped and the old one keeps serving: the automatic rollback of the local target.

That health gate is the only place a crash counts against a version. Once a version
serves, a crash is the supervisor's business: it restarts the process with backoff for
ever and the slot keeps pointing at it (reporting CrashLoopBackOff meanwhile); nothing
here rolls a promoted version back because it crashed later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from controller.targets.local.processes import AgentProcess, LaunchSpec, ProcessState, ProcessTable
from controller.targets.local.serving_slots import ServingSlots, Slot
from controller.targets.local.terminations import Terminations, last_output_line

_GONE = (ProcessState.FAILED, ProcessState.STOPPED)


@dataclass(frozen=True)
class DeployResult:
    healthy: bool
    message: str = ""


@dataclass(frozen=True)
class Serving:
    """The process that answers for one agent in one environment."""

    agent: str
    environment: str
    version: str
    port: int
    state: str
    commit: str = ""  # where the target itself records it (Kubernetes: an annotation)


# (environment, agent, what now answers or None): lets the router update one route.
RouteListener = Callable[[str, str, Serving | None], None]
# (environment, agent, its canary now or None): lets the router update that one route.
CanaryListener = Callable[[str, str, "CanaryServing | None"], None]


@dataclass(frozen=True)
class CanaryServing:
    """A canary process, the percent of its agent's requests it answers, the sticky header."""

    serving: Serving
    weight: int
    sticky_header: str | None


@dataclass
class _Canary:
    process: AgentProcess
    weight: int
    sticky_header: str | None


class LocalTarget:
    def __init__(self, table: ProcessTable | None = None) -> None:
        self._table = table or ProcessTable()
        self._serving = ServingSlots()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # A canary runs beside its slot's serving process and takes `weight` % of requests.
        self._canaries: dict[tuple[str, str], _Canary] = {}
        self._canary_listeners: list[CanaryListener] = []

    def on_route_change(self, listener: RouteListener) -> None:
        """Call `listener` whenever a slot's process changes (read `serving()` first)."""

        def tell(slot: Slot, process: AgentProcess | None) -> None:
            environment, agent = slot
            serving = None
            if process is not None:
                version, port = process.spec.version, process.port
                serving = Serving(agent, environment, version, port, str(process.state))
            listener(environment, agent, serving)

        self._serving.listen(tell)

    def on_canary_change(self, listener: CanaryListener) -> None:
        """Call `listener` whenever a slot's canary starts, changes weight or ends."""
        self._canary_listeners.append(listener)

    def _tell_canary(self, slot: tuple[str, str]) -> None:
        environment, agent = slot
        canary = self._canaries.get(slot)
        shown = _canary_serving(slot, canary) if canary is not None else None
        for listener in self._canary_listeners:
            listener(environment, agent, shown)

    async def deploy(self, launch: LaunchSpec, deadline_seconds: float) -> DeployResult:
        """Start `launch`'s version and switch traffic to it once healthy (idempotent)."""
        slot = (launch.environment, launch.agent)
        async with self._locks.setdefault(slot, asyncio.Lock()):
            current = self._serving.get(slot)
            if current is not None and current.spec == launch and current.state not in _GONE:
                return DeployResult(True)
            process = await self._table.launch(launch)
            if await process.wait_healthy(deadline_seconds, give_up_on_crash=True):
                self._serving[slot] = process
                if current is not None and current.key != process.key:
                    # Traffic has switched: the old version stops without holding up the
                    # rollout's result (and a preview's readiness) for its exit.
                    self._table.stop_soon(current.key)
                return DeployResult(True)
            message = _failure(process, deadline_seconds)
            await self._table.stop(process.key)
            return DeployResult(False, message)

    async def restore(self, launch: LaunchSpec, deadline_seconds: float) -> DeployResult:
        """Start again a version that served before the controller restarted.

        It was promoted already, so there is no gate and nothing to roll back to: it takes
        its slot at once and, if it crashes, is restarted and reported like any serving
        version. The result only says whether it turned healthy (a first crash ends the
        wait, so one broken agent does not hold up the others' restore).
        """
        slot = (launch.environment, launch.agent)
        async with self._locks.setdefault(slot, asyncio.Lock()):
            current = self._serving.get(slot)
            process = await self._table.launch(launch)
            self._serving[slot] = process
            if current is not None and current.key != process.key:
                await self._table.stop(current.key)
            if await process.wait_healthy(deadline_seconds, give_up_on_crash=True):
                return DeployResult(True)
            return DeployResult(False, _failure(process, deadline_seconds))

    async def remove(self, environment: str, agent: str) -> None:
        slot = (environment, agent)
        async with self._locks.setdefault(slot, asyncio.Lock()):
            canary = self._canaries.pop(slot, None)
            if canary is not None:
                self._tell_canary(slot)
                await self._table.stop(canary.process.key)
            process = self._serving.pop(slot, None)
            if process is not None:
                await self._table.stop(process.key)

    # Canaries ---------------------------------------------------------------------------

    async def start_canary(
        self, launch: LaunchSpec, deadline_seconds: float, sticky_header: str | None = None
    ) -> DeployResult:
        """Start `launch`'s version beside the serving one, at weight 0 once healthy."""
        slot = (launch.environment, launch.agent)
        async with self._locks.setdefault(slot, asyncio.Lock()):
            previous = self._canaries.pop(slot, None)
            if previous is not None:
                self._tell_canary(slot)
                await self._table.stop(previous.process.key)
            process = await self._table.launch(launch)
            if await process.wait_healthy(deadline_seconds, give_up_on_crash=True):
                self._canaries[slot] = _Canary(process, 0, sticky_header)
                self._tell_canary(slot)
                return DeployResult(True)
            message = _failure(process, deadline_seconds)
            await self._table.stop(process.key)
            return DeployResult(False, message)

    def set_canary_weight(self, environment: str, agent: str, weight: int) -> None:
        slot = (environment, agent)
        canary = self._canaries.get(slot)
        if canary is not None:
            canary.weight = max(0, min(100, weight))
            self._tell_canary(slot)

    async def promote_canary(self, environment: str, agent: str) -> bool:
        """The canary becomes the serving process and the old one stops."""
        slot = (environment, agent)
        async with self._locks.setdefault(slot, asyncio.Lock()):
            canary = self._canaries.pop(slot, None)
            if canary is None:
                return False
            current = self._serving.get(slot)
            self._serving[slot] = canary.process
            self._tell_canary(slot)
            if current is not None and current.key != canary.process.key:
                await self._table.stop(current.key)
            return True

    async def abort_canary(self, environment: str, agent: str) -> None:
        """All traffic back to the serving process; the canary stops."""
        slot = (environment, agent)
        async with self._locks.setdefault(slot, asyncio.Lock()):
            canary = self._canaries.pop(slot, None)
            if canary is not None:
                self._tell_canary(slot)
                await self._table.stop(canary.process.key)

    def canaries(self) -> list[CanaryServing]:
        """Every running canary with the percent of its agent's traffic it takes."""
        return [_canary_serving(slot, canary) for slot, canary in sorted(self._canaries.items())]

    def running(self, environment: str) -> dict[str, str]:
        """Agent → version serving in `environment` (crash-looped processes excluded)."""
        return {
            agent: process.spec.version
            for (env, agent), process in self._serving.items()
            if env == environment and process.state is not ProcessState.FAILED
        }

    def environments(self) -> set[str]:
        return {environment for environment, _ in self._serving}

    def serving(self) -> list[Serving]:
        return [
            Serving(agent, environment, process.spec.version, process.port, str(process.state))
            for (environment, agent), process in sorted(self._serving.items())
        ]

    def process(self, environment: str, agent: str) -> AgentProcess | None:
        return self._serving.get((environment, agent))

    @property
    def terminations(self) -> Terminations:
        """How every ended instance of every version ended, with its last output."""
        return self._table.terminations

    async def close(self) -> None:
        self._serving.clear()
        self._canaries.clear()
        await self._table.stop_all()


def _canary_serving(slot: tuple[str, str], canary: _Canary) -> CanaryServing:
    environment, agent = slot
    process = canary.process
    serving = Serving(agent, environment, process.spec.version, process.port, str(process.state))
    return CanaryServing(serving, canary.weight, canary.sticky_header)


def _failure(process: AgentProcess, deadline_seconds: float) -> str:
    if process.state is ProcessState.FAILED and process.last_error:
        reason = process.last_error
    elif process.state is ProcessState.CRASH_LOOP_BACK_OFF and process.last_exit:
        reason = f"{process.last_exit} before turning healthy"
    else:
        reason = f"not healthy within {deadline_seconds:g}s"
        if process.last_error:
            reason += f" ({process.last_error})"
    # The agent's own last words usually say why (a missing key, a traceback's last line).
    last_line = last_output_line(process.logs.lines())
    if last_line is not None:
        reason += f"; last output: {last_line}"
    return reason
