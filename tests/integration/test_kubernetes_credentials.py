"""A renewed bearer token reaches the cluster: `KubeClient` checks its credentials once a
second instead of before every request (the official loaders' hook is costly), and must
still pick up a token an exec credential plugin renews.

A real kubeconfig with an `exec` user runs a small plugin that prints the token held in
a file, with an expiry inside the client's renewal margin so every check renews it; the
fake API server then demands a new token, and the client must get through with it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from controller.targets.kubernetes import errors
from controller.targets.kubernetes.client import KubeClient
from tests.fake_apiserver.server import FakeApiServer

PLUGIN = """\
import json, sys
from datetime import UTC, datetime, timedelta
token = open(sys.argv[1], encoding="utf-8").read().strip()
expires = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "kind": "ExecCredential",
    "status": {"token": token, "expirationTimestamp": expires},
}))
"""


def exec_kubeconfig(path: Path, url: str, plugin: Path, token_file: Path) -> Path:
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(plugin), str(token_file)],
            "interactiveMode": "Never",
        }
    }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": user}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(token="first-token").start()
    yield server
    server.stop()


def test_a_renewed_exec_token_is_used_once_the_server_demands_it(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    token_file = tmp_path / "token"
    token_file.write_text("first-token", encoding="utf-8")
    path = exec_kubeconfig(tmp_path / "kubeconfig", fake.url, plugin, token_file)
    client = KubeClient.from_config(str(path))
    assert any(ns["metadata"]["name"] == "default" for ns in client.list("v1", "Namespace"))

    token_file.write_text("second-token", encoding="utf-8")
    fake.token = "second-token"
    give_up = datetime.now(UTC) + timedelta(seconds=30)
    refusals: set[int | None] = set()
    listed = None
    while listed is None and datetime.now(UTC) < give_up:
        try:
            listed = client.list("v1", "Namespace")
        except errors.ApiError as error:
            refusals.add(error.status)
            time.sleep(0.1)
    assert listed is not None, "the renewed token never reached the server"
    assert refusals <= {401}
    assert any(ns["metadata"]["name"] == "default" for ns in listed)
