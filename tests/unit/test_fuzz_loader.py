"""Property tests: whatever bytes arrive, the loader answers with specs or problems."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.errors import ManifestInvalid
from controller.specs import loading
from controller.specs.tree import FilesystemTree
from tests.conftest import agent_yaml


def load_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "agents").mkdir()
        (root / "prompts").mkdir()
        (root / "prompts" / "support-bot.md").write_text("prompt")
        (root / "agents" / "fuzz.yaml").write_bytes(data)
        try:
            agents = loading.load(FilesystemTree(root))
        except ManifestInvalid as error:
            problems = error.problems
            agents = ()
        else:
            problems = ()
        assert all(agent.version for agent in agents)
        for problem in problems:
            assert problem.line >= 1
            assert problem.column >= 1
            assert problem.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    load_bytes(data)


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAML_VALUES)
def test_arbitrary_yaml_documents(value: object) -> None:
    load_bytes(yaml.safe_dump(value).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(agent_yaml()) - 1), st.binary(min_size=1, max_size=8))
def test_corrupted_valid_manifests(position: int, junk: bytes) -> None:
    data = agent_yaml().encode()
    load_bytes(data[:position] + junk + data[position + 1 :])
