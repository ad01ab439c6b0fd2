"""The metrics of one controller, in its own registry, with bounded label sets.

Two kinds of series live here. Plain ones (phase durations, fetch errors, webhook
deliveries, rollout durations, commit-to-live) carry labels from small fixed sets and
are ordinary `prometheus_client` metrics. Per-version and per-environment ones (version
info, requests, rollouts, previews, manifest errors, last sync) are yielded by
`_Current` at scrape time from a `State` snapshot; counters keyed by an agent,
environment or version that the snapshot no longer holds are removed first, so a
retired version's or a torn-down preview's series disappear instead of piling up.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric

from controller.metrics.state import PREVIEW_STATES, State, bounded
from controller.metrics.windows import RequestWindows

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
ROLLOUT_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
COMMIT_TO_LIVE_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
PHASE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

SYNC_PHASES = ("fetch", "load", "plan", "apply")
ROLLOUT_RESULTS = ("Healthy", "Failed", "RolledBack", "Aborted")  # the store's finished results
ENVIRONMENT_KINDS = ("production", "preview")
MAX_WEBHOOK_LABEL = 32

_VERSION = ("agent", "environment", "version")


class Metrics:
    """Everything Shipyard exports, recorded by the reconciler and the router."""

    def __init__(self, *, exports_state: bool = True) -> None:
        # False in the gateway: it records requests, while the version info and the
        # other state series are the controller's (exported twice, PromQL joins break).
        self._exports_state = exports_state
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._source: Callable[[], State] | None = None
        self.windows = RequestWindows()  # exact samples of the versions a canary analysis judges
        # Pruned at scrape time; yielded by `_Current`, never registered themselves.
        self._requests = Counter(
            "shipyard_agent_requests",
            "Requests proxied by Shipyard's router, per agent version and HTTP status code.",
            (*_VERSION, "code"),
            registry=None,
        )
        self._request_seconds = Histogram(
            "shipyard_agent_request_duration_seconds",
            "Time from a request reaching the router to the end of the agent's response.",
            _VERSION,
            buckets=REQUEST_BUCKETS,
            registry=None,
        )
        self._rollouts = Counter(
            "shipyard_rollouts",
            "Finished rollouts per agent and environment, by result.",
            ("agent", "environment", "result"),
            registry=None,
        )
        # Label values → their child series: the router records every request, and
        # prometheus_client's `labels()` lookup costs more than the increment itself.
        self._request_keys: dict[tuple[str, str, str, str], Counter] = {}
        self._version_keys: dict[tuple[str, str, str], Histogram] = {}
        self._rollout_keys: set[tuple[str, str, str]] = set()
        self._last_sync: dict[str, float] = {}

        self._rollout_seconds = Histogram(
            "shipyard_rollout_duration_seconds",
            "Time from a rollout starting to its new version being healthy or given up.",
            ("result",),
            buckets=ROLLOUT_BUCKETS,
            registry=self.registry,
        )
        self._commit_to_live = Histogram(
            "shipyard_commit_to_live_seconds",
            "Time from the controller first seeing a push to a version of it being healthy.",
            ("environment_kind",),
            buckets=COMMIT_TO_LIVE_BUCKETS,
            registry=self.registry,
        )
        self._sync_phase = Histogram(
            "shipyard_sync_phase_duration_seconds",
            "Duration of each phase of a sync: fetch, load, plan, apply.",
            ("phase",),
            buckets=PHASE_BUCKETS,
            registry=self.registry,
        )
        self._git_fetch_errors = Counter(
            "shipyard_git_fetch_errors",
            "Fetches from the git remote that failed.",
            registry=self.registry,
        )
        self._webhook_deliveries = Counter(
            "shipyard_webhook_deliveries",
            "Webhook deliveries received, by provider and result.",
            ("provider", "result"),
            registry=self.registry,
        )
        # Fixed label sets exist from the start, so PromQL sees zeros, not absent series.
        for result in ROLLOUT_RESULTS:
            self._rollout_seconds.labels(result)
        for kind in ENVIRONMENT_KINDS:
            self._commit_to_live.labels(kind)
        for phase in SYNC_PHASES:
            self._sync_phase.labels(phase)
        self.registry.register(_Current(self))
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, …:
        # the controller's own footprint, as every Prometheus exporter offers it.
        ProcessCollector(registry=self.registry)

    def watch(self, source: Callable[[], State]) -> None:
        """Take the current state from `source` at every scrape (the reconciler's snapshot)."""
        self._source = source

    # Recording -------------------------------------------------------------------------

    def observe_request(
        self, agent: str, environment: str, version: str, code: int, seconds: float
    ) -> None:
        """One request through the router to `version`, answered with HTTP `code`."""
        key = (agent, bounded(environment), version)
        request = (*key, str(int(code)))
        with self._lock:
            counter = self._request_keys.get(request)
            if counter is None:
                counter = self._request_keys[request] = self._requests.labels(*request)
            histogram = self._version_keys.get(key)
            if histogram is None:
                histogram = self._version_keys[key] = self._request_seconds.labels(*key)
            counter.inc()
            histogram.observe(max(0.0, seconds))
        self.windows.record((agent, environment, version), code, seconds)

    def rollout_finished(self, agent: str, environment: str, result: str, seconds: float) -> None:
        """A rollout ended with `result` (one of `ROLLOUT_RESULTS`) after `seconds`."""
        if result not in ROLLOUT_RESULTS:
            raise ValueError(f"unknown rollout result {result!r}")
        key = (agent, bounded(environment), result)
        with self._lock:
            self._rollout_keys.add(key)
            self._rollouts.labels(*key).inc()
        self._rollout_seconds.labels(result).observe(max(0.0, seconds))

    def commit_live(self, environment_kind: str, seconds: float) -> None:
        """A pushed commit's version turned healthy `seconds` after the push was seen."""
        if environment_kind not in ENVIRONMENT_KINDS:
            raise ValueError(f"unknown environment kind {environment_kind!r}")
        self._commit_to_live.labels(environment_kind).observe(max(0.0, seconds))

    def observe_phase(self, phase: str, seconds: float) -> None:
        if phase not in SYNC_PHASES:
            raise ValueError(f"unknown sync phase {phase!r}")
        self._sync_phase.labels(phase).observe(max(0.0, seconds))

    @contextlib.contextmanager
    def sync_phase(self, phase: str) -> Iterator[None]:
        """Time the block as one `phase` of a sync, whether it succeeds or raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe_phase(phase, time.perf_counter() - started)

    def git_fetch_failed(self) -> None:
        self._git_fetch_errors.inc()

    def webhook_delivery(self, provider: str, result: str) -> None:
        """A webhook delivery from `provider` (e.g. "github") handled with `result`.

        Callers pass constants (e.g. "accepted", "bad_signature", "ignored"), never a
        value from the request; both are cut to 32 characters regardless.
        """
        labels = (bounded(provider, MAX_WEBHOOK_LABEL), bounded(result, MAX_WEBHOOK_LABEL))
        self._webhook_deliveries.labels(*labels).inc()

    def synced(self, environment: str, timestamp: float) -> None:
        """`environment` finished a successful sync at `timestamp` (Unix seconds)."""
        with self._lock:
            self._last_sync[bounded(environment)] = timestamp

    # Collecting ------------------------------------------------------------------------

    def _current(self) -> list[Metric]:
        state = self._source() if self._source is not None else None
        families: list[Metric] = []
        with self._lock:
            if state is not None:
                self._prune(state)
            families += self._requests.collect()
            families += self._request_seconds.collect()
            families += self._rollouts.collect()
            last_sync = dict(self._last_sync)
        if state is not None and self._exports_state:
            families += _state_families(state, last_sync)
        return families

    def _prune(self, state: State) -> None:
        versions = {(v.agent, bounded(v.environment), v.version) for v in state.versions}
        for request in [key for key in self._request_keys if key[:3] not in versions]:
            self._requests.remove(*request)
            del self._request_keys[request]
        for key in [key for key in self._version_keys if key not in versions]:
            self._request_seconds.remove(*key)
            del self._version_keys[key]
        agents = {(agent, bounded(environment)) for environment, agent in state.agents}
        for rollout in [key for key in self._rollout_keys if key[:2] not in agents]:
            self._rollouts.remove(*rollout)
            self._rollout_keys.discard(rollout)
        environments = {bounded(environment) for environment in state.environments}
        for environment in [name for name in self._last_sync if name not in environments]:
            del self._last_sync[environment]


def _state_families(state: State, last_sync: dict[str, float]) -> Iterable[Metric]:
    info = InfoMetricFamily(
        "shipyard_agent_version",
        "A version serving an agent in an environment, with the commit and branch it came "
        "from (value 1); join on agent, environment and version.",
        labels=("agent", "environment", "version", "commit", "branch"),
    )
    for version in sorted(state.versions, key=lambda v: (v.environment, v.agent)):
        info.add_metric(version.labels(), {})
    previews = GaugeMetricFamily(
        "shipyard_previews", "Preview environments by state.", labels=("state",)
    )
    counts = dict.fromkeys(PREVIEW_STATES, 0) | dict(state.previews)
    for name, count in sorted(counts.items()):
        previews.add_metric((name,), count)
    errors = GaugeMetricFamily(
        "shipyard_manifest_errors",
        "Manifest problems at each environment's last observed commit (0 when valid).",
        labels=("environment",),
    )
    for environment in sorted(state.environments):
        errors.add_metric((bounded(environment),), state.manifest_errors.get(environment, 0))
    synced = GaugeMetricFamily(
        "shipyard_last_successful_sync_timestamp_seconds",
        "When each environment last finished a sync that ended Ready (Unix time).",
        labels=("environment",),
    )
    for environment, timestamp in sorted(last_sync.items()):
        synced.add_metric((environment,), timestamp)
    evals = GaugeMetricFamily(
        "shipyard_eval_cases",
        "Eval cases of the version last evaluated in each environment, by result.",
        labels=("agent", "environment", "version", "result"),
    )
    for (agent, environment, evaluated, result), count in sorted(state.eval_cases.items()):
        evals.add_metric((agent, bounded(environment), evaluated, result), count)
    return (info, previews, errors, synced, evals)


class _Current:
    """The registry's view of the per-version and per-environment series."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics._current()
