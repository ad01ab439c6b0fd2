"""The Kubernetes target: agent versions as Deployments, applied only when they changed.

Per environment it keeps a view of the cluster, refreshed by a handful of list calls
(`refresh`): what version each agent's Deployment runs, and whether someone deleted or
edited what Shipyard applied (drift). `deploy` server-side-applies an agent's objects
whose content changed (a hash annotation tells), waits for the Deployment to become
available, and on a health verdict against it (progress deadline exceeded) re-applies the
last healthy version's objects: the automatic rollback. Waiting reads one watched cache
(`informer`) shared by every rollout, keyed by the uid and generation our apply returned,
so a Deployment the watch has not delivered yet is never mistaken for a deleted one; one
deleted mid-rollout is drift and is applied again. API errors that outlast the
client's retries are no verdict: `deploy` raises `errors.Transient` and rolls nothing
back. Previews live in their own namespace, deleted on teardown.

Writes go through a small pool of its own (`apply_workers` threads): the official client
is synchronous, so concurrency means threads, and each thread spends most of an apply
waiting on the API server, so a few of them keep the server busy while this process
renders and encodes the next. The pool bounds what is in flight at once (as client-go's
QPS limit does) and keeps writes from queueing behind, or starving, the default
executor's other work (git, reads, the store).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from controller.targets.kubernetes import (
    canaries,
    errors,
    informer,
    pod_endpoints,
    pod_logs,
    pod_states,
    rendering,
    route_weights,
    wakeups,
)
from controller.targets.kubernetes.client import KubeClient, KubeObject
from controller.targets.kubernetes.gateway_rendering import GatewayRef
from controller.targets.local.processes import AgentProcess
from controller.targets.local.target import CanaryServing, DeployResult, Serving

HASH = "shipyard.dev/applied-hash"
AGENT = "shipyard.dev/agent"
ENVIRONMENT = "shipyard.dev/environment"
VERSION = "shipyard.dev/version"
MANAGED = "app.kubernetes.io/managed-by=shipyard"
# Kinds an agent owns, in apply order; deletion runs in reverse.
AGENT_KINDS = (
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
)
_AGENT_KIND_NAMES = frozenset(kind for _, kind in AGENT_KINDS)
_log = logging.getLogger(__name__)
# What the watch knows of a Deployment Shipyard applied, besides the object itself.
_UNSEEN = object()
_VANISHED = object()
# Applies in flight at once: past ~8 the fake API server (and a small real one) is the
# bottleneck and more threads only add GIL contention (bench/kube_sync.py).
APPLY_WORKERS = 8
NAMESPACE_STAMPS = 1024  # namespace objects whose stamped copies are kept (per-environment)
T = TypeVar("T")


@dataclass(frozen=True)
class KubeRequest:
    """One agent version's objects, and its environment's namespace objects."""

    environment: str
    agent: str
    version: str
    namespace: str
    objects: tuple[KubeObject, ...]
    namespace_objects: tuple[KubeObject, ...] = ()
    is_preview: bool = False


@dataclass
class _Canary:
    """A canary Deployment this target runs beside an agent's stable one."""

    request: KubeRequest  # the new version's own objects (what promotion applies)
    weight: int
    sticky_header: str | None

    @property
    def deployment(self) -> str:
        return canaries.canary_name(self.request.agent)


@dataclass
class _Environment:
    namespace: str
    is_preview: bool
    running: dict[str, str] = field(default_factory=dict)  # agent → version
    live: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) → hash
    generations: dict[str, int] = field(default_factory=dict)  # deployment → ours
    uids: dict[str, str] = field(default_factory=dict)  # deployment → its uid as we know it
    commits: dict[str, str] = field(default_factory=dict)  # agent → commit it runs from
    # The ConfigMap names in `live` by each `P` they start `P-config-` with: one rollout's
    # prune looks its agent's up instead of scanning every object of the environment.
    config_maps: dict[str, set[str]] = field(default_factory=dict)

    def remember(self, key: tuple[str, str], digest: str) -> None:
        self.live[key] = digest
        self._index(key)

    def forget(self, key: tuple[str, str]) -> None:
        self.live.pop(key, None)
        if key[0] == "ConfigMap":
            for prefix in _config_map_prefixes(key[1]):
                self.config_maps.get(prefix, set()).discard(key[1])

    def replace_live(self, live: dict[tuple[str, str], str]) -> None:
        self.live = live
        self.config_maps = {}
        for key in live:
            self._index(key)

    def _index(self, key: tuple[str, str]) -> None:
        if key[0] == "ConfigMap":
            for prefix in _config_map_prefixes(key[1]):
                self.config_maps.setdefault(prefix, set()).add(key[1])


def _config_map_prefixes(name: str) -> list[str]:
    """Every `P` such that `name` starts with `P-config-`."""
    marker = "-config-"
    prefixes = []
    at = name.find(marker)
    while at != -1:
        if at > 0:
            prefixes.append(name[:at])
        at = name.find(marker, at + 1)
    return prefixes


def stamped(obj: KubeObject) -> KubeObject:
    """`obj` with the hash of its own content as an annotation, to skip no-op applies."""
    text = json.dumps(obj, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    copy = json.loads(text)
    copy["metadata"].setdefault("annotations", {})[HASH] = digest
    return copy  # type: ignore[no-any-return]


class KubernetesTarget:
    def __init__(
        self,
        client: KubeClient,
        *,
        poll_interval: float = 0.5,
        crash_grace: float = 5.0,
        apply_workers: int = APPLY_WORKERS,
        http_route_gateway: GatewayRef | None = None,
    ) -> None:
        self.client = client
        self.apply_workers = apply_workers
        self._writer = ThreadPoolExecutor(apply_workers, thread_name_prefix="kube-apply")
        self.poll_interval = poll_interval
        # How long a pod must show a crash state before the rollout fails on it: long
        # enough for a registry hiccup to clear, short next to a progress deadline.
        self.crash_grace = crash_grace
        self._environments: dict[str, _Environment] = {}
        self._namespace_stamps: dict[int, tuple[KubeObject, KubeObject]] = {}
        self._last_good: dict[tuple[str, str], KubeRequest] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._deployments: informer.Informer | None = None
        self._pods: informer.Informer | None = None
        # How long a Deployment may stay unseen by the watch before a GET looks for it.
        self.straggler_after = max(2.0, poll_interval * 10)
        # Rollout waits sleep until the watch reports their Deployment or pods changed;
        # `poll_interval` bounds each sleep only by this much, for what no event reports.
        self._wakeups = wakeups.Wakeups()
        self.quiet_wait = poll_interval * 8
        self.drift: list[tuple[str, str, str]] = []  # (environment, agent, what) found
        self._canaries: dict[tuple[str, str], _Canary] = {}
        self.weights = canaries.WeightPublisher(client)
        # Gateway API instead of `shipyard gateway` for canary weights (`route_weights`).
        self.routes = (
            route_weights.RouteWeights(client, http_route_gateway)
            if http_route_gateway is not None
            else None
        )
        self._on_close: list[Callable[[], None]] = []  # what runs beside it (gateway scrapes)

    def on_close(self, stop: Callable[[], None]) -> None:
        """Stop `stop`'s owner with the target (the controller's gateway scraper)."""
        self._on_close.append(stop)

    # Observing --------------------------------------------------------------------------

    async def refresh(self, environment: str, namespace: str | None = None) -> None:
        """Read what the cluster runs in `environment` (one list call per kind)."""
        state = self._environments.get(environment)
        if state is None and namespace is None:
            return
        if state is None:
            state = self._environments[environment] = _Environment(namespace or "", False)
        await asyncio.to_thread(self._observe, environment, state)

    def _observe(self, environment: str, state: _Environment) -> None:
        selector = f"{MANAGED},{ENVIRONMENT}={environment}"
        live: dict[tuple[str, str], str] = {}
        present: dict[str, set[str]] = {}
        running: dict[str, str] = {}
        for api_version, kind in AGENT_KINDS:
            for item in self.client.list(api_version, kind, state.namespace, selector):
                metadata = item.get("metadata") or {}
                name = metadata.get("name", "")
                live[(kind, name)] = (metadata.get("annotations") or {}).get(HASH, "")
                agent = (metadata.get("labels") or {}).get(AGENT)
                if agent:
                    present.setdefault(agent, set()).add(kind)
                if kind == "Deployment":
                    state.uids[name] = str(metadata.get("uid", ""))
                if (metadata.get("labels") or {}).get(canaries.TRACK) == canaries.CANARY_TRACK:
                    continue  # a canary beside the agent: not what it runs
                if kind == "Deployment" and agent:
                    edited = (
                        name in state.generations
                        and metadata.get("generation") != state.generations[name]
                    )
                    if edited:
                        self.drift.append((environment, agent, "Deployment spec edited"))
                        continue
                    running[agent] = (metadata.get("labels") or {}).get(VERSION, "")
                    state.commits[agent] = (metadata.get("annotations") or {}).get(
                        rendering.COMMIT_ANNOTATION, ""
                    )
        for agent in list(running):
            missing = {"ConfigMap", "Service"} - present.get(agent, set())
            if missing:
                self.drift.append((environment, agent, f"{', '.join(sorted(missing))} deleted"))
                del running[agent]
        for agent in set(state.running) - set(running) - {a for _, a, _ in self.drift}:
            self.drift.append((environment, agent, "Deployment deleted"))
        # Namespace-level objects are not listed here; keep what we know of them.
        kept = {key: value for key, value in state.live.items() if key[0] not in _AGENT_KIND_NAMES}
        state.replace_live({**kept, **live})
        state.running = running

    def take_drift(self) -> list[tuple[str, str, str]]:
        """Drift found by `refresh` since the last call: (environment, agent, what)."""
        found, self.drift = self.drift, []
        return found

    def running(self, environment: str) -> dict[str, str]:
        state = self._environments.get(environment)
        return dict(state.running) if state else {}

    def environments(self) -> set[str]:
        return set(self._environments)

    def canaries(self) -> list[CanaryServing]:
        """Every canary Deployment this target runs, with the weight published for it."""
        return [
            CanaryServing(
                Serving(agent, environment, canary.request.version, 0, "Healthy",
                        _commit(canary.request)),
                canary.weight,
                canary.sticky_header,
            )
            for (environment, agent), canary in sorted(self._canaries.items())
        ]  # fmt: skip

    def serving(self) -> list[Serving]:
        return [
            Serving(agent, name, version, 0, "Healthy", state.commits.get(agent, ""))
            for name, state in sorted(self._environments.items())
            for agent, version in sorted(state.running.items())
        ]

    def process(self, environment: str, agent: str) -> AgentProcess | None:
        return None

    async def logs(
        self, environment: str, agent: str, options: pod_logs.LogOptions
    ) -> AsyncIterator[dict[str, Any]]:
        """The agent's pod logs in `environment`, for the version it runs there (all its
        pods when none is known); `errors.NotFound` when it has no pods."""
        state = self._environments.get(environment)
        if state is None:
            raise errors.NotFound(f"{agent} runs nothing in {environment} on this cluster")
        selector = f"{MANAGED},{ENVIRONMENT}={environment},{AGENT}={agent}"
        version = state.running.get(agent)
        if version:
            selector += f",{VERSION}={version}"
        listed = await asyncio.to_thread(self.client.list, "v1", "Pod", state.namespace, selector)
        pods = sorted(
            (pod for pod in listed if not (pod.get("metadata") or {}).get("deletionTimestamp")),
            key=lambda pod: pod["metadata"]["name"],
        )
        if not pods:
            raise errors.NotFound(
                f"no pods of {agent}" + (f" {version}" if version else "")
                + f" in namespace {state.namespace}"
            )  # fmt: skip
        return await pod_logs.stream(self.client, pods, rendering.CONTAINER, options)

    # Changing -----------------------------------------------------------------------------

    async def deploy(self, request: KubeRequest, deadline_seconds: float) -> DeployResult:
        slot = (request.environment, request.agent)
        async with self._locks.setdefault(slot, asyncio.Lock()):
            state = self._environments.setdefault(
                request.environment, _Environment(request.namespace, request.is_preview)
            )
            state.is_preview = request.is_preview
            try:
                await self._writing(self._apply, request, state)
                healthy, message = await self._wait_available(request, deadline_seconds)
            except (errors.Transient, errors.Conflict) as error:
                # The API hiccupped beyond the client's retries: no verdict on the version.
                # Nothing is rolled back; the caller retries the same rollout later.
                raise errors.Transient(
                    f"rollout of {request.agent} {request.version} interrupted by the "
                    f"Kubernetes API: {error}",
                    error.status,
                ) from error
            except errors.ApiError as error:
                healthy, message = False, str(error)
            previous = self._last_good.get(slot)
            if healthy:
                state.running[request.agent] = request.version
                state.commits[request.agent] = _commit(request)
                self._last_good[slot] = request
                await asyncio.to_thread(self._prune_config_maps, request, state)
                if slot not in self._canaries:
                    await asyncio.to_thread(self._drop_stray_canary, request)
                return DeployResult(True)
            if previous is None or previous.version == request.version:
                return DeployResult(False, message)
            try:
                await self._writing(self._apply, previous, state)
                restored, _ = await self._wait_available(previous, deadline_seconds)
            except errors.ApiError as error:
                return DeployResult(False, f"{message}; rollback failed: {error}")
            if restored:
                state.running[request.agent] = previous.version
                state.commits[request.agent] = _commit(previous)
            return DeployResult(False, message)

    # Canaries ---------------------------------------------------------------------------

    async def start_canary(
        self, request: KubeRequest, deadline_seconds: float, sticky_header: str | None = None
    ) -> DeployResult:
        """Run `request`'s version as `<agent>-canary` beside the stable Deployment, at
        weight 0, and wait for it to be available (`canaries`)."""
        slot = (request.environment, request.agent)
        async with self._locks.setdefault(slot, asyncio.Lock()):
            state = self._environments.setdefault(
                request.environment, _Environment(request.namespace, request.is_preview)
            )
            applied = dataclasses.replace(
                request, objects=canaries.canary_objects(request.agent, request.objects)
            )
            canary = _Canary(request, 0, sticky_header)
            try:
                await asyncio.to_thread(self._apply, applied, state)
                await asyncio.to_thread(
                    self.weights.write_now,
                    request.namespace,
                    canary.deployment,
                    0,
                    sticky_header,
                )
                if self.routes is not None:
                    await asyncio.to_thread(self.routes.start, request.agent, request.objects)
                healthy, message = await self._wait_available(applied, deadline_seconds)
            except (errors.Transient, errors.Conflict) as error:
                await asyncio.to_thread(self._discard_canary, canary, state)
                raise errors.Transient(
                    f"canary of {request.agent} {request.version} interrupted by the "
                    f"Kubernetes API: {error}",
                    error.status,
                ) from error
            except errors.ApiError as error:
                healthy, message = False, str(error)
            if healthy:
                self._canaries[slot] = canary
                return DeployResult(True)
            await asyncio.to_thread(self._discard_canary, canary, state)
            return DeployResult(False, message)

    def set_canary_weight(self, environment: str, agent: str, weight: int) -> None:
        """Publish the canary's share; written in the background (newest wins)."""
        canary = self._canaries.get((environment, agent))
        if canary is None:
            return
        canary.weight = max(0, min(100, weight))
        self.weights.publish(
            canary.request.namespace, canary.deployment, canary.weight, canary.sticky_header
        )
        if self.routes is not None:
            self.routes.publish(agent, canary.request.objects, canary.weight)

    async def promote_canary(self, environment: str, agent: str) -> bool:
        """The stable Deployment rolls to the canary's version; then the canary goes.

        The canary keeps its weight (100 when the steps ran out) while the stable one
        rolls, so no request meets a version on its way out.
        """
        canary = self._canaries.get((environment, agent))
        if canary is None:
            return False
        deadline = _progress_deadline(canary.request)
        result = await self.deploy(canary.request, deadline)
        state = self._environments.get(environment)
        async with self._locks.setdefault((environment, agent), asyncio.Lock()):
            self._canaries.pop((environment, agent), None)
            if state is not None:
                await asyncio.to_thread(self._delete_canary, canary, state)
        return result.healthy

    async def abort_canary(self, environment: str, agent: str) -> None:
        """Delete the canary Deployment: its weight goes with it, all traffic to stable."""
        async with self._locks.setdefault((environment, agent), asyncio.Lock()):
            canary = self._canaries.pop((environment, agent), None)
            state = self._environments.get(environment)
            if canary is not None and state is not None:
                await asyncio.to_thread(self._delete_canary, canary, state)

    def _drop_stray_canary(self, request: KubeRequest) -> None:
        """A canary Deployment no canary loop owns (left by a restart mid-canary) would
        keep its weight at the gateway: a plain rollout of its agent deletes it. Read from
        the watch, so a rollout without one costs no call."""
        name = canaries.canary_name(request.agent)
        if self._deployment_informer().get(request.namespace, name) is not None:
            self.client.delete("apps/v1", "Deployment", name, request.namespace)
            self._environments[request.environment].forget(("Deployment", name))

    def _discard_canary(self, canary: _Canary, state: _Environment) -> None:
        """`_delete_canary` after a canary that never started; an API failure here must not
        hide the failure being reported (a next plain rollout removes what is left)."""
        try:
            self._delete_canary(canary, state)
        except errors.ApiError as error:
            _log.warning("leaving canary %s of %s: %s", canary.deployment, canary.request.agent,
                         error)  # fmt: skip

    def _delete_canary(self, canary: _Canary, state: _Environment) -> None:
        name = canary.deployment
        if self.routes is not None:
            self.routes.end(canary.request.agent, canary.request.objects)
        self.weights.forget(canary.request.namespace, name)
        self.client.delete("apps/v1", "Deployment", name, canary.request.namespace)
        state.forget(("Deployment", name))
        state.generations.pop(name, None)
        state.uids.pop(name, None)
        # Its ConfigMap, unless the stable version uses it now (after a promotion).
        config = _config_map(canary.request)
        stable = self._last_good.get((canary.request.environment, canary.request.agent))
        if config is not None and stable is not None and _config_map(stable) != config:
            self.client.delete("v1", "ConfigMap", config, canary.request.namespace)
            state.forget(("ConfigMap", config))

    def version_endpoint(
        self, environment: str, agent: str, version: str, *, canary: bool
    ) -> str | None:
        """`http://podIP:containerPort` of a ready pod running `version` of `agent`: the
        canary Deployment's (`canary`) or the stable one's; None while there is none."""
        running = self._canaries.get((environment, agent))
        request = running.request if canary and running else None
        if not canary:
            request = self._last_good.get((environment, agent))
        if request is None or request.version != version:
            return None
        port = pod_endpoints.container_port(request.objects)
        pods = self._pod_informer().indexed((request.namespace, agent, version))
        address = pod_endpoints.ready_address(pods, canary=canary)
        return None if port is None or address is None else pod_endpoints.url(address, port)

    def remember_healthy(self, request: KubeRequest) -> None:
        """What to roll `request.agent` back to, for a target that lost it in a restart;
        never overrides a version this target saw turn healthy itself."""
        self._last_good.setdefault((request.environment, request.agent), request)

    async def _writing(self, call: Callable[..., T], *args: Any) -> T:
        """Run `call` on the write pool (with this task's context, as `to_thread` does)."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, functools.partial(context.run, call, *args))

    def _apply(self, request: KubeRequest, state: _Environment) -> None:
        shared = [self._stamped_shared(obj) for obj in request.namespace_objects]
        for desired in (*shared, *map(stamped, request.objects)):
            key = (desired["kind"], desired["metadata"]["name"])
            if state.live.get(key) == desired["metadata"]["annotations"][HASH]:
                continue
            applied = self.client.apply(desired)
            state.remember(key, desired["metadata"]["annotations"][HASH])
            if desired["kind"] == "Deployment":
                state.generations[key[1]] = int(applied["metadata"].get("generation") or 0)
                state.uids[key[1]] = _uid(applied)

    def _stamped_shared(self, obj: KubeObject) -> KubeObject:
        """`stamped(obj)` for a namespace object: the driver gives every agent of an
        environment the same ones, so each is hashed and copied once, not once per agent.
        Keyed by identity, holding `obj` so its id cannot be reused while cached."""
        cached = self._namespace_stamps.get(id(obj))
        if cached is not None and cached[0] is obj:
            return cached[1]
        desired = stamped(obj)
        if len(self._namespace_stamps) >= NAMESPACE_STAMPS:
            self._namespace_stamps.clear()
        self._namespace_stamps[id(obj)] = (obj, desired)
        return desired

    async def _wait_available(self, request: KubeRequest, deadline: float) -> tuple[bool, str]:
        name = next(o["metadata"]["name"] for o in request.objects if o["kind"] == "Deployment")
        state = self._environments[request.environment]
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline
        message = f"Deployment {name} not available within {deadline:g}s"
        unseen_since = loop.time()
        crashes_seen: dict[tuple[str, str], float] = {}
        while True:
            wakeup = self._wakeups.arm(
                (("Deployment", request.namespace, name), _pods_key(request))
            )
            applied = state.generations.get(name, 0)
            live = self._watched(request.namespace, name, state.uids.get(name, ""), applied)
            if live is _UNSEEN and loop.time() - unseen_since >= self.straggler_after:
                # The watch is behind (or broken): a GET issued after our apply returned
                # cannot be older than it, so it is as trustworthy as the cache.
                live = await asyncio.to_thread(
                    self.client.get, "apps/v1", "Deployment", name, request.namespace
                )
                live = _VANISHED if live is None else live
            if live is _VANISHED:
                # Deleted by someone else mid-rollout: drift, not a verdict on the version.
                self.drift.append(
                    (request.environment, request.agent, "Deployment deleted during its rollout")
                )
                state.forget(("Deployment", name))
                await self._writing(self._apply, request, state)
                unseen_since = loop.time()
                continue
            if isinstance(live, dict):
                unseen_since = loop.time()
                verdict, detail = _available(live)
                if verdict is not None:
                    return verdict, detail
                if detail:
                    message = f"Deployment {name} not available within {deadline:g}s: {detail}"
            crash = self._crash(request, crashes_seen, loop.time())
            if crash is not None:
                lines = await asyncio.to_thread(self._last_lines, request.namespace, crash)
                return False, _crash_message(crash, lines)
            if loop.time() >= give_up:
                return False, message
            await wakeup.sleep(min(self.quiet_wait, give_up - loop.time()))

    def _watched(self, namespace: str, name: str, uid: str, applied: int) -> object:
        """The Deployment as the watch last saw it, once that is at least our own write;
        `_UNSEEN` until then; `_VANISHED` when the watch saw ours deleted.

        A thousand waiters read one cache, so waiting costs no API call per tick.
        """
        informer = self._deployment_informer()
        live = informer.get(namespace, name)
        if uid and informer.gone(uid):
            ours = live is not None and _uid(live) == uid
            if not ours:
                return _VANISHED
        if live is None:
            return _UNSEEN
        if uid and _uid(live) != uid:
            return _UNSEEN  # an older incarnation; ours is still on its way
        generation = int((live.get("metadata") or {}).get("generation") or 0)
        return live if generation >= applied else _UNSEEN

    def _crash(
        self, request: KubeRequest, seen: dict[tuple[str, str], float], now: float
    ) -> pod_states.PodProblem | None:
        """A pod of this version in a crash state for at least `crash_grace` seconds."""
        current: set[tuple[str, str]] = set()
        pods = self._pod_informer()
        for pod in pods.indexed((request.namespace, request.agent, request.version)):
            found = pod_states.problem(pod)
            if found is None:
                continue
            key = (found.pod, found.reason)
            current.add(key)
            if now - seen.setdefault(key, now) >= self.crash_grace:
                return found
        for gone in set(seen) - current:
            del seen[gone]
        return None

    def _last_lines(self, namespace: str, crash: pod_states.PodProblem) -> list[str]:
        """The crashed container's last lines of output, when it has any to show."""
        if not crash.terminated_before:
            return []
        try:
            stream = self.client.pod_log(
                namespace, crash.pod, container=crash.container, previous=True, tail_lines=5
            )
            return [line[:200] for line in stream.lines()][-5:]
        except errors.ApiError:
            return []

    def _pod_informer(self) -> informer.Informer:
        if self._pods is None:
            self._pods = informer.Informer(
                self.client,
                "v1",
                "Pod",
                MANAGED,
                index=_pod_version,
                transform=_essentials,
                on_object=lambda pod: self._wakeups.fire(("Pod", *_pod_version(pod))),
            ).start()
        return self._pods

    def _deployment_informer(self) -> informer.Informer:
        if self._deployments is None:
            self._deployments = informer.Informer(
                self.client,
                "apps/v1",
                "Deployment",
                MANAGED,
                transform=_essentials,
                on_object=lambda live: self._wakeups.fire(("Deployment", *_key(live))),
            ).start()
        return self._deployments

    def _prune_config_maps(self, request: KubeRequest, state: _Environment) -> None:
        """ConfigMaps of earlier prompts and models, now that the new pods are up.

        The names come from what this target applied or last read back, so pruning costs
        no list call; a ConfigMap left by a crash is found by the next thorough refresh.
        """
        current = _config_map(request)
        # Other agents' applies add to the index from their threads meanwhile: iterate over
        # a snapshot (taken in one step under the GIL), or the iteration may blow up.
        known = list(state.config_maps.get(request.agent, ()))
        for name in sorted(known):
            if name != current:
                self.client.delete("v1", "ConfigMap", name, request.namespace)
                state.forget(("ConfigMap", name))

    async def remove(self, environment: str, agent: str) -> None:
        state = self._environments.get(environment)
        if state is None:
            return
        await asyncio.to_thread(self._delete_agent, environment, agent, state)
        state.running.pop(agent, None)
        self._last_good.pop((environment, agent), None)

    def _delete_agent(self, environment: str, agent: str, state: _Environment) -> None:
        selector = f"{MANAGED},{ENVIRONMENT}={environment},{AGENT}={agent}"
        for api_version, kind in reversed(AGENT_KINDS):
            for item in self.client.list(api_version, kind, state.namespace, selector):
                self.client.delete(api_version, kind, item["metadata"]["name"], state.namespace)
                state.forget((kind, item["metadata"]["name"]))

    async def teardown(self, environment: str) -> None:
        """Delete a preview's namespace (and with it everything in it)."""
        state = self._environments.pop(environment, None)
        if state is not None and state.is_preview:
            await asyncio.to_thread(self.client.delete, "v1", "Namespace", state.namespace)
        for slot in [slot for slot in self._last_good if slot[0] == environment]:
            del self._last_good[slot]

    async def close(self) -> None:
        self.weights.stop()
        if self.routes is not None:
            self.routes.stop()
        for stop in self._on_close:
            await asyncio.to_thread(stop)
        self._on_close.clear()
        self._canaries.clear()
        self._environments.clear()
        for watched in (self._deployments, self._pods):
            if watched is not None:
                watched.stop()
        self._deployments = self._pods = None


def _progress_deadline(request: KubeRequest) -> float:
    """How long promotion waits for the stable Deployment: its own progress deadline."""
    deployment = next((o for o in request.objects if o["kind"] == "Deployment"), {})
    return float((deployment.get("spec") or {}).get("progressDeadlineSeconds") or 600)


def _config_map(request: KubeRequest) -> str | None:
    return next((o["metadata"]["name"] for o in request.objects if o["kind"] == "ConfigMap"), None)


def _crash_message(crash: pod_states.PodProblem, lines: list[str]) -> str:
    message = crash.describe()
    if lines:
        message += "; last log lines: " + " | ".join(lines)
    return message


def _commit(request: KubeRequest) -> str:
    deployment = next((o for o in request.objects if o["kind"] == "Deployment"), {})
    annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(rendering.COMMIT_ANNOTATION, ""))


_KEPT_METADATA = ("name", "namespace", "uid", "generation", "deletionTimestamp", "labels")
_KEPT_STATUS = frozenset(
    {
        "conditions", "observedGeneration", "replicas", "updatedReplicas",
        "availableReplicas", "phase", "containerStatuses", "initContainerStatuses", "podIP",
    }
)  # fmt: skip
# Of a condition or a container status: what `_available` and `pod_states` read.
_KEPT_ENTRY = frozenset(
    {"type", "status", "reason", "message", "name", "state", "lastState", "restartCount"}
)


def _kept_entry(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    return {key: value for key, value in entry.items() if key in _KEPT_ENTRY}


def _essentials(obj: KubeObject) -> KubeObject:
    """What rollout waits read of a watched Deployment or Pod (`_available`, `_watched`,
    `pod_states`; a pod's IP for `version_endpoint`): identity, labels, the replica count
    and the status; not managedFields, annotations or the pod template, which are most of
    each object's size."""
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    kept_status = {key: value for key, value in status.items() if key in _KEPT_STATUS}
    for key in ("conditions", "containerStatuses", "initContainerStatuses"):
        if key in kept_status:
            kept_status[key] = [_kept_entry(entry) for entry in kept_status[key] or []]
    kept: KubeObject = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {key: metadata[key] for key in _KEPT_METADATA if key in metadata},
        "status": kept_status,
    }
    replicas = (obj.get("spec") or {}).get("replicas")
    if replicas is not None:
        kept["spec"] = {"replicas": replicas}
    return informer.interned(kept)  # type: ignore[no-any-return]


def _pods_key(request: KubeRequest) -> tuple[str, str, str, str]:
    return ("Pod", request.namespace, request.agent, request.version)


def _key(obj: KubeObject) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace", "")), str(metadata.get("name", "")))


def _pod_version(pod: KubeObject) -> tuple[str, str, str]:
    """(namespace, agent, version) of a pod: what a rollout wait looks pods up by."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return (str(metadata.get("namespace", "")), labels.get(AGENT, ""), labels.get(VERSION, ""))


def _uid(obj: KubeObject) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def _available(deployment: KubeObject) -> tuple[bool | None, str]:
    """(True, "") when rolled out, (False, why) when it cannot be, (None, progress) else."""
    spec: dict[str, Any] = deployment.get("spec") or {}
    status: dict[str, Any] = deployment.get("status") or {}
    metadata: dict[str, Any] = deployment.get("metadata") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == (
            "ProgressDeadlineExceeded"
        ):
            return False, f"ProgressDeadlineExceeded: {condition.get('message', '')}".strip()
    # The same tests, in the same order, as `kubectl rollout status`.
    wanted = int(spec.get("replicas", 1) or 0)
    if int(status.get("observedGeneration") or 0) < int(metadata.get("generation") or 0):
        return None, "waiting for the Deployment spec update to be observed"
    updated = int(status.get("updatedReplicas") or 0)
    replicas = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < wanted:
        return None, f"{updated} of {wanted} new replicas have been updated"
    if replicas > updated:
        return None, f"{replicas - updated} old replicas are pending termination"
    if available < updated:
        return None, f"{available} of {updated} updated replicas are available"
    return True, ""
