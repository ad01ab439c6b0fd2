"""Where each version on the Kubernetes target came from, and what a fresh controller skips.

The commit label of `shipyard_agent_version_info` is filled from what the target applied
(and, after a restart, from the Deployment's `shipyard.dev/commit` annotation); a
controller started with an empty state directory creates no preview for a branch that
main had already merged, yet still previews branches cut from main with no work of their
own. Real git, the real controller, the fake API server through the official client.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from controller.reconciler.controller import Controller
from controller.targets.kubernetes.target import KubernetesTarget
from preview import naming
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration.controller_harness import preview_of
from tests.integration.kube_controller import sync
from tests.integration.test_kubernetes_health import fake, manifest, run  # noqa: F401


def version_info(controller: Controller) -> list[str]:
    text = generate_latest(controller.metrics.registry).decode()
    return [line for line in text.splitlines() if line.startswith("shipyard_agent_version_info{")]


def test_version_info_carries_the_commit_on_kubernetes_also_after_a_restart(
    upstream: Upstream,
    tmp_path: Path,
    fake: FakeApiServer,  # noqa: F811
) -> None:
    sha = upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")

    async def first(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        (line,) = version_info(controller)
        assert f'commit="{sha[:12]}"' in line, line
        assert 'environment="production"' in line

    run(upstream, tmp_path, fake, first)

    async def restarted(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        (line,) = version_info(controller)
        assert f'commit="{sha[:12]}"' in line, line

    run(upstream, tmp_path / "again", fake, restarted)


def test_a_fresh_controller_creates_no_preview_for_a_branch_main_already_merged(
    upstream: Upstream,
    tmp_path: Path,
    fake: FakeApiServer,  # noqa: F811
) -> None:
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")
    upstream.git("branch", "cut-earlier")  # from main's old tip, nothing of its own
    upstream.commit({"agents/alpha.yaml": manifest("alpha", 0.5)}, branch="feature")
    upstream.commit({"agents/alpha.yaml": manifest("alpha", 0.7)}, branch="open")
    upstream.git("checkout", "--quiet", "main")
    upstream.git("merge", "--quiet", "--no-ff", "-m", "Merge feature", "feature")
    upstream.git("branch", "cut-at-tip")  # at main's new tip, nothing of its own
    upstream.push("main", "feature", "open", "cut-earlier", "cut-at-tip")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        merged = preview_of("feature")
        assert fake.get_object("v1", "namespaces", merged) is None
        assert [e.reason for e in controller.store.events(merged)] == ["Merged"]
        assert "merged into main" in controller.store.events(merged)[0].message
        for branch in ("open", "cut-earlier", "cut-at-tip"):
            environment = preview_of(branch)
            assert target.running(environment), branch
            assert "Merged" not in [e.reason for e in controller.store.events(environment)]
        assert target.running(naming.PRODUCTION)
        await sync(controller)  # and it stays down on the next poll
        assert fake.get_object("v1", "namespaces", merged) is None

    run(upstream, tmp_path, fake, scenario)
