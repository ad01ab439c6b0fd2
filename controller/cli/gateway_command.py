"""`shipyard gateway`: run Shipyard's router in a cluster, in front of the agents' pods.

A thin edge: it parses flags, builds the Kubernetes client and hands over to
`controller.api.gateway`. Installed by `kubectl apply -k manifests/` as the
`shipyard-gateway` Deployment.
"""

from __future__ import annotations

import logging

import click

from controller.api import gateway
from controller.cli import durations
from controller.reconciler import kube_workloads
from controller.targets.kubernetes.client import KubeClient


@click.command()
@click.option(
    "--kubeconfig",
    envvar="SHIPYARD_KUBECONFIG",
    help="Kubeconfig file. [default: in-cluster config, else KUBECONFIG/~/.kube/config]",
)
@click.option("--context", "kube_context", envvar="SHIPYARD_CONTEXT", help="Kubeconfig context.")
@click.option(
    "--url-template",
    default=kube_workloads.DEFAULT_URL_TEMPLATE,
    show_default=True,
    envvar="SHIPYARD_URL_TEMPLATE",
    help="URL of an agent in an environment ({agent}, {env}); the controller's own.",
)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="SHIPYARD_GATEWAY_HOST")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
    envvar="SHIPYARD_GATEWAY_PORT",
)  # fmt: skip
@click.option(
    "--header-timeout",
    callback=durations.option_callback,
    default="30s",
    show_default=True,
    envvar="SHIPYARD_GATEWAY_HEADER_TIMEOUT",
    help="Time a client may take to send a request's headers; then the connection closes.",
)
def gateway_command(  # noqa: PLR0917 - click passes one argument per flag
    kubeconfig: str | None,
    kube_context: str | None,
    url_template: str,
    host: str,
    port: int,
    header_timeout: float,
) -> None:
    """Route agent hosts to their versions' ready pods, splitting canaries by weight.

    Ingresses point agent hosts at this gateway. It watches Shipyard's pods and
    Deployments through the API, sends each request to a ready pod of the stable
    version or, for the canary's weight, of the canary, and exports per-version request
    metrics at /metrics.

    \b
    Example:
      shipyard gateway --kubeconfig ~/.kube/config --port 8080 \\
        --url-template 'https://{agent}--{env}.preview.example.com/'
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        gateway.host_maker(url_template)("agent", "production")
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--url-template") from error
    client = KubeClient.from_config(kubeconfig, kube_context)
    gateway.run(client, url_template, host, port, header_timeout)
