"""From validated agents to what the Kubernetes target renders: `Workload`s and settings.

The Kubernetes target sits at the bottom layer and knows nothing of manifests, previews
or git; this module is where those meet it. It decides, per environment, which agents
run (previews only those with previews enabled), how many replicas (a preview's own
setting, production's `spec.replicas`), which namespace (a preview's own, production's
configured one), which host (from the URL template, as `preview.naming` builds URLs),
and where each version came from (commit, branch, author, message, redacted source).
The controller and `shipyard render` both go through here, so they render the same
objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from controller.errors import ShipyardError
from controller.source import errors as source_errors
from controller.source.mirror import Commit
from controller.specs.model import Agent, ModelParameters
from controller.targets.kubernetes import rendering
from preview import naming

DEFAULT_URL_TEMPLATE = "https://{agent}--{env}.preview.example.com/"


class NotRenderable(ShipyardError):
    """Agents cannot become Kubernetes objects as declared (say, no `spec.image`)."""


@dataclass(frozen=True)
class ClusterOptions:
    """How environments map onto a cluster; `url_template=None` renders no Ingresses."""

    url_template: str | None = DEFAULT_URL_TEMPLATE
    ingress_class: str | None = None
    tls_secret: str | None = None
    production_namespace: str = rendering.DEFAULT_PRODUCTION_NAMESPACE
    namespace_prefix: str = ""
    ingress_namespaces: tuple[str, ...] = rendering.DEFAULT_INGRESS_NAMESPACES
    # `shipyard gateway`'s Service (name, namespace): agent Ingresses point through it.
    gateway: tuple[str, str] | None = None


@dataclass(frozen=True)
class Origin:
    """The revision a version was deployed from: what its annotations record."""

    commit: str
    branch: str
    author: str = ""
    message: str = ""
    source: str = ""

    @classmethod
    def of(cls, commit: Commit, branch: str, source: str = "") -> Origin:
        """From a mirror's commit; credentials in `source` URLs never reach the cluster."""
        return cls(
            commit=commit.sha,
            branch=branch,
            author=commit.author,
            message=commit.message,
            source=source_errors.redact(source) if source else "",
        )


def namespace_for(environment: str, options: ClusterOptions) -> str:
    """Production's configured namespace, or the preview's own: `<prefix>preview-<slug>`."""
    if environment == naming.PRODUCTION:
        return options.production_namespace
    return options.namespace_prefix + environment


def environment_settings(
    environment: str, branch: str, options: ClusterOptions
) -> rendering.EnvironmentSettings:
    return rendering.EnvironmentSettings(
        name=environment,
        namespace=namespace_for(environment, options),
        is_preview=environment != naming.PRODUCTION,
        branch=branch,
        ingress_class=options.ingress_class,
        tls_secret=options.tls_secret,
        ingress_namespaces=options.ingress_namespaces,
        gateway=options.gateway,
    )


def host_for(agent: str, environment: str, options: ClusterOptions) -> str | None:
    """The host name of the agent's URL in this environment; None without a template."""
    if options.url_template is None:
        return None
    try:
        # An Ingress host has no port; any port fills a `{port}` placeholder just as well.
        url = naming.preview_url(options.url_template, agent, environment, port=80)
    except ValueError as error:
        raise NotRenderable(str(error)) from error
    host = urlsplit(url).hostname
    if not host:
        raise NotRenderable(f"URL template {options.url_template!r} gives no host name: {url}")
    return host


def runs_in(agent: Agent, environment: str) -> bool:
    """Production runs every agent; a preview those whose previews are enabled."""
    return environment == naming.PRODUCTION or agent.spec.preview.enabled


def model_parameters(parameters: ModelParameters) -> dict[str, Any]:
    """The parameters that are set, spelled as in the manifest (`topP`, `maxTokens`)."""
    spelled: dict[str, Any] = {
        "temperature": parameters.temperature,
        "topP": parameters.top_p,
        "maxTokens": parameters.max_tokens,
        "stop": list(parameters.stop) or None,
        "seed": parameters.seed,
    }
    return {key: value for key, value in spelled.items() if value is not None}


def workload(
    agent: Agent, environment: str, origin: Origin, options: ClusterOptions
) -> rendering.Workload:
    spec = agent.spec
    if spec.image is None:
        raise NotRenderable(
            f'agent "{agent.name}" ({agent.file}) has no spec.image; the Kubernetes target '
            "runs agents from container images"
        )
    health = spec.health_check
    preview = environment != naming.PRODUCTION
    return rendering.Workload(
        name=agent.name,
        environment=environment,
        version=agent.version,
        commit=origin.commit,
        branch=origin.branch,
        author=origin.author,
        message=origin.message,
        source=origin.source,
        image=spec.image,
        port=spec.port,
        replicas=spec.preview.replicas if preview else spec.replicas,
        env=tuple((item.name, item.value) for item in spec.env),
        secrets=tuple(
            rendering.SecretEnv(env=item.env, secret=item.secret, key=item.key)
            for item in spec.secrets
        ),
        requests=dict(spec.resources.requests),
        limits=dict(spec.resources.limits),
        health=rendering.HealthProbe(
            path=health.path,
            period_seconds=health.period_seconds,
            timeout_seconds=health.timeout_seconds,
            failure_threshold=health.failure_threshold,
            initial_delay_seconds=health.initial_delay_seconds,
        ),
        model_provider=spec.model.provider,
        model_name=spec.model.name,
        model_parameters=model_parameters(spec.model.parameters),
        prompt=spec.prompt.text,
        labels=dict(spec.labels),
        progress_deadline_seconds=spec.rollout.progress_deadline_seconds,
        host=host_for(agent.name, environment, options),
    )


def workloads(
    agents: Iterable[Agent], environment: str, origin: Origin, options: ClusterOptions
) -> list[rendering.Workload]:
    """The environment's workloads by agent name; `NotRenderable` naming every bad agent."""
    rendered: list[rendering.Workload] = []
    problems: list[str] = []
    for agent in sorted(agents, key=lambda item: item.name):
        if not runs_in(agent, environment):
            continue
        try:
            rendered.append(workload(agent, environment, origin, options))
        except NotRenderable as error:
            problems.append(str(error))
    if problems:
        raise NotRenderable("; ".join(problems))
    return rendered


def render(
    agents: Iterable[Agent], environment: str, origin: Origin, options: ClusterOptions
) -> list[rendering.KubeObject]:
    """Every object of `environment` with all agents at one revision (`shipyard render`)."""
    settings = environment_settings(environment, origin.branch, options)
    return rendering.render_environment(workloads(agents, environment, origin, options), settings)
