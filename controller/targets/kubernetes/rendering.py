"""Agent versions and environments as plain Kubernetes objects: pure functions, no client.

Rendering is the one place that decides what Shipyard puts into a cluster. The applier
sends exactly these objects (server-side apply), `shipyard render` prints them so a user
can eject and own plain YAML, and the tests validate them against the real Kubernetes
schemas. Same input, same objects, same order: the applier compares renders to skip
writes, so nothing here may depend on time, randomness or dict iteration accidents.

Per agent: a ConfigMap holding the prompt and model configuration (its name carries a
hash of its content, so a prompt or model change rolls the pods), a Deployment, a
Service and, when the agent has a host, an Ingress. Per preview environment, first: a
Namespace, a ResourceQuota, a LimitRange and a NetworkPolicy that admits only the
ingress controller and the namespace itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.errors import ShipyardError

KubeObject = dict[str, Any]

MANAGER = "shipyard"
CONFIG_DIRECTORY = "/etc/shipyard"
PROMPT_FILE = "prompt.txt"
MODEL_FILE = "model.json"
CONTAINER = "agent"
PORT_NAME = "http"
GATEWAY_SERVICE = "shipyard-gateway"  # per namespace, naming the gateway (ExternalName)
SERVICE_PORT = 80
CHANGE_CAUSE_LIMIT = 256
SHORT_SHA = 12
HASH_LENGTH = 10

# Labels (DESIGN.md §3).
NAME_LABEL = "app.kubernetes.io/name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
AGENT_LABEL = "shipyard.dev/agent"
ENVIRONMENT_LABEL = "shipyard.dev/environment"
VERSION_LABEL = "shipyard.dev/version"
# Annotations.
COMMIT_ANNOTATION = "shipyard.dev/commit"
BRANCH_ANNOTATION = "shipyard.dev/branch"
AUTHOR_ANNOTATION = "shipyard.dev/author"
SOURCE_ANNOTATION = "shipyard.dev/source"
CONFIG_HASH_ANNOTATION = "shipyard.dev/config-hash"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
COPIED_FROM_ANNOTATION = "shipyard.dev/copied-from"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

DEFAULT_PRODUCTION_NAMESPACE = "shipyard-production"
DEFAULT_INGRESS_NAMESPACES = ("ingress-nginx",)
NETWORK_POLICY = "shipyard-preview-isolation"
RESOURCE_QUOTA = "shipyard-preview-quota"
LIMIT_RANGE = "shipyard-preview-defaults"
DEFAULT_QUOTA: Mapping[str, str] = {
    "pods": "20",
    "requests.cpu": "4",
    "requests.memory": "8Gi",
    "limits.cpu": "8",
    "limits.memory": "16Gi",
    "services.loadbalancers": "0",
    "services.nodeports": "0",
}
DEFAULT_CONTAINER_REQUESTS: Mapping[str, str] = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_CONTAINER_LIMITS: Mapping[str, str] = {"cpu": "1", "memory": "512Mi"}

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_MAX_LABEL = 63
_MAX_SUBDOMAIN = 253


class RenderError(ShipyardError):
    """An input that cannot become valid Kubernetes objects (a bad name, a clash)."""


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable read from a key of a Secret; never the value itself."""

    env: str
    secret: str
    key: str


@dataclass(frozen=True)
class HealthProbe:
    """The agent's HTTP health check, used for both readiness and liveness."""

    path: str = "/healthz"
    period_seconds: int = 2
    timeout_seconds: int = 1
    failure_threshold: int = 3
    initial_delay_seconds: int = 0


@dataclass(frozen=True)
class Workload:
    """One version of one agent in one environment, resolved: everything rendering reads.

    `commit`, `branch`, `author` and `message` describe the revision that introduced this
    version, not whatever commit is newest: re-rendering the same revision must give the
    same objects, or pods would roll on commits that do not touch the agent.
    `model_parameters` is JSON-able and written as given into `model.json`. `host` is the
    agent's host name in this environment (no Ingress when None); `replicas` is already
    the number for this environment (a preview's own setting, or production's).
    """

    name: str
    environment: str
    version: str
    commit: str
    image: str
    model_provider: str
    model_name: str
    prompt: str
    branch: str = ""
    author: str = ""
    message: str = ""
    source: str = ""
    port: int = 8080
    replicas: int = 1
    env: tuple[tuple[str, str], ...] = ()
    secrets: tuple[SecretEnv, ...] = ()
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    health: HealthProbe = HealthProbe()
    model_parameters: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    progress_deadline_seconds: int = 120
    host: str | None = None

    @functools.cached_property
    def config(self) -> tuple[dict[str, str], str]:
        """The ConfigMap's data and its hash, made once: a render asks for them three
        times (the ConfigMap, its name, the pod template's annotation), and
        `model_config`'s indented JSON takes the json module's slow pure-Python path."""
        data = {MODEL_FILE: model_config(self), PROMPT_FILE: self.prompt}
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return data, hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]


@dataclass(frozen=True)
class EnvironmentSettings:
    """Where and how an environment's objects live in the cluster.

    Previews get their own namespace (guarded by a quota, container defaults and network
    isolation); production lives in a namespace that exists already.
    """

    name: str
    namespace: str
    is_preview: bool
    branch: str = ""
    ingress_class: str | None = None
    tls_secret: str | None = None
    ingress_namespaces: tuple[str, ...] = DEFAULT_INGRESS_NAMESPACES
    # The `shipyard gateway` Service as (name, namespace): Ingresses then send agent
    # traffic through it (`gateway_rendering`); None points them at the agents' Services.
    gateway: tuple[str, str] | None = None
    revision_history_limit: int = 10
    quota: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_QUOTA))
    default_requests: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_CONTAINER_REQUESTS)
    )
    default_limits: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_CONTAINER_LIMITS)
    )


# Whole environments --------------------------------------------------------------------


def render_environment(
    workloads: Iterable[Workload], settings: EnvironmentSettings
) -> list[KubeObject]:
    """Every object of an environment: namespace objects first, then each agent by name."""
    ordered = sorted(workloads, key=lambda workload: workload.name)
    names = [workload.name for workload in ordered]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RenderError(f"agents rendered twice in {settings.name}: {', '.join(duplicates)}")
    objects = namespace_objects(settings)
    if not settings.is_preview and settings.gateway is not None:
        objects.append(gateway_service(settings))
    for workload in ordered:
        objects.extend(workload_objects(workload, settings))
    return objects


def namespace_objects(settings: EnvironmentSettings) -> list[KubeObject]:
    """A preview's Namespace, ResourceQuota, LimitRange and NetworkPolicy; none for production."""
    check_settings(settings)
    if not settings.is_preview:
        return []
    objects = [
        namespace(settings),
        resource_quota(settings),
        limit_range(settings),
        network_policy(settings),
    ]
    if settings.gateway is not None:
        objects.append(gateway_service(settings))
    return objects


def gateway_service(settings: EnvironmentSettings) -> KubeObject:
    """`shipyard-gateway` in the environment's namespace, naming the gateway's Service
    (an Ingress may only name Services of its own namespace)."""
    assert settings.gateway is not None
    name, namespace_ = settings.gateway
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(GATEWAY_SERVICE, settings.namespace, environment_labels(settings)),
        "spec": {
            "type": "ExternalName",
            "externalName": f"{name}.{namespace_}.svc.cluster.local",
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP"}],
        },
    }


def workload_objects(workload: Workload, settings: EnvironmentSettings) -> list[KubeObject]:
    """One agent's objects in apply order: ConfigMap, Deployment, Service, Ingress."""
    check_workload(workload, settings)
    objects = [config_map(workload, settings), deployment(workload, settings)]
    objects.append(service(workload, settings))
    if workload.host is not None:
        objects.append(ingress(workload, settings))
    return objects


# Names, labels, annotations ------------------------------------------------------------


def selector(workload: Workload) -> dict[str, str]:
    """What the Deployment and Service select. Selectors are immutable: never the version."""
    return {NAME_LABEL: workload.name, ENVIRONMENT_LABEL: workload.environment}


def labels(workload: Workload) -> dict[str, str]:
    """The agent's own labels, then Shipyard's (which win on a clash)."""
    return {
        **dict(sorted(workload.labels.items())),
        NAME_LABEL: workload.name,
        MANAGED_BY_LABEL: MANAGER,
        AGENT_LABEL: workload.name,
        ENVIRONMENT_LABEL: workload.environment,
        VERSION_LABEL: workload.version,
    }


def environment_labels(settings: EnvironmentSettings) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGER, ENVIRONMENT_LABEL: settings.name}


def revision_annotations(workload: Workload) -> dict[str, str]:
    """Where the version came from, so plain `kubectl rollout history` tells the story."""
    found = {
        COMMIT_ANNOTATION: workload.commit,
        BRANCH_ANNOTATION: workload.branch,
        AUTHOR_ANNOTATION: workload.author,
        SOURCE_ANNOTATION: workload.source,
    }
    result = {key: value for key, value in found.items() if value}
    result[CHANGE_CAUSE_ANNOTATION] = change_cause(workload.commit, workload.message)
    return result


def change_cause(commit: str, message: str) -> str:
    """`<short sha>: <first line of the message>`, at most 256 characters."""
    lines = message.strip().splitlines()
    summary = lines[0].strip() if lines else ""
    cause = f"{commit[:SHORT_SHA]}: {summary}" if summary else commit[:SHORT_SHA]
    if len(cause) > CHANGE_CAUSE_LIMIT:
        cause = cause[: CHANGE_CAUSE_LIMIT - 1] + "…"
    return cause


def model_config(workload: Workload) -> str:
    """`model.json`: provider, name and parameters, canonical so equal models hash equal."""
    document = {
        "provider": workload.model_provider,
        "name": workload.model_name,
        "parameters": dict(workload.model_parameters),
    }
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def config_data(workload: Workload) -> dict[str, str]:
    return dict(workload.config[0])


def config_hash(workload: Workload) -> str:
    """10 hex digits of SHA-256 over the ConfigMap's data: only prompt and model count."""
    return workload.config[1]


def config_map_name(workload: Workload) -> str:
    return f"{workload.name}-config-{config_hash(workload)}"


# Per agent ------------------------------------------------------------------------------


def config_map(workload: Workload, settings: EnvironmentSettings) -> KubeObject:
    """Prompt and model configuration; content-addressed, so immutable."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(config_map_name(workload), settings.namespace, labels(workload)),
        "immutable": True,
        "data": config_data(workload),
    }


def deployment(workload: Workload, settings: EnvironmentSettings) -> KubeObject:
    described = revision_annotations(workload)
    template_annotations = {**described, CONFIG_HASH_ANNOTATION: config_hash(workload)}
    metadata = _metadata(workload.name, settings.namespace, labels(workload))
    metadata["annotations"] = described
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": workload.replicas,
            "revisionHistoryLimit": settings.revision_history_limit,
            "progressDeadlineSeconds": workload.progress_deadline_seconds,
            "selector": {"matchLabels": selector(workload)},
            # A new version takes traffic only once ready; the old one serves until then.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels(workload), "annotations": template_annotations},
                "spec": _pod_spec(workload),
            },
        },
    }


def service(workload: Workload, settings: EnvironmentSettings) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(workload.name, settings.namespace, labels(workload)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(workload),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def ingress(workload: Workload, settings: EnvironmentSettings) -> KubeObject:
    if workload.host is None:
        raise RenderError(f'agent "{workload.name}" has no host to route')
    spec: dict[str, Any] = {}
    if settings.ingress_class:
        spec["ingressClassName"] = settings.ingress_class
    if settings.tls_secret:
        spec["tls"] = [{"hosts": [workload.host], "secretName": settings.tls_secret}]
    backend = {"service": {"name": workload.name, "port": {"name": PORT_NAME}}}
    if settings.gateway is not None:  # the gateway's ExternalName Service in this namespace
        backend = {"service": {"name": GATEWAY_SERVICE, "port": {"number": SERVICE_PORT}}}
    spec["rules"] = [
        {
            "host": workload.host,
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
        }
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(workload.name, settings.namespace, labels(workload)),
        "spec": spec,
    }


def container_env(workload: Workload) -> list[dict[str, Any]]:
    """The manifest's variables, then secret references, then what Shipyard sets itself."""
    variables: list[dict[str, Any]] = [
        {"name": name, "value": value} for name, value in workload.env
    ]
    variables.extend(
        {
            "name": reference.env,
            "valueFrom": {"secretKeyRef": {"name": reference.secret, "key": reference.key}},
        }
        for reference in workload.secrets
    )
    own = (
        ("PORT", str(workload.port)),
        ("SHIPYARD_AGENT", workload.name),
        ("SHIPYARD_ENVIRONMENT", workload.environment),
        ("SHIPYARD_VERSION", workload.version),
        ("SHIPYARD_COMMIT", workload.commit),
        ("SHIPYARD_MODEL", f"{workload.model_provider}/{workload.model_name}"),
        ("SHIPYARD_PROMPT_FILE", f"{CONFIG_DIRECTORY}/{PROMPT_FILE}"),
        ("SHIPYARD_MODEL_CONFIG", f"{CONFIG_DIRECTORY}/{MODEL_FILE}"),
    )
    variables.extend({"name": name, "value": value} for name, value in own)
    return variables


def probe(health: HealthProbe) -> dict[str, Any]:
    return {
        "httpGet": {"path": health.path, "port": PORT_NAME},
        "initialDelaySeconds": health.initial_delay_seconds,
        "periodSeconds": health.period_seconds,
        "timeoutSeconds": health.timeout_seconds,
        "failureThreshold": health.failure_threshold,
    }


def _pod_spec(workload: Workload) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if workload.requests:
        resources["requests"] = dict(sorted(workload.requests.items()))
    if workload.limits:
        resources["limits"] = dict(sorted(workload.limits.items()))
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": workload.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": workload.port, "protocol": "TCP"}],
        "env": container_env(workload),
        "readinessProbe": probe(workload.health),
        "livenessProbe": probe(workload.health),
        "resources": resources,
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIRECTORY, "readOnly": True},
            # The root filesystem is read-only; agents still get a scratch directory.
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, not the host's
        ],
    }
    return {
        # Agents call models, not the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": config_map_name(workload)}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }


# Per preview ----------------------------------------------------------------------------


def namespace(settings: EnvironmentSettings) -> KubeObject:
    metadata: dict[str, Any] = {
        "name": settings.namespace,
        "labels": {
            **environment_labels(settings),
            # What agent pods satisfy already; enforced so nothing weaker sneaks in.
            "pod-security.kubernetes.io/enforce": "restricted",
        },
    }
    if settings.branch:
        metadata["annotations"] = {BRANCH_ANNOTATION: settings.branch}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def secret_copy(source: KubeObject, settings: EnvironmentSettings) -> KubeObject:
    """A preview's copy of a Secret an operator scoped to previews: its type and data only.

    Pods can only read Secrets of their own namespace, and nothing but Shipyard writes
    into a preview's, so these copies are all a preview can ever read.
    """
    metadata = source.get("metadata") or {}
    origin = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            **_metadata(
                str(metadata.get("name", "")), settings.namespace, environment_labels(settings)
            ),
            "annotations": {COPIED_FROM_ANNOTATION: origin},
        },
        "type": source.get("type") or "Opaque",
        "data": dict(sorted((source.get("data") or {}).items())),
    }


def resource_quota(settings: EnvironmentSettings) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(RESOURCE_QUOTA, settings.namespace, environment_labels(settings)),
        "spec": {"hard": dict(settings.quota)},
    }


def limit_range(settings: EnvironmentSettings) -> KubeObject:
    """Container defaults, so agents declaring no resources still fit the quota."""
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(LIMIT_RANGE, settings.namespace, environment_labels(settings)),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "defaultRequest": dict(settings.default_requests),
                    "default": dict(settings.default_limits),
                }
            ]
        },
    }


def network_policy(settings: EnvironmentSettings) -> KubeObject:
    """Deny ingress except from the ingress controller and the namespace; allow egress."""
    admitted = list(settings.ingress_namespaces)
    if settings.gateway is not None:  # requests to the pods come from the gateway
        admitted.append(settings.gateway[1])
    peers: list[dict[str, Any]] = [
        {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}
        for name in dict.fromkeys(admitted)
    ]
    peers.append({"podSelector": {}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(NETWORK_POLICY, settings.namespace, environment_labels(settings)),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": peers}],
            # Agents call model providers and tools wherever they are.
            "egress": [{}],
        },
    }


def _metadata(name: str, namespace: str, label_set: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(label_set)}


# Checks ---------------------------------------------------------------------------------


def is_dns_label(text: str) -> bool:
    return len(text) <= _MAX_LABEL and _DNS_LABEL.fullmatch(text) is not None


def is_dns_subdomain(text: str) -> bool:
    return len(text) <= _MAX_SUBDOMAIN and all(is_dns_label(part) for part in text.split("."))


def is_label_value(text: str) -> bool:
    return len(text) <= _MAX_LABEL and _LABEL_VALUE.fullmatch(text) is not None


def check_settings(settings: EnvironmentSettings) -> None:
    """`RenderError` unless the environment's names are valid in Kubernetes."""
    problems = list(_settings_problems(settings))
    if problems:
        raise RenderError(f"environment {settings.name!r}: " + "; ".join(problems))


def check_workload(workload: Workload, settings: EnvironmentSettings) -> None:
    """`RenderError` unless every name and label this workload produces is valid."""
    problems = list(_settings_problems(settings))
    if workload.environment != settings.name:
        problems.append(f"belongs to environment {workload.environment!r}, not {settings.name!r}")
    # A Service name is a DNS-1035 label: it must start with a letter.
    if not (is_dns_label(workload.name) and _DNS_1035_LABEL.fullmatch(workload.name)):
        problems.append(f"name {workload.name!r} is not a DNS-1035 label")
    for key, value in labels(workload).items():
        if not is_label_value(value):
            problems.append(f"label {key}={value!r} is not a valid label value")
    if not workload.image:
        problems.append("has no image")
    if not 1 <= workload.port <= 65535:
        problems.append(f"port {workload.port} is out of range")
    if workload.replicas < 0:
        problems.append(f"replicas {workload.replicas} is negative")
    if workload.host is not None and not is_dns_subdomain(workload.host):
        problems.append(f"host {workload.host!r} is not a DNS name")
    for reference in workload.secrets:
        if not is_dns_subdomain(reference.secret):
            problems.append(f"secret name {reference.secret!r} is not a DNS-1123 subdomain")
    if problems:
        raise RenderError(f'agent "{workload.name}": ' + "; ".join(problems))


def _settings_problems(settings: EnvironmentSettings) -> Sequence[str]:
    problems = []
    if not is_dns_label(settings.namespace):
        problems.append(f"namespace {settings.namespace!r} is not a DNS-1123 label")
    if not is_label_value(settings.name):
        problems.append(f"environment {settings.name!r} is not a valid label value")
    for name in settings.ingress_namespaces:
        if not is_dns_label(name):
            problems.append(f"ingress namespace {name!r} is not a DNS-1123 label")
    if settings.tls_secret is not None and not is_dns_subdomain(settings.tls_secret):
        problems.append(f"TLS secret {settings.tls_secret!r} is not a DNS-1123 subdomain")
    if settings.gateway is not None and not all(map(is_dns_label, settings.gateway)):
        problems.append(f"gateway {'.'.join(settings.gateway)!r} is not SERVICE.NAMESPACE")
    if settings.ingress_class is not None and not is_dns_subdomain(settings.ingress_class):
        problems.append(f"ingress class {settings.ingress_class!r} is not a DNS-1123 subdomain")
    return problems
