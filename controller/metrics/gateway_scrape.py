"""Canary analysis on a cluster: the requests the gateways saw, read from their `/metrics`.

On Kubernetes agent traffic passes through `shipyard gateway`, not the controller, so the
request windows a canary analysis judges (`windows.RequestWindows`) would stay empty. While
a version is watched, the controller finds the gateway's pods through the API (the labels
`manifests/gateway.yaml` gives them), scrapes each one's `/metrics`, and adds the increase
of that version's series since the last scrape to the windows, so the analysis reads them
as it reads the local router's.

- Replicas are summed: each pod's increase is its own.
- A counter lower than last time (a restarted gateway) counts from zero again, as
  Prometheus' `increase()` does; a pod seen for the first time after a version is
  watched counts from zero too (a new replica), while the pods present at the version's
  first scrape count from what they had (requests from before the watch are not judged).
- Durations come from the histogram: each request counts at its bucket's upper bound
  (the +Inf bucket as infinite), so `latencyP95` is the bucket boundary at or above the
  true P95.
- A pod that does not answer keeps its count: its requests arrive at the next scrape that
  reaches it. When no gateway answers, the windows say so and an Inconclusive verdict
  names the reason, instead of judging on requests it cannot see.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from controller.metrics.state import bounded
from controller.metrics.windows import RequestWindows, VersionKey
from controller.targets.kubernetes import errors
from controller.targets.kubernetes.client import KubeClient, KubeObject

GATEWAY_PODS = "app.kubernetes.io/name=shipyard,app.kubernetes.io/component=gateway"
REQUESTS = "shipyard_agent_requests_total"
BUCKETS = "shipyard_agent_request_duration_seconds_bucket"
DEFAULT_PERIOD = 2.0
SCRAPE_TIMEOUT = 3.0
_log = logging.getLogger(__name__)


@dataclass
class Counts:
    """One version's cumulative series on one gateway pod."""

    codes: Counter[str] = field(default_factory=Counter)  # HTTP code → requests
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound → cumulative

    def since(self, earlier: Counts) -> Counts:
        """The increase from `earlier`; all of it when a counter went down (a reset)."""
        reset = any(self.codes[code] < n for code, n in earlier.codes.items()) or any(
            self.buckets.get(bound, 0.0) < n for bound, n in earlier.buckets.items()
        )
        if reset:
            return self
        return Counts(
            Counter({code: n - earlier.codes[code] for code, n in self.codes.items()}),
            {bound: n - earlier.buckets.get(bound, 0.0) for bound, n in self.buckets.items()},
        )

    def errors(self) -> int:
        return int(sum(n for code, n in self.codes.items() if code.isdigit() and int(code) >= 500))

    def durations(self) -> list[float]:
        """One value per request: the upper bound of the bucket it fell in."""
        result: list[float] = []
        below = 0.0
        for bound in sorted(self.buckets):
            count = round(self.buckets[bound] - below)
            result.extend([bound] * max(0, count))
            below = self.buckets[bound]
        requests = int(sum(self.codes.values()))
        if len(result) < requests:  # scraped between the counter and the histogram
            result.extend([math.inf] * (requests - len(result)))
        return result[:requests] if requests else []


def parse(text: str, keys: list[VersionKey]) -> dict[VersionKey, Counts]:
    """The watched versions' request series in one `/metrics` answer."""
    wanted = {(agent, bounded(environment), version): (agent, environment, version)
              for agent, environment, version in keys}  # fmt: skip
    found: dict[VersionKey, Counts] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in (REQUESTS, BUCKETS):
                continue
            labels = sample.labels
            key = wanted.get((labels.get("agent", ""), labels.get("environment", ""),
                              labels.get("version", "")))  # fmt: skip
            if key is None:
                continue
            counts = found.setdefault(key, Counts())
            if sample.name == REQUESTS:
                counts.codes[labels.get("code", "")] += int(sample.value)
            else:
                counts.buckets[float(labels.get("le", "+Inf"))] = float(sample.value)
    return found


class GatewayScraper:
    """Feeds the watched versions' gateway requests into `windows`, every `period` seconds."""

    def __init__(
        self,
        client: KubeClient,
        windows: RequestWindows,
        *,
        period: float = DEFAULT_PERIOD,
        selector: str = GATEWAY_PODS,
    ) -> None:
        self.client = client
        self.windows = windows
        self.period = period
        self.selector = selector
        self._last: dict[str, dict[VersionKey, Counts]] = {}  # pod uid → its series last time
        self._keys: set[VersionKey] = set()  # versions scraped before
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=SCRAPE_TIMEOUT)

    def start(self) -> GatewayScraper:
        self._thread = threading.Thread(target=self._run, name="gateway scrape", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=SCRAPE_TIMEOUT * 2)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.scrape_once()
            except Exception as error:  # a bad scrape must never end the analysis' eyes
                _log.warning("scraping the gateways failed: %s", error)
                self.windows.set_blind(f"scraping the gateways failed: {error}")

    def scrape_once(self) -> None:
        keys = self.windows.watched()
        if not keys:
            self._keys.clear()
            return
        try:
            pods = self.client.list("v1", "Pod", None, self.selector)
        except errors.ApiError as error:
            self.windows.set_blind(f"cannot list the gateway's pods: {error}")
            return
        new_keys = set(keys) - self._keys
        answered, silent = 0, []
        seen: set[str] = set()
        for scraped in scrape(pods, self._http):
            uid = scraped.uid
            seen.add(uid)
            if scraped.text is None:
                silent.append(f"{scraped.name}: {scraped.error}")
                continue
            try:
                current = parse(scraped.text, keys)
            except ValueError as error:
                silent.append(f"{scraped.name}: {error or type(error).__name__}")
                continue
            answered += 1
            earlier = self._last.get(uid)
            for key in keys:
                now = current.get(key, Counts())
                if key in new_keys:
                    continue  # the baseline: requests from before the watch are not judged
                base = (earlier or {}).get(key, Counts())
                increase = now.since(base)
                durations = increase.durations()
                if durations:
                    self.windows.add(key, increase.errors(), durations)
            self._last[uid] = current
        for gone in set(self._last) - seen:
            del self._last[gone]
        self._keys = set(keys)
        if answered == 0:
            why = "; ".join(silent) if silent else f"no ready pod matches {self.selector}"
            self.windows.set_blind(f"no gateway answered: {why}")
        elif silent:
            self.windows.set_blind(f"gateway pods not answering: {'; '.join(silent)}")
        else:
            self.windows.set_blind("")


@dataclass(frozen=True)
class Scraped:
    """One running gateway pod's `/metrics` text, or why it gave none."""

    uid: str
    name: str
    text: str | None
    error: str = ""


def scrape(pods: list[KubeObject], http: httpx.Client) -> list[Scraped]:
    """`/metrics` of each of `pods` that runs (pods without an address are skipped)."""
    found = []
    for pod in pods:
        address = _address(pod)
        if address is None:
            continue
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        name = str((pod.get("metadata") or {}).get("name") or uid)
        try:
            answer = http.get(f"http://{address}/metrics")
            answer.raise_for_status()
        except httpx.HTTPError as error:
            found.append(Scraped(uid, name, None, str(error) or type(error).__name__))
            continue
        found.append(Scraped(uid, name, answer.text))
    return found


def gateway_readings(
    client: KubeClient, http: httpx.Client, selector: str = GATEWAY_PODS
) -> dict[str, list[object] | None]:
    """Every running gateway pod's `/metrics` as metric families, by pod uid (None for a
    pod that did not answer), for the dashboard's charts. Raises `ApiError` when the pods
    cannot be listed."""
    return readings_of(scrape(client.list("v1", "Pod", None, selector), http))


def readings_of(scrapes: list[Scraped]) -> dict[str, list[object] | None]:
    """Each scrape's metric families by pod uid; None for a pod that gave no metrics text."""
    readings: dict[str, list[object] | None] = {}
    for scraped in scrapes:
        readings[scraped.uid] = None
        if scraped.text is not None:
            with contextlib.suppress(ValueError):  # not a metrics text: as if silent
                readings[scraped.uid] = list(text_string_to_metric_families(scraped.text))
    return readings


def _address(pod: KubeObject) -> str | None:
    """`podIP:port` of a running gateway pod (its port named `http`, else 8080)."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or not status.get("podIP"):
        return None
    if status.get("phase") not in (None, "Running"):
        return None
    port = 8080
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == "http":
                port = int(declared["containerPort"])
    ip = str(status["podIP"])
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
