"""Steering rollouts from outside the loop: which revision `rollout undo` returns to, and
a running canary's promote and abort.

The undo target is decided from the store alone, so the choice reads in one place and
holds however long the history grows: the store answers with one indexed query, never a
capped list scanned in Python. Canary steering records intent in the store and wakes the
canary's loop; it never calls into the loop.
"""

from __future__ import annotations

from controller.errors import Conflict, NotFound
from controller.reconciler import canary
from controller.store.records import Revision
from controller.store.sqlite import Store


def undo_target(
    store: Store, agent: str, environment: str, serving: str | None, to_revision: int | None
) -> Revision:
    """The revision to roll `agent` back to.

    With `to_revision`, that one. Otherwise kubectl's "the revision before": the newest
    revision older than the one serving whose version differs from what serves, so a
    newer version that failed and was rolled back is never chosen.
    """
    if to_revision is not None:
        chosen = store.revision(agent, environment, to_revision)
        if chosen is None:
            newest = store.revisions(agent, environment, limit=1)
            known = f"1 to {newest[0].number}" if newest else "none"
            raise NotFound(
                f"revision {to_revision} of {agent} in {environment} not found (revisions: {known})"
            )
        return chosen
    current = store.revision_serving(agent, environment, serving) if serving is not None else None
    before = store.revision_before(
        agent, environment, current.number if current is not None else None, serving
    )
    if before is None:
        raise Conflict(f"{agent} in {environment} has no earlier revision to undo to")
    return before


def steer_canary(
    store: Store, book: canary.Book, environment: str, agent: str, *, intent: str, actor: str
) -> None:
    """Record `intent` (promote, promote-full, abort) for `agent`'s running canary and wake it.

    The canary's loop takes the intent at its next look, so the ask survives however
    busy the loop is; a canary that is not running is a clear 409, not a stored ask.
    """
    if intent not in canary.INTENTS:
        raise Conflict(f"unknown intent {intent!r} (one of {', '.join(canary.INTENTS)})")
    if not book.running(environment, agent):
        raise Conflict(
            f"{agent} in {environment} has no canary running "
            "(a canary runs while a strategy: Canary rollout walks its steps)"
        )
    store.record_intent(environment, agent, intent, actor)
    book.wake(environment, agent)
