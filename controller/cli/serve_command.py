"""`shipyard serve`: run the controller on a repository until stopped."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from controller.api import auth, server, tracing, upstream_http
from controller.api.webhook_intake import IntakeLimits
from controller.cli import durations, event_loop, gateway_option, startup
from controller.errors import ShipyardError
from controller.reconciler import kube_workloads, secret_scopes
from controller.reconciler.config import ControllerConfig
from controller.source import credentials
from preview import gitlab, naming
from preview.github import DEFAULT_API_URL

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ServeOptions:
    """The flags `serve` and `up` share, as parsed by click."""

    host: str
    port: int
    state_dir: Path | None
    poll_interval: float
    default_branch: str | None
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    max_previews: int
    url_template: str
    restart_backoff: float
    restart_backoff_cap: float
    restart_backoff_reset: float
    secrets_file: Path | None
    verbose: bool
    insecure: bool
    webhook_secret: str | None = field(repr=False)
    read_tokens: tuple[str, ...] = field(repr=False)
    write_tokens: tuple[str, ...] = field(repr=False)
    github_api_url: str
    github_token: str | None = field(repr=False)
    github_repo: str | None
    gitlab_api_url: str
    gitlab_token: str | None = field(repr=False)
    gitlab_project: str | None
    trusted_label: str
    allow_empty_production: bool = False
    gitea_repo: str | None = None
    gitea_api_url: str | None = None
    gitea_token: str | None = field(default=None, repr=False)
    prometheus_url: str | None = None
    webhook_limits: IntakeLimits = field(default_factory=IntakeLimits)
    header_timeout: float = 60.0
    agent_timeout: float = upstream_http.DEFAULT_AGENT_TIMEOUT_SECONDS
    otlp_endpoint: str | None = None
    trace_sample_ratio: float | None = None
    prune_interval: float = 3600.0
    event_loop: str = "auto"  # resolved: uvloop or asyncio (controller/cli/event_loop.py)

    @property
    def api(self) -> server.ApiSettings:
        return server.ApiSettings(
            tokens=auth.Tokens(frozenset(self.read_tokens), frozenset(self.write_tokens)),
            webhook_secret=self.webhook_secret or None,
            github_api_url=self.github_api_url,
            github_token=self.github_token,
            gitlab_api_url=self.gitlab_api_url,
            gitlab_token=self.gitlab_token,
            github_repo=self.github_repo,
            gitlab_project=self.gitlab_project,
            gitea_repo=self.gitea_repo,
            gitea_api_url=self.gitea_api_url,
            gitea_token=self.gitea_token,
            webhook_limits=self.webhook_limits,
            header_timeout=self.header_timeout,
            agent_timeout=self.agent_timeout,
            otlp_endpoint=self.otlp_endpoint,
            trace_sample_ratio=self.trace_sample_ratio,
        )


_SHARED = [
    click.option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        envvar="SHIPYARD_HOST",
        help="Address to listen on.",
    ),
    click.option(
        "--port",
        default=8080,
        show_default=True,
        type=click.IntRange(1, 65535),
        envvar="SHIPYARD_PORT",
        help="Port for the API and agent traffic.",
    ),
    click.option(
        "--state-dir",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="SHIPYARD_STATE_DIR",
        help="Where the mirror, checkouts and database live. [default: .shipyard]",
    ),
    click.option(
        "--poll-interval",
        callback=durations.option_callback,
        default="15s",
        show_default=True,
        envvar="SHIPYARD_POLL_INTERVAL",
        help="How often to fetch the repository.",
    ),
    click.option(
        "--default-branch",
        envvar="SHIPYARD_DEFAULT_BRANCH",
        help="Branch that is production. [default: the remote's HEAD]",
    ),
    click.option(
        "--include",
        multiple=True,
        envvar="SHIPYARD_INCLUDE",
        help="Branch glob that gets previews (repeatable). [default: all]",
    ),
    click.option(
        "--exclude",
        multiple=True,
        envvar="SHIPYARD_EXCLUDE",
        help="Branch glob that never gets previews (repeatable).",
    ),
    click.option(
        "--max-previews",
        type=click.IntRange(0, 1000),
        default=20,
        show_default=True,
        envvar="SHIPYARD_MAX_PREVIEWS",
        help="Live previews at most; newest pushes keep theirs, the rest wait or are evicted.",
    ),
    click.option(
        "--allow-empty-production",
        is_flag=True,
        envvar="SHIPYARD_ALLOW_EMPTY_PRODUCTION",
        help="Let a commit that declares no agents stop every production agent.",
    ),
    click.option(
        "--restart-backoff",
        callback=durations.option_callback,
        default="10s",
        show_default=True,
        envvar="SHIPYARD_RESTART_BACKOFF",
        help="Delay before restarting a crashed local agent; doubles per crash in a row.",
    ),
    click.option(
        "--restart-backoff-cap",
        callback=durations.option_callback,
        default="5m",
        show_default=True,
        envvar="SHIPYARD_RESTART_BACKOFF_CAP",
        help="Longest delay before restarting a crashed local agent.",
    ),
    click.option(
        "--restart-backoff-reset",
        callback=durations.option_callback,
        default="10m",
        show_default=True,
        envvar="SHIPYARD_RESTART_BACKOFF_RESET",
        help="A local agent running this long starts its restart delay over.",
    ),
    click.option(
        "--prune-interval",
        callback=durations.option_callback,
        default="1h",
        show_default=True,
        envvar="SHIPYARD_PRUNE_INTERVAL",
        help="How often checkouts and blobs no environment or retained revision needs "
        "are deleted (also once at start-up).",
    ),
    click.option(
        "--otlp-endpoint",
        envvar="SHIPYARD_OTLP_ENDPOINT",
        callback=lambda _ctx, _param, value: _otlp_endpoint(value),
        help="OTLP/HTTP collector base URL (e.g. http://127.0.0.1:4318) for request spans. "
        "[default: none; recent requests are kept in memory]",
    ),
    click.option(
        "--trace-sample-ratio",
        type=click.FloatRange(0.0, 1.0),
        envvar="SHIPYARD_TRACE_SAMPLE_RATIO",
        help="Share of new traces exported, parent-based: a caller's sampled flag is followed. "
        "[default: 1, or OTEL_TRACES_SAMPLER(_ARG)]",
    ),
    click.option(
        "--url-template",
        default=naming.DEFAULT_LOCAL_URL_TEMPLATE,
        show_default=True,
        envvar="SHIPYARD_URL_TEMPLATE",
        help="URL of an agent in an environment: {agent}, {env}, {port}.",
    ),
    click.option(
        "--secrets-file",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="SHIPYARD_SECRETS_FILE",
        help="KEY=VALUE file of secret values for the local target.",
    ),
    click.option(
        "--webhook-secret",
        envvar="SHIPYARD_WEBHOOK_SECRET",
        help="Shared secret of webhook deliveries (HMAC key; GitLab token).",
    ),
    click.option(
        "--webhook-secret-file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="SHIPYARD_WEBHOOK_SECRET_FILE",
        help="File holding the webhook secret (keeps it out of the environment).",
    ),
    click.option(
        "--header-timeout",
        callback=durations.option_callback,
        default="60s",
        show_default=True,
        envvar="SHIPYARD_HEADER_TIMEOUT",
        help="Time a client may take to send a request's headers (then it is disconnected).",
    ),
    click.option(
        "--agent-timeout",
        callback=durations.option_callback,
        default="5m",
        show_default=True,
        envvar="SHIPYARD_AGENT_TIMEOUT",
        help="Time an agent may stay silent (no reply yet, or no more of a streamed one); "
        "then the client gets a 504, or a stream is cut.",
    ),
    click.option(
        "--webhook-body-timeout",
        callback=durations.option_callback,
        default="10s",
        show_default=True,
        envvar="SHIPYARD_WEBHOOK_BODY_TIMEOUT",
        help="Time a webhook body may take to arrive (then 408).",
    ),
    click.option(
        "--webhook-max-pending",
        type=click.IntRange(1, 10_000),
        default=IntakeLimits.max_pending,
        show_default=True,
        envvar="SHIPYARD_WEBHOOK_MAX_PENDING",
        help="Webhook deliveries read at once before they are authenticated.",
    ),
    click.option(
        "--read-token",
        "read_tokens",
        multiple=True,
        envvar="SHIPYARD_READ_TOKENS",
        help="Bearer token allowed to read the API (repeatable; env: space-separated).",
    ),
    click.option(
        "--read-tokens-file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="SHIPYARD_READ_TOKENS_FILE",
        help="File of read tokens, one per line (added to --read-token).",
    ),
    click.option(
        "--write-token",
        "write_tokens",
        multiple=True,
        envvar="SHIPYARD_WRITE_TOKENS",
        help="Bearer token allowed to read and steer (repeatable; env: space-separated).",
    ),
    click.option(
        "--write-tokens-file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="SHIPYARD_WRITE_TOKENS_FILE",
        help="File of write tokens, one per line (added to --write-token).",
    ),
    click.option(
        "--github-api-url",
        default=DEFAULT_API_URL,
        show_default=True,
        envvar="SHIPYARD_GITHUB_API_URL",
        help="GitHub REST API (GitHub Enterprise: https://HOST/api/v3).",
    ),
    click.option(
        "--github-token",
        envvar="SHIPYARD_GITHUB_TOKEN",
        help="Token for pull request feedback (statuses, deployments, one comment per PR).",
    ),
    click.option(
        "--github-token-file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="SHIPYARD_GITHUB_TOKEN_FILE",
        help="File holding the GitHub token (instead of --github-token).",
    ),
    click.option(
        "--github-repo",
        envvar="SHIPYARD_GITHUB_REPO",
        help="owner/name on GitHub. [default: derived from --repo]",
    ),
    click.option(
        "--gitlab-api-url",
        default=gitlab.DEFAULT_API_URL,
        show_default=True,
        envvar="SHIPYARD_GITLAB_API_URL",
        help="GitLab REST API (self-managed: https://HOST/api/v4).",
    ),
    click.option(
        "--gitlab-token",
        envvar="SHIPYARD_GITLAB_TOKEN",
        help="Token for merge request feedback (commit status, one note per MR).",
    ),
    click.option(
        "--gitlab-token-file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="SHIPYARD_GITLAB_TOKEN_FILE",
        help="File holding the GitLab token (instead of --gitlab-token).",
    ),
    click.option(
        "--gitlab-project",
        envvar="SHIPYARD_GITLAB_PROJECT",
        help="group/name on GitLab. [default: derived from --repo]",
    ),
    click.option(
        "--gitea-repo",
        envvar="SHIPYARD_GITEA_REPO",
        help="owner/name on Gitea or Forgejo (what its webhooks must name). "
        "[default: derived from --repo]",
    ),
    click.option(
        "--gitea-api-url",
        envvar="SHIPYARD_GITEA_API_URL",
        help="Gitea or Forgejo REST API, https://HOST/api/v1 (needed with --gitea-token).",
    ),
    click.option(
        "--gitea-token",
        envvar="SHIPYARD_GITEA_TOKEN",
        help="Token for Gitea/Forgejo pull request feedback (commit status, one comment per PR).",
    ),
    click.option(
        "--gitea-token-file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="SHIPYARD_GITEA_TOKEN_FILE",
        help="File holding the Gitea/Forgejo token (instead of --gitea-token).",
    ),
    click.option(
        "--trusted-label",
        default="shipyard:trusted",
        show_default=True,
        envvar="SHIPYARD_TRUSTED_LABEL",
        help="Label that lets a fork's pull request preview use secrets.",
    ),
    click.option(
        "--prometheus-url",
        envvar="SHIPYARD_PROMETHEUS_URL",
        help="Prometheus server that canary analyses' PromQL queries ask (its base URL, "
        "such as http://prometheus:9090).",
    ),
    click.option(
        "--insecure",
        is_flag=True,
        envvar="SHIPYARD_INSECURE",
        help="Allow listening on a non-loopback address.",
    ),
    click.option(
        "--event-loop",
        type=click.Choice(event_loop.CHOICES),
        default=event_loop.AUTO,
        show_default=True,
        envvar="SHIPYARD_EVENT_LOOP",
        help="Event loop to run on: auto is uvloop where it is installed, else asyncio's.",
    ),
    click.option("-v", "--verbose", is_flag=True, help="Log every reconcile step."),
]


def serve_options(function: F) -> F:
    """Attach the shared flags; each is also a SHIPYARD_* environment variable."""
    for option in reversed(_SHARED):
        function = option(function)
    return function


def _http_url(value: str | None, flag: str) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL", param_hint=flag)
    return value


def gather(**values: Any) -> ServeOptions:
    return ServeOptions(
        host=values["host"],
        port=values["port"],
        state_dir=values["state_dir"],
        poll_interval=values["poll_interval"],
        default_branch=values["default_branch"],
        include=tuple(values["include"]) or ("*",),
        exclude=tuple(values["exclude"]),
        max_previews=values["max_previews"],
        url_template=values["url_template"],
        restart_backoff=values["restart_backoff"],
        restart_backoff_cap=values["restart_backoff_cap"],
        restart_backoff_reset=values["restart_backoff_reset"],
        secrets_file=values["secrets_file"],
        verbose=values["verbose"],
        insecure=values["insecure"],
        webhook_secret=_token(
            values["webhook_secret"], values["webhook_secret_file"], "--webhook-secret"
        ),
        read_tokens=tuple(values["read_tokens"]) + _tokens_file(values["read_tokens_file"]),
        write_tokens=tuple(values["write_tokens"]) + _tokens_file(values["write_tokens_file"]),
        github_api_url=values["github_api_url"],
        github_token=_token(values["github_token"], values["github_token_file"], "--github-token"),
        github_repo=values["github_repo"],
        gitlab_api_url=values["gitlab_api_url"],
        gitlab_token=_token(values["gitlab_token"], values["gitlab_token_file"], "--gitlab-token"),
        gitlab_project=values["gitlab_project"],
        trusted_label=values["trusted_label"],
        allow_empty_production=values["allow_empty_production"],
        gitea_repo=values["gitea_repo"],
        gitea_api_url=values["gitea_api_url"],
        gitea_token=_token(values["gitea_token"], values["gitea_token_file"], "--gitea-token"),
        prometheus_url=_http_url(values.get("prometheus_url"), "--prometheus-url"),
        header_timeout=values["header_timeout"],
        agent_timeout=values["agent_timeout"],
        webhook_limits=IntakeLimits(
            body_timeout=values["webhook_body_timeout"],
            max_pending=values["webhook_max_pending"],
        ),
        otlp_endpoint=values["otlp_endpoint"],
        trace_sample_ratio=values["trace_sample_ratio"],
        prune_interval=values["prune_interval"],
        event_loop=_event_loop(values["event_loop"]),
    )


def _event_loop(name: str) -> str:
    try:
        return event_loop.resolve(name)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--event-loop") from error


def _otlp_endpoint(value: str | None) -> str | None:
    if not value:
        return None
    try:
        tracing.otlp_traces_url(value)
    except ShipyardError as error:
        raise click.BadParameter(str(error), param_hint="--otlp-endpoint") from error
    return value


def _tokens_file(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return ()
    return tuple(
        line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    )


def _repository_url(repo: str | None, repo_file: Path | None) -> str:
    url = _token(repo, repo_file, "--repo")
    if url is None:
        where = f"{repo_file} is empty" if repo_file is not None else "it is missing"
        raise click.UsageError(f"give the agents repository with --repo or --repo-file ({where})")
    if "\n" in url:
        raise click.BadParameter(
            f"{repo_file} holds more than one line; give the repository URL alone",
            param_hint="--repo-file",
        )
    return url


def _token(token: str | None, token_file: Path | None, flag: str) -> str | None:
    if token and token_file:
        raise click.UsageError(f"give {flag} or {flag}-file, not both")
    if token_file is not None:
        return token_file.read_text(encoding="utf-8").strip() or None
    return token or None


@click.command()
@click.option(
    "--repo",
    envvar="SHIPYARD_REPO",
    help="Git URL or local path of the agents repository (required, or --repo-file).",
)
@click.option(
    "--repo-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    envvar="SHIPYARD_REPO_FILE",
    help="File holding the repository URL (keeps a token in it out of the environment).",
)
@click.option(
    "--target",
    type=click.Choice(["local", "kubernetes"]),
    default="local",
    show_default=True,
    envvar="SHIPYARD_TARGET",
    help="Where agents run.",
)
@click.option(
    "--kubeconfig",
    envvar="SHIPYARD_KUBECONFIG",
    help="Kubeconfig file "
    "(kubernetes target). [default: in-cluster config, else KUBECONFIG/~/.kube/config]",
)
@click.option(
    "--context",
    "kube_context",
    envvar="SHIPYARD_CONTEXT",
    help="Kubeconfig context (kubernetes target).",
)
@click.option(
    "--ingress-class",
    envvar="SHIPYARD_INGRESS_CLASS",
    help="ingressClassName of rendered Ingresses (kubernetes target).",
)
@click.option(
    "--tls-secret",
    envvar="SHIPYARD_TLS_SECRET",
    help="TLS Secret for rendered Ingresses (kubernetes target).",
)
@click.option(
    "--gateway",
    metavar="SERVICE.NAMESPACE",
    envvar="SHIPYARD_GATEWAY",
    callback=lambda _ctx, _param, value: gateway_option.parse(value),
    help="Send agent Ingresses through `shipyard gateway` (canary weights, per-version "
    "metrics), e.g. shipyard-gateway.shipyard-system (kubernetes target). "
    "[default: Ingresses point at the agents' Services]",
)
@click.option(
    "--http-route-gateway",
    metavar="NAME.NAMESPACE",
    envvar="SHIPYARD_HTTP_ROUTE_GATEWAY",
    callback=lambda _ctx, _param, value: gateway_option.parse(value, "--http-route-gateway"),
    help="Split canaries with Gateway API HTTPRoute weights on this Gateway instead of "
    "`shipyard gateway` (kubernetes target; the cluster needs Gateway API).",
)
@click.option(
    "--production-namespace",
    default="shipyard-production",
    show_default=True,
    envvar="SHIPYARD_PRODUCTION_NAMESPACE",
    help="Namespace of production.",
)
@click.option(
    "--leader-election/--no-leader-election",
    default=True,
    show_default=True,
    envvar="SHIPYARD_LEADER_ELECTION",
    help="Act only while holding a Lease, so replicas never both act.",
)
@click.option(
    "--leader-election-namespace",
    default="shipyard-system",
    show_default=True,
    envvar="SHIPYARD_LEADER_ELECTION_NAMESPACE",
    help="Namespace of the Lease.",
)
@serve_options
def serve(  # noqa: PLR0917 - click passes one argument per flag
    repo: str | None,
    repo_file: Path | None,
    target: str,
    kubeconfig: str | None,
    kube_context: str | None,
    ingress_class: str | None,
    tls_secret: str | None,
    gateway: tuple[str, str] | None,
    http_route_gateway: tuple[str, str] | None,
    production_namespace: str,
    leader_election: bool,
    leader_election_namespace: str,
    **values: Any,
) -> None:
    """Run the controller: previews for every branch, production from the default branch.

    \b
    Examples:
      shipyard serve --repo https://github.com/acme/agents.git
      SHIPYARD_REPO=../agents shipyard serve --port 9000 --poll-interval 30s
      shipyard serve --repo URL --target kubernetes --kubeconfig ~/.kube/config \\
        --url-template 'https://{agent}--{env}.preview.example.com/' --ingress-class nginx
    """
    repo = _repository_url(repo, repo_file)
    options = gather(**values)
    kubernetes = None
    if target == "kubernetes":
        if options.url_template == naming.DEFAULT_LOCAL_URL_TEMPLATE:
            # The local default names loopback hosts; a cluster's previews need its domain.
            options = dataclasses.replace(options, url_template=kube_workloads.DEFAULT_URL_TEMPLATE)
        kubernetes = server.KubernetesSettings(
            kubeconfig=kubeconfig,
            context=kube_context,
            options=kube_workloads.ClusterOptions(
                url_template=options.url_template,
                ingress_class=ingress_class,
                tls_secret=tls_secret,
                production_namespace=production_namespace,
                gateway=gateway,
            ),
            leader_election=leader_election,
            leader_namespace=leader_election_namespace,
            http_route_gateway=http_route_gateway,
        )
    config = build_config(repo, options)
    where = "local" if kubernetes is None else _cluster(kube_context, production_namespace)
    startup.echo(
        startup.Startup(
            config.repo, options.host, options.port, where, options.default_branch, config.state_dir
        )
    )
    run(config, options, on_ready=startup.echo_first_sync, kubernetes=kubernetes)


def _cluster(context: str | None, production_namespace: str) -> str:
    return (
        f"kubernetes (context {context or 'default'}, production namespace {production_namespace})"
    )


def build_config(repo: str, options: ServeOptions) -> ControllerConfig:
    if not options.insecure and not _is_loopback(options.host) and not options.api.tokens.enabled:
        raise click.UsageError(
            f"--host {options.host} is not a loopback address and no API tokens are set: "
            "anyone who can reach it could steer rollouts. Set --write-token/--read-token, "
            "or pass --insecure to listen there anyway"
        )
    if options.restart_backoff > options.restart_backoff_cap:
        raise click.BadParameter(
            f"{options.restart_backoff:g}s is longer than --restart-backoff-cap "
            f"({options.restart_backoff_cap:g}s)",
            param_hint="--restart-backoff",
        )
    try:
        naming.preview_url(options.url_template, "agent", naming.PRODUCTION, options.port)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--url-template") from error
    logging.basicConfig(
        level=logging.INFO if options.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return ControllerConfig(
        repo=_repository(repo),
        state_dir=(options.state_dir or Path(".shipyard")).resolve(),
        poll_interval=options.poll_interval,
        default_branch=options.default_branch,
        include=options.include,
        exclude=options.exclude,
        max_previews=options.max_previews,
        allow_empty_production=options.allow_empty_production,
        url_template=options.url_template,
        public_port=options.port,
        secrets_file=_secrets_file(options.secrets_file),
        restart_backoff=options.restart_backoff,
        restart_backoff_cap=options.restart_backoff_cap,
        restart_backoff_reset=options.restart_backoff_reset,
        prune_interval=options.prune_interval,
        forge_repository=_forge_repository(options),
        credentials=_own_credentials(repo, options),
        trusted_label=options.trusted_label,
        prometheus_url=options.prometheus_url,
    )


def run(
    config: ControllerConfig,
    options: ServeOptions,
    on_ready: server.OnReady | None = None,
    kubernetes: server.KubernetesSettings | None = None,
) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(
            server.serve(
                config,
                options.host,
                options.port,
                on_ready=on_ready,
                api=options.api,
                kubernetes=kubernetes,
            ),
            options.event_loop,
        )


def _secrets_file(path: Path | None) -> Path | None:
    """Refuse to start with a secrets file that does not parse (it is read again later)."""
    if path is None:
        return None
    try:
        secret_scopes.read_file(path)
    except secret_scopes.SecretsFileError as error:
        raise click.BadParameter(str(error), param_hint="--secrets-file") from error
    return path.resolve()


def _own_credentials(repo: str, options: ServeOptions) -> frozenset[str]:
    """What the controller authenticates with: agents never receive any of it."""
    values = (
        options.webhook_secret,
        *options.read_tokens,
        *options.write_tokens,
        options.github_token,
        options.gitlab_token,
        options.gitea_token,
        *credentials.split(repo).secrets(),
    )
    return frozenset(value for value in values if value)


def _forge_repository(options: ServeOptions) -> str | None:
    tokens = [options.github_token, options.gitlab_token, options.gitea_token]
    if sum(bool(token) for token in tokens) > 1:
        raise click.UsageError("give one forge token (GitHub, GitLab or Gitea), not several")
    if options.gitea_token:
        if not options.gitea_api_url:
            raise click.UsageError("--gitea-token needs --gitea-api-url (https://HOST/api/v1)")
        return options.gitea_repo
    if options.gitlab_token:
        return options.gitlab_project
    return options.github_repo


def _repository(repo: str) -> str:
    """A local path becomes absolute (the mirror runs git elsewhere); URLs stay as they are."""
    candidate = Path(repo).expanduser()
    if "://" not in repo and not repo.startswith("git@") and candidate.exists():
        return str(candidate.resolve())
    return repo


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
