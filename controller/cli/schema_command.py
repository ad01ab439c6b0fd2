"""`shipyard schema`: print the agent manifest JSON Schema, for editors and other tools."""

from __future__ import annotations

import click

import schemas


@click.command()
def schema() -> None:
    """Print the JSON Schema of agent manifests (shipyard.dev/v1alpha1).

    \b
    Examples:
      shipyard schema > agent.schema.json
      # in a manifest, for yaml-language-server:
      # yaml-language-server: $schema=./agent.schema.json
    """
    click.echo(schemas.text(), nl=False)
