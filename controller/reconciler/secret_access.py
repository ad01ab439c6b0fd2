"""The secrets one rollout may use: the environment's scope, minus forks' and the controller's.

Read for every rollout (so edits to the secrets file apply without a restart) and from
one place, so a first deploy, an undo and a restore after a restart apply the same rules.
"""

from __future__ import annotations

from controller.reconciler import secret_scopes
from controller.reconciler.config import ControllerConfig
from controller.store.sqlite import Store
from preview import naming


class SecretAccess:
    def __init__(self, config: ControllerConfig, store: Store) -> None:
        self.config = config
        self.store = store

    def for_rollout(self, environment: str, branch: str) -> secret_scopes.SecretView:
        config = self.config
        if self.withheld(environment, branch):
            return secret_scopes.SecretView.empty(
                environment,
                withheld="secrets are withheld from pull requests from forks until a "
                f'maintainer adds the "{config.trusted_label}" label',
            )
        try:
            scoped = secret_scopes.read_file(config.secrets_file)
        except secret_scopes.SecretsFileError as error:
            return secret_scopes.SecretView.empty(environment, why=str(error))
        return secret_scopes.view(
            scoped, environment, credentials=config.credentials, secrets_file=config.secrets_file
        )

    def withheld(self, environment: str, branch: str) -> bool:
        """A preview of a fork's pull request gets no secrets unless a maintainer labels it.

        Code from a fork is written by someone without write access to the repository.
        What webhooks said of pull requests is kept in the store, so a restart changes
        nothing, and it is read with or without a forge token configured.
        """
        if environment == naming.PRODUCTION:
            return False
        label = self.config.trusted_label.casefold()
        return any(
            request.from_fork and label not in request.labels
            for request in self.store.review_requests(branch)
        )
