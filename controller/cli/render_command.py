"""`shipyard render`: a branch's environment as plain Kubernetes objects, the eject path.

Computed locally from git, like `diff`: the repository is mirrored into a temporary
directory and the branch head's manifests are loaded exactly as the controller loads
them, then rendered by the same functions the Kubernetes target applies. A user can pipe
the output to `kubectl apply -f -`, or keep it and stop using Shipyard.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click
import yaml

from controller.cli import gateway_option, printers, repositories
from controller.reconciler import kube_workloads
from controller.source.mirror import Mirror
from controller.specs import loading
from controller.targets.kubernetes import rendering
from preview import naming


@click.command(name="render")
@click.option(
    "--repo",
    envvar="SHIPYARD_REPO",
    show_envvar=True,
    metavar="PATH_OR_URL",
    help="The agents repository, a local path or a git URL. Default: the current directory.",
)
@click.option("--branch", required=True, metavar="NAME", help="The branch to render.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="A multi-document YAML stream, or a JSON List.",
)
@click.option(
    "--default-branch",
    metavar="NAME",
    help="The production branch. Default: what the repository names as its default.",
)
@click.option(
    "--root",
    default=loading.DEFAULT_ROOT,
    show_default=True,
    help="Directory of manifests inside the repository.",
)
@click.option(
    "--host-template",
    default=kube_workloads.DEFAULT_URL_TEMPLATE,
    show_default=True,
    metavar="URL",
    help="Agent URLs, with {agent} and {env}; the host becomes the Ingress host. "
    "An empty value renders no Ingresses.",
)
@click.option("--ingress-class", metavar="NAME", help="The Ingresses' ingressClassName.")
@click.option("--tls-secret", metavar="NAME", help="A TLS Secret for every Ingress host.")
@click.option(
    "--production-namespace",
    default=rendering.DEFAULT_PRODUCTION_NAMESPACE,
    show_default=True,
    metavar="NAME",
    help="Where production runs (it must exist already).",
)
@click.option(
    "--namespace-prefix",
    default="",
    metavar="TEXT",
    help="Prepended to a preview's namespace: <prefix>preview-<slug>.",
)
@click.option(
    "--ingress-namespace",
    "ingress_namespaces",
    multiple=True,
    default=rendering.DEFAULT_INGRESS_NAMESPACES,
    show_default=True,
    metavar="NAME",
    help="Namespace of the ingress controller, admitted by a preview's NetworkPolicy (repeatable).",
)
@click.option(
    "--gateway",
    metavar="SERVICE.NAMESPACE",
    callback=lambda _ctx, _param, value: gateway_option.parse(value),
    help="Point Ingresses through `shipyard gateway` (as `serve --gateway`).",
)
def render(
    *,
    repo: str | None,
    branch: str,
    output: str,
    default_branch: str | None,
    root: str,
    host_template: str,
    ingress_class: str | None,
    tls_secret: str | None,
    production_namespace: str,
    namespace_prefix: str,
    ingress_namespaces: tuple[str, ...],
    gateway: tuple[str, str] | None,
) -> None:
    """Print the Kubernetes objects of a branch's environment, as Shipyard applies them.

    The default branch renders production (into --production-namespace); any other
    branch renders its preview: a namespace preview-<slug> with a ResourceQuota, a
    LimitRange and a NetworkPolicy, then per agent a ConfigMap (prompt and model), a
    Deployment, a Service and an Ingress. Exit status 1 when the manifests are invalid
    (each problem on stderr) or an agent cannot run on Kubernetes (no image).

    \b
    Examples:
      shipyard render --branch main | kubectl apply -f -
      shipyard render --branch feature/x --ingress-class nginx --tls-secret preview-tls
      shipyard render --repo https://github.com/acme/agents.git --branch main -o json
    """
    options = kube_workloads.ClusterOptions(
        url_template=host_template or None,
        ingress_class=ingress_class or None,
        tls_secret=tls_secret or None,
        production_namespace=production_namespace,
        namespace_prefix=namespace_prefix,
        ingress_namespaces=tuple(ingress_namespaces),
        gateway=gateway,
    )
    location = repositories.location(repo)
    with tempfile.TemporaryDirectory(prefix="shipyard-render-") as scratch:
        mirror = Mirror(location, Path(scratch) / "mirror")
        try:
            mirror.fetch()
            branches = mirror.branches()
            sha = repositories.head(branches, branch, location)
            production = default_branch or repositories.resolve_against(
                mirror, naming.PRODUCTION, location
            )
            result = loading.collect(mirror.tree(sha), root)
            commit = mirror.commit(sha)
        finally:
            mirror.close()
    if result.problems:
        for problem in result.problems:
            click.echo(f"{branch}: {problem.render()}", err=True)
        count = len(result.problems)
        click.echo(f"error: {count} problem{'s' if count != 1 else ''} in {branch}", err=True)
        raise SystemExit(1)
    environment = naming.environment_name(branch, production)
    origin = kube_workloads.Origin.of(commit, branch, source=location)
    objects = kube_workloads.render(result.agents, environment, origin, options)
    click.echo(dumps(objects, output), nl=False)


def dumps(objects: list[rendering.KubeObject], output: str) -> str:
    """A JSON `List` (kubectl's shape), or YAML documents each starting with `---`."""
    if output == "json":
        return printers.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, "json")
    return yaml.dump_all(
        objects,
        Dumper=_BlockDumper,
        explicit_start=True,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
    )


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (prompts, model.json) as `|` blocks, readable when ejected."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)
