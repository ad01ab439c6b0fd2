"""Canary weights as Gateway API HTTPRoute `backendRefs`, where a cluster has Gateway API.

With `--http-route-gateway NAME.NAMESPACE` the controller splits a canary's traffic with an
HTTPRoute on that Gateway instead of `shipyard gateway`: when a canary starts, it gets a
Service of its own (`gateway_rendering.canary_service`) and the agent an HTTPRoute for
its host whose backends weigh the stable Service and the canary's; each weight the
canary loop sets re-applies the route; promotion and abort put the route back at 100 %
on the stable Service before the canary's Service goes. The route stays afterwards (all
to stable), so the agent keeps answering through the Gateway.

Writes are ordered through one worker thread: the canary loop sets weights from the event
loop and must not wait for the API, and the last weight set is the last one written.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait

from controller.targets.kubernetes import canaries, errors, gateway_rendering, rendering
from controller.targets.kubernetes.client import KubeClient, KubeObject
from controller.targets.kubernetes.gateway_rendering import GatewayRef

TRAFFIC_MANAGER = canaries.TRAFFIC_MANAGER
_log = logging.getLogger(__name__)


class RouteWeights:
    def __init__(self, client: KubeClient, parent: GatewayRef) -> None:
        self.client = client
        self.parent = parent
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="httproute-weights")
        self._pending: list[Future[None]] = []

    def start(self, agent: str, objects: tuple[KubeObject, ...]) -> None:
        """The canary's Service and the route at weight 0 (from the calling thread)."""
        name = canaries.canary_name(agent)
        (service,) = (obj for obj in objects if obj["kind"] == "Service")
        self.client.apply(gateway_rendering.canary_service(service, name))
        self._write(objects, (name, 0))

    def publish(self, agent: str, objects: tuple[KubeObject, ...], weight: int) -> None:
        """The canary's share, written in the background, in order."""
        canary = (canaries.canary_name(agent), weight)
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._writer.submit(self._logged, objects, canary))

    def end(self, agent: str, objects: tuple[KubeObject, ...]) -> None:
        """All traffic to the stable Service, then the canary's Service goes."""
        self.settled(30)
        self._write(objects, None)
        (service,) = (obj for obj in objects if obj["kind"] == "Service")
        with contextlib.suppress(errors.NotFound):
            self.client.delete(
                "v1", "Service", canaries.canary_name(agent), service["metadata"]["namespace"]
            )

    def settled(self, timeout: float) -> bool:
        """Wait until every published weight is written (or given up on)."""
        _done, not_done = wait(list(self._pending), timeout)
        return not not_done

    def stop(self) -> None:
        self._writer.shutdown(wait=False, cancel_futures=True)

    def _write(self, objects: tuple[KubeObject, ...], canary: tuple[str, int] | None) -> None:
        try:
            route = gateway_rendering.route_of(objects, parent=self.parent, canary=canary)
        except rendering.RenderError as error:  # a failed canary, told, never a crash
            raise errors.Invalid(f"no HTTPRoute for this agent: {error}") from error
        self.client.apply(route, field_manager=TRAFFIC_MANAGER)

    def _logged(self, objects: tuple[KubeObject, ...], canary: tuple[str, int]) -> None:
        try:
            self._write(objects, canary)
        except errors.ApiError as error:
            _log.warning("HTTPRoute weight %d%% for %s: %s", canary[1], canary[0], error)
