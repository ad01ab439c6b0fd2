"""What the watch caches keep: equal to what was decoded, with one copy of each string."""

from __future__ import annotations

import json

from controller.targets.kubernetes.informer import interned

EVENT = """{"metadata": {"name": "agent-1", "labels": {"shipyard.dev/agent": "agent-1",
 "app.kubernetes.io/part-of": "shipyard"}}, "status": {"replicas": 1,
 "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}}"""


def test_objects_decoded_apart_share_their_strings_once_interned() -> None:
    first, second = interned(json.loads(EVENT)), interned(json.loads(EVENT))
    assert first == second == json.loads(EVENT)
    first_labels, second_labels = first["metadata"]["labels"], second["metadata"]["labels"]
    for (key, value), (other_key, other_value) in zip(
        first_labels.items(), second_labels.items(), strict=True
    ):
        assert key is other_key
        assert value is other_value
    reason = first["status"]["conditions"][0]["reason"]
    assert reason is second["status"]["conditions"][0]["reason"]
    assert first["status"]["replicas"] == 1
