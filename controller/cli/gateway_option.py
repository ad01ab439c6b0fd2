"""`--gateway SERVICE.NAMESPACE`, shared by `serve` and `render`: parsed once, told clearly."""

from __future__ import annotations

import click

from controller.targets.kubernetes import rendering
from controller.targets.kubernetes.gateway_rendering import GatewayRef


def parse(value: str | None, flag: str = "--gateway") -> tuple[str, str] | None:
    """(name, namespace) of the gateway, or None when unset or empty."""
    if not value:
        return None
    try:
        ref = GatewayRef.parse(value)
    except rendering.RenderError as error:
        raise click.BadParameter(str(error), param_hint=flag) from error
    return ref.name, ref.namespace
