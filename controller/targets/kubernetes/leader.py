"""Leader election through a `coordination.k8s.io` Lease, so two replicas never both act.

The holder renews the Lease every `renew_seconds`; a candidate takes it over only when
the holder let it lapse for `lease_seconds`. Every write is a PUT carrying the
resourceVersion it read, so two candidates racing for a lapsed Lease cannot both win:
the API server turns the slower one's write into a Conflict. A leader that fails to
renew stops its work at once, before anyone else can have taken over. While it does not
lead, `waiting` says why (the Lease's holder, a missing namespace, an API error), for
`/readyz`, the API and the CLI to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.targets.kubernetes import errors
from controller.targets.kubernetes.client import KubeClient

log = logging.getLogger("shipyard.leader")
_LEASE = ("coordination.k8s.io/v1", "Lease")


def default_identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElection:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str = "shipyard-controller",
        *,
        identity: str | None = None,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self._now = now
        self.is_leader = False
        # Why this candidate does not lead right now; None once it holds the Lease.
        self.waiting: str | None = f"Lease {namespace}/{name} not acquired yet"

    def try_acquire(self) -> bool:
        """Take or renew the Lease; False when someone else holds it or won a race."""
        now = self._now()
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            lease = self.client.get(*_LEASE, self.name, self.namespace)
            if lease is None:
                self._create(stamp)
                return True
            spec: dict[str, Any] = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            if holder and holder != self.identity and not self._lapsed(spec, now):
                self.waiting = f"held by {holder}"
                return False
            transitions = int(spec.get("leaseTransitions") or 0) + (holder != self.identity)
            acquired = spec.get("acquireTime") if holder == self.identity else stamp
            renewed = self._lease(acquired or stamp, stamp, transitions)
            renewed["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
            self.client.replace(renewed)
        except errors.Conflict:
            self.waiting = "another candidate took the Lease first"
            return False
        self.waiting = None
        return True

    def _create(self, stamp: str) -> None:
        try:
            self.client.create(self._lease(stamp, stamp, transitions=0))
        except errors.NotFound as error:
            # The Lease did not exist and could not be created: its namespace is missing.
            self.waiting = f"namespace {self.namespace} not found"
            raise errors.NotFound(
                f"cannot create Lease {self.namespace}/{self.name}: {error}", error.status
            ) from error
        self.waiting = None

    def release(self) -> bool:
        """Give the Lease up (holder cleared, as client-go's ReleaseOnCancel does), so a
        successor takes over at once instead of waiting for it to lapse. False when this
        candidate did not hold it."""
        lease = self.client.get(*_LEASE, self.name, self.namespace)
        spec: dict[str, Any] = (lease or {}).get("spec") or {}
        if lease is None or spec.get("holderIdentity") != self.identity:
            return False
        stamp = self._now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        released = self._lease(spec.get("acquireTime") or stamp, stamp, 0)
        released["spec"].update(
            holderIdentity=None,
            leaseDurationSeconds=1,
            leaseTransitions=int(spec.get("leaseTransitions") or 0),
        )
        released["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
        try:
            self.client.replace(released)
        except errors.Conflict:
            return False
        self.waiting = f"released Lease {self.namespace}/{self.name}"
        return True

    def _lapsed(self, spec: dict[str, Any], now: datetime) -> bool:
        renewed = spec.get("renewTime")
        if not renewed:
            return True
        duration = int(spec.get("leaseDurationSeconds") or self.lease_seconds)
        try:
            when = datetime.fromisoformat(str(renewed).replace("Z", "+00:00"))
        except ValueError:
            return True
        return now > when + timedelta(seconds=duration)

    def _lease(self, acquired: str, renewed: str, transitions: int) -> dict[str, Any]:
        return {
            "apiVersion": _LEASE[0],
            "kind": _LEASE[1],
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_seconds,
                "acquireTime": acquired,
                "renewTime": renewed,
                "leaseTransitions": transitions,
            },
        }

    async def run(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `work` while leading; stop it the moment leadership is lost; until cancelled."""
        while True:
            if not await self._attempt():
                await asyncio.sleep(self.renew_seconds)
                continue
            log.info("%s leads %s/%s", self.identity, self.namespace, self.name)
            self.is_leader = True
            task = asyncio.create_task(work(), name="shipyard-leader-work")
            try:
                while not task.done():
                    await asyncio.sleep(self.renew_seconds)
                    if not await self._attempt():
                        log.warning("%s lost the lease; stopping", self.identity)
                        break
            finally:
                self.is_leader = False
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                # Stopped (not outvoted): hand over now; the work has already ended.
                with contextlib.suppress(Exception):  # the Lease lapses on its own anyway
                    await asyncio.to_thread(self.release)

    async def _attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_acquire)
        except errors.ApiError as error:
            if not isinstance(error, errors.NotFound):
                self.waiting = f"cannot reach the Lease: {error}"
            log.warning("leader election: %s", error)
            return False
