"""Where webhook deliveries land: the controller's sync trigger and the store's replay log."""

from __future__ import annotations

import logging

from controller.reconciler.controller import Controller
from controller.store.records import ReviewRequest
from preview.delivery import ForgeNotifier

log = logging.getLogger("shipyard.webhooks")


class ControllerSink:
    """Implements `webhooks.WebhookSink` on top of a running controller."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def branch_pushed(self, branch: str, sha: str | None) -> None:
        log.info("push to %s (%s): syncing", branch, (sha or "?")[:12])
        self.controller.trigger()

    def branch_deleted(self, branch: str) -> None:
        log.info("branch %s deleted: syncing", branch)
        self.controller.trigger()

    def pull_request(
        self,
        provider: str,
        branch: str,
        number: int,
        *,
        from_fork: bool,
        labels: tuple[str, ...],
    ) -> None:
        # In the store, not only in the notifier's memory: after a restart a fork's
        # preview must still go without secrets, with or without a forge token.
        self.controller.store.record_review_request(
            ReviewRequest(
                branch=branch,
                number=number,
                from_fork=from_fork,
                labels=frozenset(label.casefold() for label in labels),
            )
        )
        notifier, repository = self.controller.notifier, self.controller.repository
        # A merge request number means nothing to GitHub's API, nor a pull request's to GitLab's.
        if (
            not isinstance(notifier, ForgeNotifier)
            or notifier.provider != provider
            or repository is None
        ):
            log.info(
                "%s request %d for %s not filed: no %s notifier", provider, number, branch, provider
            )
            return
        log.info("%s request %d for %s filed (fork: %s)", provider, number, branch, from_fork)
        notifier.note_pull_request(repository, branch, number, from_fork=from_fork, labels=labels)

    def delivery_seen(self, provider: str, delivery: str) -> bool:
        return not self.controller.store.record_delivery(provider, delivery)

    def delivery_counted(self, provider: str, result: str) -> None:
        log.debug("%s delivery: %s", provider, result)
        self.controller.metrics.webhook_delivery(provider, result)
