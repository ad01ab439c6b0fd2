"""The secrets one rollout may use: the environment's scope, minus forks' and the controller's.

Read for every rollout (so edits to the secrets file apply without a restart) and from
one place, so a first deploy, an undo and a restore after a restart apply the same rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.reconciler import pr_feedback, secret_scopes

if TYPE_CHECKING:
    from controller.reconciler.controller import Controller


def secrets_for(controller: Controller, environment: str, branch: str) -> secret_scopes.SecretView:
    config = controller.config
    if pr_feedback.secrets_withheld(controller, environment, branch):
        return secret_scopes.SecretView.empty(
            environment,
            withheld="secrets are withheld from pull requests from forks until a maintainer "
            f'adds the "{config.trusted_label}" label',
        )
    try:
        scoped = secret_scopes.read_file(config.secrets_file)
    except secret_scopes.SecretsFileError as error:
        return secret_scopes.SecretView.empty(environment, why=str(error))
    return secret_scopes.view(
        scoped, environment, credentials=config.credentials, secrets_file=config.secrets_file
    )
