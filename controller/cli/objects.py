"""Shipyard's resources in kubectl's object shape, for `get -o json|yaml|jsonpath`.

A kubectl user reads `.metadata.name`, `.metadata.namespace`, `.metadata.labels` and
`.metadata.creationTimestamp` on every object, `spec` for what is wanted and `status`
for what is observed, camelCase keys and RFC 3339 times, and lists wrapped as
`{"apiVersion": "v1", "kind": "List", "items": [...]}`. The API's own shapes (epoch
floats, its snake_case history rows) become that here, at the edge that prints them
(`printers.as_list` wraps lists).
The environment plays the namespace: agents, revisions and rollouts live in one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from controller.cli import age

API_VERSION = "shipyard.dev/v1alpha1"


def rfc3339(timestamp: float | str | None) -> str | None:
    """`2026-11-30T08:13:04Z` (UTC, whole seconds, as Kubernetes writes times), or None."""
    moment = age.to_epoch(timestamp)
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _metadata(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    created: float | str | None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = dict(labels)
    metadata["creationTimestamp"] = rfc3339(created)
    return metadata


def _object(kind: str, metadata: dict[str, Any], **parts: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, **parts}


def environment(env: Mapping[str, Any], created: float | None) -> dict[str, Any]:
    """An environment: cluster-scoped, as a Namespace is. `created` is its AGE's start."""
    return _object(
        "Environment",
        _metadata(env["name"], None, {}, created),
        spec={"branch": env.get("branch")},
        status={
            "commit": env.get("commit"),
            "conditions": list(env.get("conditions") or []),
            "agents": [_agent_summary(agent) for agent in env.get("agents") or []],
            "problems": list(env.get("problems") or []),
        },
    )


def _agent_summary(agent: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": agent.get("name"),
        "version": agent.get("version"),
        "desiredVersion": agent.get("desiredVersion"),
        "ready": bool(agent.get("ready")),
        "state": agent.get("state"),
        "url": agent.get("url"),
    }


def agent(item: Mapping[str, Any]) -> dict[str, Any]:
    """An agent in one environment: the branch's version in spec, what serves in status."""
    return _object(
        "Agent",
        _metadata(
            item["name"], item.get("environment"), item.get("labels") or {}, item.get("since")
        ),
        spec={"branch": item.get("branch"), "version": item.get("desiredVersion")},
        status={
            "version": item.get("version"),
            "commit": item.get("commit"),
            "url": item.get("url"),
            "ready": bool(item.get("ready")),
            "state": item.get("state"),
            "message": item.get("message") or "",
        },
    )


def revision(row: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """One version of an agent as deployed from a commit, named `<agent>-<number>`."""
    return _object(
        "Revision",
        _metadata(
            f"{row['agent']}-{row['number']}", row.get("environment"), labels, row.get("created_at")
        ),
        spec={
            "agent": row.get("agent"),
            "revision": row.get("number"),
            "version": row.get("version"),
            "commit": row.get("commit"),
            "branch": row.get("branch"),
            "author": row.get("author"),
            "message": row.get("message"),
            "manifest": row.get("manifest"),
        },
    )


def rollout(row: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """One move of an agent from a version to another, named by its id."""
    return _object(
        "Rollout",
        _metadata(str(row["id"]), row.get("environment"), labels, row.get("started_at")),
        spec={
            "agent": row.get("agent"),
            "fromVersion": row.get("from_version"),
            "toVersion": row.get("to_version"),
            "commit": row.get("commit"),
            "author": row.get("author"),
        },
        status={
            "result": row.get("result"),
            "reason": row.get("reason"),
            "startTime": rfc3339(row.get("started_at")),
            "completionTime": rfc3339(row.get("finished_at")),
        },
    )
