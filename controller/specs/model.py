"""Typed, frozen agent specs: what the rest of Shipyard reads instead of raw YAML."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "shipyard.dev/v1alpha1"
KIND = "Agent"

_DURATION = re.compile(r"(\d+)([dhms])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(text: str) -> int:
    """Seconds in a duration such as `72h` or `1h30m` (the schema checked its shape)."""
    return sum(int(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION.findall(text))


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str


@dataclass(frozen=True)
class SecretRef:
    """An environment variable whose value comes from a secret; never the value itself."""

    env: str
    secret: str
    key: str


@dataclass(frozen=True)
class RunSpec:
    command: tuple[str, ...]
    cwd: str | None = None


@dataclass(frozen=True)
class Resources:
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    path: str = "/healthz"
    initial_delay_seconds: int = 0
    period_seconds: int = 2
    timeout_seconds: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class ModelParameters:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    provider: str
    name: str
    parameters: ModelParameters = ModelParameters()


@dataclass(frozen=True)
class PromptSpec:
    """Where the system prompt comes from, and its text once resolved."""

    text: str
    file: str | None = None


@dataclass(frozen=True)
class Tool:
    name: str
    description: str | None = None
    url: str | None = None
    mcp_server: str | None = None
    mcp_url: str | None = None


@dataclass(frozen=True)
class PreviewSettings:
    enabled: bool = True
    replicas: int = 1
    ttl_seconds: int = 72 * 3_600


@dataclass(frozen=True)
class CanaryStep:
    """One step of a canary: a weight to set, a pause, or an analysis run.

    `pause_seconds` None with `pause` True waits until `rollout promote`.
    """

    set_weight: int | None = None
    pause: bool = False
    pause_seconds: int | None = None
    analysis: Analysis | None = None


@dataclass(frozen=True)
class PrometheusCheck:
    """A PromQL query whose result must meet `result <operator> <threshold>`."""

    name: str
    query: str  # with {{agent}}, {{environment}}, {{canary}}, {{stable}}, {{interval}}
    operator: str  # <, <=, >, >=, ==, !=
    threshold: float

    @property
    def condition(self) -> str:
        return f"result {self.operator} {self.threshold:g}"


@dataclass(frozen=True)
class Analysis:
    """Built-in checks from Shipyard's own per-version request metrics, and PromQL ones."""

    interval_seconds: int = 10
    min_requests: int = 20
    max_error_rate: float | None = None
    max_latency_p95_seconds: float | None = None
    queries: tuple[PrometheusCheck, ...] = ()

    @property
    def checks_requests(self) -> bool:
        """Whether the router's own samples are judged (then `min_requests` applies)."""
        return self.max_error_rate is not None or self.max_latency_p95_seconds is not None


@dataclass(frozen=True)
class RolloutSettings:
    strategy: str = "RollingUpdate"
    progress_deadline_seconds: int = 120
    auto_rollback: bool = True
    steps: tuple[CanaryStep, ...] = ()
    analysis: Analysis | None = None
    sticky_header: str | None = None  # lower-case; one value of it always meets one version
    require_evals: bool = False  # production runs the agent's eval suites on a new version first

    @property
    def is_canary(self) -> bool:
        return self.strategy == "Canary"


ALWAYS_REDACTED = ("authorization", "cookie", "set-cookie")


@dataclass(frozen=True)
class RecordSettings:
    """`spec.observability.record`: what the router keeps of requests for replay."""

    enabled: bool = False
    max_body_bytes: int = 64 * 1024
    sample_rate: float = 1.0
    redact_headers: tuple[str, ...] = ()  # lower-case, the always-redacted ones included
    max_requests: int = 1000
    max_age_seconds: int = 7 * 86_400

    @property
    def redacted(self) -> frozenset[str]:
        return frozenset(self.redact_headers) | frozenset(ALWAYS_REDACTED)


@dataclass(frozen=True)
class Observability:
    record: RecordSettings = RecordSettings()


def record_settings(spec: Mapping[str, Any]) -> RecordSettings:
    """`spec.observability.record` of a schema-valid manifest's spec, defaults applied."""
    record = spec.get("observability", {}).get("record", {})
    extra = sorted({str(name).lower() for name in record.get("redactHeaders", [])})
    return RecordSettings(
        enabled=record.get("enabled", False),
        max_body_bytes=record.get("maxBodyBytes", 64 * 1024),
        sample_rate=float(record.get("sampleRate", 1.0)),
        redact_headers=tuple(name for name in extra if name not in ALWAYS_REDACTED),
        max_requests=record.get("maxRequests", 1000),
        max_age_seconds=parse_duration(record.get("maxAge", "7d")),
    )


@dataclass(frozen=True)
class AgentSpec:
    """Everything an agent manifest declares, with defaults applied."""

    name: str
    model: ModelSpec
    prompt: PromptSpec
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    run: RunSpec | None = None
    port: int = 8080
    env: tuple[EnvVar, ...] = ()
    secrets: tuple[SecretRef, ...] = ()
    resources: Resources = Resources()
    replicas: int = 1
    health_check: HealthCheck = HealthCheck()
    tools: tuple[Tool, ...] = ()
    preview: PreviewSettings = PreviewSettings()
    rollout: RolloutSettings = RolloutSettings()
    observability: Observability = Observability()


@dataclass(frozen=True)
class Agent:
    """A validated agent at one point in a repository: its spec, version and origin."""

    spec: AgentSpec
    version: str
    file: str
    line: int
    manifest: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name


def build_spec(document: Mapping[str, Any], prompt_text: str) -> AgentSpec:
    """The typed spec of a document that already passed schema validation."""
    metadata = document["metadata"]
    spec = document["spec"]
    run = spec.get("run")
    resources = spec.get("resources", {})
    health = spec.get("healthCheck", {})
    model = spec["model"]
    parameters = model.get("parameters", {})
    preview = spec.get("preview", {})
    rollout = spec.get("rollout", {})
    return AgentSpec(
        name=metadata["name"],
        description=metadata.get("description", ""),
        labels=dict(metadata.get("labels", {})),
        image=spec.get("image"),
        run=RunSpec(command=tuple(run["command"]), cwd=run.get("cwd")) if run else None,
        port=spec.get("port", 8080),
        env=tuple(EnvVar(item["name"], item["value"]) for item in spec.get("env", [])),
        secrets=tuple(
            SecretRef(item["env"], item["secretRef"]["name"], item["secretRef"]["key"])
            for item in spec.get("secrets", [])
        ),
        resources=Resources(
            requests={k: str(v) for k, v in resources.get("requests", {}).items()},
            limits={k: str(v) for k, v in resources.get("limits", {}).items()},
        ),
        replicas=spec.get("replicas", 1),
        health_check=HealthCheck(
            path=health.get("path", "/healthz"),
            initial_delay_seconds=health.get("initialDelaySeconds", 0),
            period_seconds=health.get("periodSeconds", 2),
            timeout_seconds=health.get("timeoutSeconds", 1),
            failure_threshold=health.get("failureThreshold", 3),
        ),
        model=ModelSpec(
            provider=model["provider"],
            name=model["name"],
            parameters=ModelParameters(
                temperature=parameters.get("temperature"),
                top_p=parameters.get("topP"),
                max_tokens=parameters.get("maxTokens"),
                stop=tuple(parameters.get("stop", ())),
                seed=parameters.get("seed"),
            ),
        ),
        prompt=PromptSpec(text=prompt_text, file=spec["prompt"].get("file")),
        tools=tuple(
            Tool(
                name=tool["name"],
                description=tool.get("description"),
                url=tool.get("url"),
                mcp_server=tool.get("mcp", {}).get("server"),
                mcp_url=tool.get("mcp", {}).get("url"),
            )
            for tool in spec.get("tools", [])
        ),
        preview=PreviewSettings(
            enabled=preview.get("enabled", True),
            replicas=preview.get("replicas", 1),
            ttl_seconds=parse_duration(preview.get("ttl", "72h")),
        ),
        rollout=RolloutSettings(
            strategy=rollout.get("strategy", "RollingUpdate"),
            progress_deadline_seconds=rollout.get("progressDeadlineSeconds", 120),
            auto_rollback=rollout.get("autoRollback", True),
            steps=tuple(canary_step(step) for step in rollout.get("steps", [])),
            analysis=analysis_of(rollout["analysis"]) if "analysis" in rollout else None,
            sticky_header=(
                str(rollout["stickyHeader"]).lower() if "stickyHeader" in rollout else None
            ),
            require_evals=bool(rollout.get("requireEvals", False)),
        ),
        observability=Observability(record=record_settings(spec)),
    )


def canary_step(step: Mapping[str, Any]) -> CanaryStep:
    """One schema-valid entry of `spec.rollout.steps`."""
    if "setWeight" in step:
        return CanaryStep(set_weight=int(step["setWeight"]))
    if "pause" in step:
        duration = step["pause"].get("duration")
        return CanaryStep(
            pause=True, pause_seconds=parse_duration(duration) if duration is not None else None
        )
    return CanaryStep(analysis=analysis_of(step["analysis"]))


def analysis_of(analysis: Mapping[str, Any]) -> Analysis:
    """`spec.rollout.analysis` (or a step's), defaults applied."""
    error_rate = analysis.get("errorRate")
    latency = analysis.get("latencyP95")
    return Analysis(
        interval_seconds=parse_duration(analysis.get("interval", "10s")),
        min_requests=analysis.get("minRequests", 20),
        max_error_rate=float(error_rate["max"]) if error_rate is not None else None,
        max_latency_p95_seconds=(
            parse_seconds(str(latency["max"])) if latency is not None else None
        ),
        queries=tuple(prometheus_check(query) for query in analysis.get("prometheus", ())),
    )


CONDITION = re.compile(
    r"^\s*result\s*(<=|>=|==|!=|<|>)\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*$"
)


def prometheus_check(entry: Mapping[str, Any]) -> PrometheusCheck:
    """One schema-valid entry of an analysis's `prometheus` list."""
    match = CONDITION.match(str(entry["successCondition"]))
    if match is None:  # the schema's pattern refused it already
        raise ValueError(f"bad successCondition {entry['successCondition']!r}")
    return PrometheusCheck(
        name=str(entry["name"]),
        query=str(entry["query"]),
        operator=match.group(1),
        threshold=float(match.group(2)),
    )


def parse_seconds(text: str) -> float:
    """Seconds in a latency bound: `2s`, `250ms` or `1.5s` (the schema checked its shape)."""
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    return float(text.rstrip("s"))
