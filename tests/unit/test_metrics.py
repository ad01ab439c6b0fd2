"""The metrics collector: retired series disappear, labels stay bounded, registries are own."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from controller.metrics import collector, exposition
from controller.metrics.collector import Metrics
from controller.metrics.state import State, VersionInfo
from controller.store.records import RolloutResult

SHA = "0123456789abcdef0123456789abcdef01234567"
PREVIEW = "preview-feature-x"


@dataclass
class World:
    """A controller's state the test edits between scrapes."""

    versions: list[VersionInfo] = field(default_factory=list)
    problems: dict[str, int] = field(default_factory=dict)
    previews: dict[str, int] = field(default_factory=dict)

    def state(self) -> State:
        environments = {v.environment for v in self.versions} | set(self.problems)
        return State(
            versions=tuple(self.versions),
            environments=frozenset(environments),
            agents=frozenset((v.environment, v.agent) for v in self.versions),
            manifest_errors=dict(self.problems),
            previews=dict(self.previews),
        )


def watched(world: World) -> Metrics:
    metrics = Metrics()
    metrics.watch(world.state)
    return metrics


def samples(metrics: Metrics) -> list[Sample]:
    body, _ = exposition.render(metrics)
    return [
        sample
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    ]


def with_label(metrics: Metrics, name: str, value: str) -> list[Sample]:
    return [sample for sample in samples(metrics) if sample.labels.get(name) == value]


def version(agent: str, environment: str, number: str, branch: str = "main") -> VersionInfo:
    return VersionInfo(agent, environment, number, SHA, branch)


def traffic(metrics: Metrics, info: VersionInfo, *codes: int) -> None:
    for code in codes:
        metrics.observe_request(info.agent, info.environment, info.version, code, 0.02)


class TestRetirement:
    def test_a_replaced_version_loses_its_info_and_request_series(self) -> None:
        world = World()
        metrics = watched(world)
        old, new = version("alpha", "production", "v1"), version("alpha", "production", "v2")
        world.versions = [old]
        traffic(metrics, old, 200, 200, 500)
        assert {s.name for s in with_label(metrics, "version", "v1")} >= {
            "shipyard_agent_version_info",
            "shipyard_agent_requests_total",
            "shipyard_agent_request_duration_seconds_count",
        }
        world.versions = [new]
        traffic(metrics, new, 200)
        assert with_label(metrics, "version", "v1") == []
        requests = metrics.registry.get_sample_value(
            "shipyard_agent_requests_total",
            {"agent": "alpha", "environment": "production", "version": "v2", "code": "200"},
        )
        assert requests == 1

    def test_a_torn_down_preview_leaves_no_series_behind(self) -> None:
        world = World()
        metrics = watched(world)
        production, preview = version("alpha", "production", "v1"), version("alpha", PREVIEW, "v2")
        world.versions = [production, preview]
        world.problems = {"production": 0, PREVIEW: 0}
        traffic(metrics, preview, 200, 404)
        metrics.rollout_finished("alpha", PREVIEW, "Healthy", 3.0)
        metrics.synced(PREVIEW, 1_000.0)
        names = {sample.name for sample in with_label(metrics, "environment", PREVIEW)}
        assert names >= {
            "shipyard_agent_version_info",
            "shipyard_agent_requests_total",
            "shipyard_rollouts_total",
            "shipyard_manifest_errors",
            "shipyard_last_successful_sync_timestamp_seconds",
        }
        world.versions = [production]
        del world.problems[PREVIEW]
        assert with_label(metrics, "environment", PREVIEW) == []
        assert with_label(metrics, "environment", "production") != []

    def test_a_request_that_lands_after_retirement_is_pruned_at_the_next_scrape(self) -> None:
        world = World(versions=[version("alpha", "production", "v2")])
        metrics = watched(world)
        traffic(metrics, version("alpha", "production", "v1"), 200)  # in flight during switch
        assert with_label(metrics, "version", "v1") == []

    def test_counters_of_live_versions_survive_scrapes(self) -> None:
        world = World(versions=[version("alpha", "production", "v1")])
        metrics = watched(world)
        traffic(metrics, world.versions[0], 200)
        samples(metrics)
        traffic(metrics, world.versions[0], 200)
        labels = {"agent": "alpha", "environment": "production", "version": "v1", "code": "200"}
        assert metrics.registry.get_sample_value("shipyard_agent_requests_total", labels) == 2


class TestBoundedLabels:
    def test_version_info_carries_a_short_commit_and_a_cut_branch(self) -> None:
        branch = "feature/" + "b" * 300
        world = World(versions=[version("alpha", PREVIEW, "v1", branch=branch)])
        (info,) = [s for s in samples(watched(world)) if s.name == "shipyard_agent_version_info"]
        assert info.labels == {
            "agent": "alpha",
            "environment": PREVIEW,
            "version": "v1",
            "commit": SHA[:12],
            "branch": branch[:63],
        }
        assert info.value == 1

    @given(branch=st.text(max_size=400))
    def test_any_branch_name_yields_a_parseable_bounded_label(self, branch: str) -> None:
        world = World(versions=[version("alpha", PREVIEW, "v1", branch=branch)])
        (info,) = [s for s in samples(watched(world)) if s.name == "shipyard_agent_version_info"]
        assert info.labels["branch"] == branch[:63]

    def test_webhook_labels_are_cut(self) -> None:
        metrics = Metrics()
        metrics.webhook_delivery("github" * 20, "accepted" * 20)
        (delivery,) = [s for s in samples(metrics) if s.name == "shipyard_webhook_deliveries_total"]
        assert len(delivery.labels["provider"]) == collector.MAX_WEBHOOK_LABEL
        assert len(delivery.labels["result"]) == collector.MAX_WEBHOOK_LABEL

    @pytest.mark.parametrize(
        ("method", "arguments"),
        [
            pytest.param("rollout_finished", ("a", "production", "Exploded", 1.0), id="result"),
            pytest.param("observe_phase", ("deploy", 1.0), id="phase"),
            pytest.param("commit_live", ("staging-of-bob", 1.0), id="environment-kind"),
        ],
    )
    def test_fixed_label_sets_refuse_other_values(
        self, method: str, arguments: tuple[object, ...]
    ) -> None:
        with pytest.raises(ValueError, match="unknown"):
            getattr(Metrics(), method)(*arguments)

    def test_rollout_results_are_the_stores_finished_results(self) -> None:
        finished = {result.value for result in RolloutResult} - {"Progressing", "Superseded"}
        assert set(collector.ROLLOUT_RESULTS) == finished

    def test_fixed_label_sets_are_exported_before_anything_happens(self) -> None:
        world = World()
        metrics = watched(world)
        previews = {
            s.labels["state"]: s.value for s in samples(metrics) if s.name == "shipyard_previews"
        }
        assert previews == {"Ready": 0, "Progressing": 0, "Failed": 0, "Stalled": 0, "Retired": 0}
        phases = {
            s.labels["phase"]
            for s in samples(metrics)
            if s.name == "shipyard_sync_phase_duration_seconds_count"
        }
        assert phases == set(collector.SYNC_PHASES)


class TestRegistries:
    def test_each_metrics_object_has_its_own_registry(self) -> None:
        one, two = Metrics(), Metrics()
        one.git_fetch_failed()
        assert one.registry.get_sample_value("shipyard_git_fetch_errors_total") == 1
        assert two.registry.get_sample_value("shipyard_git_fetch_errors_total") == 0
        assert REGISTRY.get_sample_value("shipyard_git_fetch_errors_total") is None

    def test_prometheus_gets_openmetrics_and_others_the_text_format(self) -> None:
        metrics = Metrics()
        body, content_type = exposition.render(
            metrics, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )
        assert content_type.startswith("application/openmetrics-text")
        assert body.endswith(b"# EOF\n")
        _, plain = exposition.render(metrics, None)
        assert plain.startswith("text/plain")

    def test_without_a_state_source_only_the_plain_series_are_exported(self) -> None:
        metrics = Metrics()
        metrics.observe_request("alpha", "production", "v1", 200, 0.1)
        names = {sample.name for sample in samples(metrics)}
        assert "shipyard_agent_requests_total" in names
        assert "shipyard_agent_version_info" not in names
