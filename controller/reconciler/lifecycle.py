"""Which previews go away, and why: deleted, merged, expired, over the cap.

Decisions only, no teardown: the loop takes them in one sync, marks them in the store
before it schedules anything (so the cap holds before a single preview starts), and
runs the teardowns in tasks of their own, off production's path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from controller.store.records import EnvironmentRecord
from preview import naming

Wanted = Mapping[str, tuple[str, str]]  # environment → (branch, head sha)


@dataclass(frozen=True)
class Retirement:
    """One preview to take down (or never start), recorded with an event."""

    environment: str
    branch: str
    reason: str  # the event's reason: BranchDeleted, Merged, Expired, Evicted, ...
    message: str
    retire_at: str | None  # keep the record, retired at this commit; None forgets it
    started: bool = True  # False: nothing ever ran, nothing to tear down


def retired(records: Mapping[str, EnvironmentRecord], environment: str, sha: str) -> bool:
    """Whether `environment` was taken down at `sha` (it stays down until its branch moves)."""
    record = records.get(environment)
    return record is not None and record.retired_commit == sha


def deleted(known: Iterable[str], wanted: Wanted) -> list[Retirement]:
    """Previews whose branch is gone."""
    return [
        Retirement(environment, "", "BranchDeleted", "its branch was deleted", None)
        for environment in sorted(set(known) - set(wanted) - {naming.PRODUCTION})
    ]


def merge_candidates(
    wanted: Wanted,
    records: Mapping[str, EnvironmentRecord],
    now_in: set[str],
    was_in: set[str],
) -> list[tuple[str, str, str, str]]:
    """Previews production may have merged: (environment, branch, sha, commit last seen).

    A branch reachable from production's new commit and not from its old one is merged
    only if it had commits of its own when the controller last saw it; a branch never
    seen before (cut at the new tip in the same push) is not. The caller checks the
    "commits of its own" part in git: the commit last seen is not in the old production.
    """
    candidates = []
    for environment, (branch, sha) in sorted(wanted.items()):
        if environment == naming.PRODUCTION or retired(records, environment, sha):
            continue
        record = records.get(environment)
        if record is None or record.branch != branch:
            continue  # never seen: nothing of its own was ever previewed
        if branch in now_in and branch not in was_in:
            candidates.append((environment, branch, sha, record.commit))
    return candidates


def merged_before_seen(
    wanted: Wanted,
    records: Mapping[str, EnvironmentRecord],
    contained: set[str],
    mainline: set[str],
    *,
    into: str,
    started: set[str],
) -> list[Retirement]:
    """Branches never seen that production had already merged (a fresh controller's case).

    `contained`: branches whose head production's head contains; `mainline`: production's
    first-parent history. A head a merge brought in (contained, yet off the mainline) is
    merged work. A head on the mainline is a branch cut from production with no work of its
    own beyond it: not merged, its preview runs. (A fast-forward merge looks exactly like
    that to git, so it is only caught when production moves while the controller runs.)
    """
    found = []
    for environment, (branch, sha) in sorted(wanted.items()):
        if environment == naming.PRODUCTION or environment in records:
            continue
        if branch in contained and sha not in mainline:
            message = f"{branch} was merged into {into} before the controller first saw it"
            found.append(
                Retirement(environment, branch, "Merged", message, sha, environment in started)
            )
    return found


def merged(environment: str, branch: str, sha: str, into: str) -> Retirement:
    return Retirement(environment, branch, "Merged", f"{branch} was merged into {into}", sha)


def expired(
    records: Mapping[str, EnvironmentRecord], ttl_of: Callable[[str], int], now: float
) -> list[Retirement]:
    """Previews with no push for longer than their TTL."""
    found = []
    for environment, record in sorted(records.items()):
        if environment == naming.PRODUCTION or record.retired_commit is not None:
            continue
        ttl = ttl_of(environment)
        if now - record.last_push_at > ttl:
            message = f"no push to {record.branch} for {ttl // 3600}h (the preview's TTL)"
            found.append(Retirement(environment, record.branch, "Expired", message, record.commit))
    return found


def live(wanted: Wanted, records: Mapping[str, EnvironmentRecord]) -> list[str]:
    """Previews that run or are due to run."""
    return sorted(
        environment
        for environment, (_, sha) in wanted.items()
        if environment != naming.PRODUCTION and not retired(records, environment, sha)
    )


def over_cap(
    wanted: Wanted,
    records: Mapping[str, EnvironmentRecord],
    *,
    cap: int,
    now: float,
    commit_times: Mapping[str, float],
    started: set[str],
) -> list[Retirement]:
    """The previews beyond `cap`, newest pushes kept.

    Recency is the controller's record of the last push; a branch pushed since the last
    sync (or never seen, as on a first sync over many branches) counts as pushed now,
    and among those the newer head commit wins. Previews in `started` are evicted; the
    rest never start and say so.
    """
    candidates = live(wanted, records)
    if len(candidates) <= cap:
        return []

    def recency(environment: str) -> tuple[float, float, str]:
        branch, sha = wanted[environment]
        record = records.get(environment)
        pushed = record.last_push_at if record is not None and record.commit == sha else now
        return (pushed, commit_times.get(branch, 0.0), environment)

    ranked = sorted(candidates, key=recency, reverse=True)
    retirements = []
    for environment in ranked[max(cap, 0) :]:
        branch, sha = wanted[environment]
        if environment in started:
            message = f"more than {cap} live previews; this one was idle longest"
            retirements.append(Retirement(environment, branch, "Evicted", message, sha))
        else:
            message = (
                f"not started: preview limit {cap} reached (--max-previews); newer pushes "
                f"hold every slot, a new push to {branch} takes one"
            )
            retirements.append(
                Retirement(environment, branch, "PreviewLimitReached", message, sha, False)
            )
    return retirements
