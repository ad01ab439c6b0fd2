"""The dashboard at `/ui/` over real HTTP against a real `shipyard serve`, and once in a real
headless Chromium.

Two controllers serve the module: `open_world` without tokens (loopback dev, where the
pages are open as the API is) and `guarded` with a read and a write token, for sign-in,
scopes and CSRF. Tests that steer push or pin what they need, so each also passes alone.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.gitrepos import Upstream
from tests.integration.browser import Chromium, executable
from tests.integration.controller_harness import (
    EXAMPLE_AGENT,
    Shipyard,
    manifest,
    preview_of,
    wait_for,
)

READ = "dashboard-read-token"
WRITE = "dashboard-write-token"
BROKEN = preview_of("broken")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SCREENSHOTS = os.environ.get("SHIPYARD_SCREENSHOTS")  # keep the browser's pictures here


@dataclass
class World:
    shipyard: Shipyard
    upstream: Upstream

    def url(self, path: str) -> str:
        return self.shipyard.api(path)

    def browser(self) -> httpx.Client:
        """A fresh cookie jar, as a new browser has."""
        return httpx.Client(timeout=10.0, trust_env=False)

    def push(self, files: dict[str, str | None], message: str, branch: str = "main") -> str:
        self.upstream.git("checkout", "--quiet", branch)
        sha = self.upstream.commit(files, message=message)
        self.upstream.push(branch)
        return sha


def start(root: Path, *tokens: str) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        upstream = Upstream(root / "upstream")
        upstream.commit(
            {
                "agent/server.py": (EXAMPLE_AGENT / "server.py").read_text(),
                "agents/alpha.yaml": manifest("alpha"),
                "agents/beta.yaml": manifest("beta"),
            },
            message="Add alpha and beta",
            branch="main",
        )
        upstream.push("main")
        upstream.commit(
            {
                "agents/broken.yaml": manifest("broken").replace(
                    "  prompt:", "  bogus: 1\n  prompt:"
                )
            },
            message="Break a manifest",
            branch="broken",
        )
        upstream.push("broken")
        shipyard = Shipyard(
            str(upstream.bare), root / "state", *tokens, token=WRITE if tokens else None
        )
        shipyard.start()
        world = World(shipyard, upstream)
        wait_for(
            lambda: (
                shipyard.serving("alpha", "production") and shipyard.serving("beta", "production")
            ),
            what="alpha and beta serving",
        )
        wait_for(lambda: BROKEN in shipyard.environments(), what="the broken preview")
        try:
            yield world
        finally:
            shipyard.close()


@pytest.fixture(scope="module")
def open_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from start(tmp_path_factory.mktemp("dashboard-open"))


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from start(
        tmp_path_factory.mktemp("dashboard-guarded"), "--read-token", READ, "--write-token", WRITE
    )


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


def signed_in(world: World, token: str) -> httpx.Client:
    client = world.browser()
    form = client.get(world.url("/ui/login"))
    answer = client.post(world.url("/ui/login"), data={"csrf": csrf_of(form), "token": token})
    assert answer.status_code == 303, answer.text
    return client


def agent_page(world: World, agent: str, environment: str = "production") -> str:
    return world.url(f"/ui/environments/{environment}/agents/{agent}")


def pin_of(world: World, agent: str) -> object:
    described = world.shipyard.http.get(
        world.url(f"/api/v1/environments/production/agents/{agent}")
    ).json()
    return described["pin"]


# Reading ---------------------------------------------------------------------------------


def test_overview_lists_every_environment_agent_and_version(open_world: World) -> None:
    page = open_world.browser().get(open_world.url("/ui/"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    for name, env in open_world.shipyard.environments().items():
        assert f'id="env-{name}"' in page.text
        assert f"<code>{env['branch']}</code>" in page.text
        for agent in env["agents"]:
            href = f"/ui/environments/{name}/agents/{agent['name']}"
            assert f'href="{href}">{agent["name"]}</a>' in page.text
            if agent["version"]:
                assert agent["version"] in page.text
            if agent["url"]:
                assert f'<a href="{agent["url"]}">' in page.text


def test_a_stalled_environment_shows_its_problems_with_file_and_line(open_world: World) -> None:
    problems = open_world.shipyard.environments()[BROKEN]["problems"]
    assert problems, "the broken manifest should stall its preview"
    page = open_world.browser().get(open_world.url("/ui/")).text
    section = page[page.index(f'id="env-{BROKEN}"') :]
    assert "Stalled" in section
    assert f"<code>agents/broken.yaml:{problems[0]['line']}" in section
    assert "bogus" in section


def test_agent_page_shows_rollouts_requests_logs_and_pin(open_world: World) -> None:
    open_world.shipyard.agent("alpha", "production", "/traced-path")  # any answer is traced
    traced = wait_for(
        lambda: open_world.shipyard.http.get(
            open_world.url("/api/v1/environments/production/agents/alpha/requests")
        ).json()["items"],
        what="the request's trace",
    )
    page = open_world.browser().get(agent_page(open_world, "alpha")).text
    assert "Add alpha and beta" in page  # the rollout's commit message
    assert traced[-1]["traceId"] in page
    assert "/traced-path" in page
    assert "Not pinned" in page
    assert 'id="logs"' in page
    assert "<pre" in page  # the running process's output

    previous = open_world.browser().get(agent_page(open_world, "alpha") + "?previous=1")
    assert previous.status_code == 200
    assert "previous instance" in previous.text


def test_agent_page_of_an_unknown_agent_is_404(open_world: World) -> None:
    page = open_world.browser().get(agent_page(open_world, "nobody"))
    assert page.status_code == 404
    assert "nobody" in page.text


def test_events_filter_by_agent_and_environment(open_world: World) -> None:
    browser = open_world.browser()
    everything = browser.get(open_world.url("/ui/events")).text
    assert "<td>alpha</td>" in everything
    assert "<td>beta</td>" in everything
    only_beta = browser.get(open_world.url("/ui/events"), params={"agent": "beta"}).text
    assert "<td>beta</td>" in only_beta
    assert "<td>alpha</td>" not in only_beta
    assert "<option selected>beta</option>" in only_beta
    preview = browser.get(open_world.url("/ui/events"), params={"environment": BROKEN}).text
    assert "<td>production</td>" not in preview


def test_the_stylesheet_ships_with_the_package(open_world: World) -> None:
    css = open_world.browser().get(open_world.url("/ui/static/dashboard.css"))
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "@media" in css.text


def test_the_live_stream_announces_a_push(open_world: World) -> None:
    with (
        open_world.browser() as browser,
        browser.stream("GET", open_world.url("/ui/events/stream"), timeout=60.0) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        open_world.push({"agents/beta.yaml": manifest("beta", temperature=0.4)}, "Warmer beta")
        for line in lines:
            if line == "event: change":
                break


def wait_serving(world: World, agent: str, version: str) -> None:
    """Until the controller's status (what pages show) says `agent` serves `version`."""

    def serving() -> bool:
        agents = world.shipyard.environments()["production"]["agents"]
        return any(a["name"] == agent and a["version"] == version for a in agents)

    wait_for(serving, what=f"{agent} serving {version}")


def canary_manifest(name: str, temperature: float) -> str:
    """`name` rolled out as a canary: 30 %, wait for promote, 60 %, wait for promote."""
    return manifest(name, temperature=temperature).replace(
        "    progressDeadlineSeconds: 20\n",
        "    progressDeadlineSeconds: 20\n    strategy: Canary\n    steps:\n"
        "      - setWeight: 30\n      - pause: {}\n      - setWeight: 60\n      - pause: {}\n",
    )


def canary_of(world: World, agent: str) -> dict[str, object] | None:
    described = world.shipyard.http.get(
        world.url(f"/api/v1/environments/production/agents/{agent}")
    ).json()
    progress = described["canary"]
    return progress if isinstance(progress, dict) else None


def canary_paused_at(world: World, agent: str, step: int) -> dict[str, object] | None:
    progress = canary_of(world, agent)
    if progress is None or (progress["phase"], progress["step"]) != ("Paused", step):
        return None
    return progress


def start_canary(world: World, agent: str) -> str:
    """`agent` serving in production, then a canary of a new version paused at 30 %."""
    world.push({f"agents/{agent}.yaml": manifest(agent)}, f"Add {agent}")
    wait_for(lambda: world.shipyard.serving(agent, "production"), what=f"{agent} serving")
    sha = world.push(
        {f"agents/{agent}.yaml": canary_manifest(agent, 0.6)}, f"Try {agent} as a canary"
    )
    canary = world.shipyard.wait_desired(agent, "production", sha)
    wait_for(lambda: canary_paused_at(world, agent, 2), what="the canary paused at 30 %")
    return canary


def test_agent_page_diffs_any_two_versions_semantically(open_world: World) -> None:
    open_world.push({"agents/delta.yaml": manifest("delta")}, "Add delta")
    first = wait_for(lambda: open_world.shipyard.serving("delta", "production"), what="delta")
    changed = manifest("delta", temperature=0.35).replace("You are delta.", "You are delta, kind.")
    sha = open_world.push({"agents/delta.yaml": changed}, "Kinder, warmer delta")
    second = open_world.shipyard.wait_desired("delta", "production", sha)
    wait_serving(open_world, "delta", second)

    browser = open_world.browser()
    page = browser.get(agent_page(open_world, "delta")).text
    section = page[page.index('id="diff"') :]
    assert f"<code>{first['version']}</code>" in section
    assert f"<code>{second}</code>" in section
    assert "<code>spec.model.parameters.temperature</code></th><td><code>0.2</code></td>" in section
    assert "<td><code>0.35</code></td>" in section
    assert '<span class="removed">-You are delta.</span>' in section
    assert '<span class="added">+You are delta, kind.</span>' in section

    same = browser.get(agent_page(open_world, "delta"), params={"from": "2", "to": "2"}).text
    assert "Same version: nothing differs." in same
    bad = browser.get(agent_page(open_world, "delta"), params={"from": "new", "to": "99"})
    assert bad.status_code == 200
    assert "is not a revision number" in bad.text
    assert "Revision 99 is not among" in bad.text


def test_agent_page_charts_its_traffic_by_version(open_world: World) -> None:
    for _ in range(5):
        open_world.shipyard.agent("alpha", "production", "/charted")

    def charted() -> str | None:
        page = open_world.browser().get(agent_page(open_world, "alpha")).text
        return page if page.count('role="img"') == 3 else None

    page = wait_for(charted, timeout=90.0, what="two samples of alpha's traffic")
    section = page[page.index('id="traffic"') :]
    version = open_world.shipyard.version_of("alpha", "production")
    assert f'<desc id="chart-rate-desc">{version}: latest' in section
    assert "<caption>Intervals with requests, newest first</caption>" in section


def test_logs_follow_streams_new_lines(open_world: World) -> None:
    page = open_world.browser().get(agent_page(open_world, "alpha") + "?follow=1").text
    assert 'id="log-lines"' in page
    assert "data-follow=" in page
    stream_url = agent_page(open_world, "alpha") + "/logs/stream"
    with (
        open_world.browser() as browser,
        browser.stream("GET", stream_url, timeout=60.0) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        open_world.shipyard.agent("alpha", "production", "/followed-path")
        for line in lines:
            if line.startswith("data:") and "/followed-path" in line:
                break
    unknown = open_world.browser().get(agent_page(open_world, "nobody") + "/logs/stream")
    assert unknown.status_code == 404


def test_the_events_page_stream_follows_its_filter(open_world: World) -> None:
    page = open_world.browser().get(open_world.url("/ui/events"), params={"agent": "epsilon"})
    assert "events=1&amp;environment=&amp;agent=epsilon" in page.text
    url = open_world.url("/ui/events/stream?events=1&agent=epsilon")
    with (
        open_world.browser() as browser,
        browser.stream("GET", url, timeout=60.0) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        open_world.push({"agents/epsilon.yaml": manifest("epsilon")}, "Add epsilon")
        for line in lines:
            if line == "event: change":
                break
    shown = open_world.browser().get(open_world.url("/ui/events"), params={"agent": "epsilon"})
    assert "<td>epsilon</td>" in shown.text


def test_overview_shows_a_running_canary_and_promote_then_abort_steer_it(
    open_world: World,
) -> None:
    canary = start_canary(open_world, "zeta")
    browser = open_world.browser()
    overview = browser.get(open_world.url("/ui/")).text
    assert "<th scope=col>Canary</th>" in overview
    assert f"<td><strong>30%</strong> to <code>{canary}</code>" in overview
    page = browser.get(agent_page(open_world, "zeta")).text
    assert "Promote…" in page
    assert "Abort…" in page
    assert "<strong>30%</strong> of requests" in page

    confirm = browser.get(agent_page(open_world, "zeta") + "/confirm/promote")
    assert "Move the canary past its current pause" in confirm.text
    promoted = browser.post(
        agent_page(open_world, "zeta") + "/promote", data={"csrf": csrf_of(confirm)}
    )
    assert promoted.status_code == 303
    assert wait_for(lambda: canary_paused_at(open_world, "zeta", 4), what="60 %")["weight"] == 60

    confirm = browser.get(agent_page(open_world, "zeta") + "/confirm/abort")
    aborted = browser.post(
        agent_page(open_world, "zeta") + "/abort", data={"csrf": csrf_of(confirm)}
    )
    assert aborted.status_code == 303
    wait_for(
        lambda: (canary_of(open_world, "zeta") or {}).get("phase") == "Aborted", what="the abort"
    )
    assert "<th scope=col>Canary</th>" not in browser.get(open_world.url("/ui/")).text
    again = browser.post(agent_page(open_world, "zeta") + "/abort", data={"csrf": csrf_of(confirm)})
    assert again.status_code == 409  # no canary runs now: said on a page
    assert "no canary running" in again.text
    assert browser.get(agent_page(open_world, "zeta") + "/confirm/explode").status_code == 404


def test_pause_and_resume_from_the_page_hold_a_running_canary_at_its_step(
    open_world: World,
) -> None:
    start_canary(open_world, "theta")
    browser = open_world.browser()
    page = agent_page(open_world, "theta")
    confirm = browser.get(page + "/confirm/pause")
    paused = browser.post(page + "/pause", data={"csrf": csrf_of(confirm), "reason": "look"})
    assert paused.status_code == 303, paused.text
    wait_for(lambda: (canary_of(open_world, "theta") or {}).get("held"), what="the hold")
    held = canary_of(open_world, "theta") or {}
    assert (held["phase"], held["step"], held["weight"]) == ("Paused", 2, 30)
    described = open_world.shipyard.http.get(
        open_world.url("/api/v1/environments/production/agents/theta")
    ).json()
    assert described.get("pin", "absent") is None, described  # held, not pinned

    confirm = browser.get(page + "/confirm/resume")
    resumed = browser.post(page + "/resume", data={"csrf": csrf_of(confirm)})
    assert resumed.status_code == 303, resumed.text
    wait_for(lambda: (canary_of(open_world, "theta") or {}).get("held") is False, what="resume")
    confirm = browser.get(page + "/confirm/abort")
    browser.post(page + "/abort", data={"csrf": csrf_of(confirm)})
    wait_for(lambda: (canary_of(open_world, "theta") or {}).get("phase") == "Aborted", what="abort")


def test_a_page_older_than_its_stream_is_told_to_refresh_at_once(open_world: World) -> None:
    page = open_world.browser().get(open_world.url("/ui/")).text
    found = re.search(r'data-stream="/ui/events/stream\?seen=([0-9a-f]+)"', page)
    assert found is not None, page
    stale = "0" * len(found.group(1))  # what a page rendered before a change would carry
    with (
        open_world.browser() as browser,
        browser.stream(
            "GET", open_world.url(f"/ui/events/stream?seen={stale}"), timeout=60.0
        ) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        assert next(lines) == ": connected"
        assert next(lines) == ""
        assert next(lines) == "event: change"


# Acting ---------------------------------------------------------------------------------


def test_undo_from_the_page_rolls_back(open_world: World) -> None:
    shipyard = open_world.shipyard
    before = shipyard.version_of("alpha", "production")
    assert before is not None
    sha = open_world.push({"agents/alpha.yaml": manifest("alpha", temperature=0.9)}, "Hotter alpha")
    after = shipyard.wait_desired("alpha", "production", sha)
    shipyard.wait_version("alpha", "production", after)

    browser = open_world.browser()
    confirm = browser.get(agent_page(open_world, "alpha") + "/confirm/undo")
    assert confirm.status_code == 200
    assert 'method="post"' in confirm.text
    answer = browser.post(
        agent_page(open_world, "alpha") + "/undo",
        data={"csrf": csrf_of(confirm), "reason": "too hot"},
    )
    assert answer.status_code == 303
    shipyard.wait_version("alpha", "production", before)
    page = browser.get(agent_page(open_world, "alpha")).text
    assert "too hot" in page
    assert "Resume…" in page


def test_open_dashboard_still_refuses_a_post_without_its_csrf_token(open_world: World) -> None:
    browser = open_world.browser()
    browser.get(open_world.url("/ui/"))  # has a session, but posts no token
    answer = browser.post(agent_page(open_world, "beta") + "/pause", data={"reason": "x"})
    assert answer.status_code == 403
    assert pin_of(open_world, "beta") is None


def test_pages_ask_for_sign_in_and_keep_the_token_in_a_strict_cookie(guarded: World) -> None:
    browser = guarded.browser()
    first = browser.get(guarded.url("/ui/"))
    assert first.status_code == 303
    assert first.headers["location"] == "/ui/login"
    assert browser.get(guarded.url("/ui/events/stream")).status_code == 401
    assert browser.get(agent_page(guarded, "alpha") + "/logs/stream").status_code == 401
    form = browser.get(guarded.url("/ui/login"))
    assert '<label for="token">' in form.text

    wrong = browser.post(guarded.url("/ui/login"), data={"csrf": csrf_of(form), "token": "nope"})
    assert wrong.status_code == 401
    assert "Unknown token" in wrong.text
    forged = browser.post(guarded.url("/ui/login"), data={"token": READ})
    assert forged.status_code == 403

    accepted = browser.post(guarded.url("/ui/login"), data={"csrf": csrf_of(form), "token": READ})
    assert accepted.status_code == 303
    cookie = next(
        value
        for value in accepted.headers.get_list("set-cookie")
        if value.startswith("shipyard_token=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/ui" in cookie
    overview = browser.get(guarded.url("/ui/"))
    assert overview.status_code == 200
    assert 'href="/ui/environments/production/agents/alpha">alpha</a>' in overview.text
    assert "Sign out" in overview.text


def test_a_read_token_cannot_act(guarded: World) -> None:
    reader = signed_in(guarded, READ)
    page = reader.get(agent_page(guarded, "beta"))
    assert "Pause…" not in page.text
    assert reader.get(agent_page(guarded, "beta") + "/confirm/pause").status_code == 403
    assert reader.get(agent_page(guarded, "beta") + "/confirm/abort").status_code == 403
    refused = reader.post(agent_page(guarded, "beta") + "/abort", data={"csrf": csrf_of(page)})
    assert refused.status_code == 403
    answer = reader.post(agent_page(guarded, "beta") + "/pause", data={"csrf": csrf_of(page)})
    assert answer.status_code == 403
    assert pin_of(guarded, "beta") is None


def test_a_forged_cross_site_post_is_refused(guarded: World) -> None:
    writer = signed_in(guarded, WRITE)
    page = writer.get(agent_page(guarded, "beta"))
    token = csrf_of(page)
    target = agent_page(guarded, "beta") + "/pause"
    # Another site's page: SameSite=Strict keeps the cookies home, so no session at all.
    assert guarded.browser().post(target, data={"csrf": token}).status_code == 401
    # A browser that did send the cookies, but from a page of another origin.
    other = writer.post(target, data={"csrf": token}, headers={"origin": "http://elsewhere.test"})
    assert other.status_code == 403
    assert writer.post(target, data={"csrf": "0" * 64}).status_code == 403
    assert pin_of(guarded, "beta") is None


def test_a_write_token_pauses_and_resumes_after_confirming(guarded: World) -> None:
    writer = signed_in(guarded, WRITE)
    confirm = writer.get(agent_page(guarded, "beta") + "/confirm/pause")
    assert confirm.status_code == 200
    assert "Hold this agent" in confirm.text
    paused = writer.post(
        agent_page(guarded, "beta") + "/pause",
        data={"csrf": csrf_of(confirm), "reason": "investigating"},
        headers={"origin": guarded.url("")},
    )
    assert paused.status_code == 303
    assert pin_of(guarded, "beta") is not None
    page = writer.get(agent_page(guarded, "beta")).text
    assert "investigating" in page
    again = writer.post(agent_page(guarded, "beta") + "/pause", data={"csrf": csrf_of(confirm)})
    assert again.status_code == 409  # already paused: said on a page, not a traceback

    resumed = writer.post(agent_page(guarded, "beta") + "/resume", data={"csrf": csrf_of(confirm)})
    assert resumed.status_code == 303
    assert pin_of(guarded, "beta") is None


# In a real browser ----------------------------------------------------------------------


@pytest.fixture
def chromium() -> Iterator[Chromium]:
    executable()  # skips, saying why, without a browser
    browser = Chromium()
    try:
        yield browser
    finally:
        browser.close()


def main_text(browser: Chromium) -> str:
    return str(browser.evaluate("document.getElementById('main').innerText"))


def test_in_chromium_the_overview_updates_on_a_push_and_undo_rolls_back(
    open_world: World, chromium: Chromium, tmp_path: Path
) -> None:
    pictures = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    pictures.mkdir(parents=True, exist_ok=True)
    shipyard = open_world.shipyard
    overview = open_world.url("/ui/")
    chromium.open(overview, 390, 844)
    chromium.screenshot(pictures / "dashboard-overview-phone.png")
    chromium.open(overview)
    shown = main_text(chromium)
    for name, env in shipyard.environments().items():
        assert name in shown
        for agent in env["agents"]:
            assert agent["name"] in shown
            assert agent["version"] in shown
    chromium.screenshot(pictures / "dashboard-overview.png")

    # A push shows up without a reload: the page's own variable survives the refresh.
    wait_for(lambda: chromium.evaluate("document.body.dataset.live") == "on", what="the stream")
    chromium.evaluate("window.sameDocument = true")
    alpha_link = 'a[href="/ui/environments/production/agents/alpha"]'
    chromium.evaluate(f"document.querySelector('{alpha_link}').focus()")
    before = shipyard.version_of("beta", "production")
    sha = open_world.push(
        {
            "agents/gamma.yaml": manifest("gamma"),
            "agents/beta.yaml": manifest("beta", temperature=0.8),
        },
        "Add gamma, warm beta",
    )
    wait_for(lambda: "gamma" in main_text(chromium), what="gamma on the open overview")
    assert chromium.evaluate("window.sameDocument") is True
    # A keyboard user's place survives the refresh.
    focused = chromium.evaluate("document.activeElement.getAttribute('href')")
    assert focused == "/ui/environments/production/agents/alpha"
    after = shipyard.wait_desired("beta", "production", sha)
    shipyard.wait_version("beta", "production", after)

    # Undo from the page: confirm, give a reason, press the button.
    chromium.open(agent_page(open_world, "beta") + "/confirm/undo")
    chromium.evaluate("document.querySelector('input[name=reason]').value = 'from chromium'")
    chromium.evaluate("document.querySelector('form button[type=submit]').click()")
    wait_for(
        lambda: chromium.evaluate("location.pathname") == "/ui/environments/production/agents/beta",
        what="the agent page after undo",
    )
    shipyard.wait_version("beta", "production", before or "")
    wait_for(lambda: "from chromium" in main_text(chromium), what="the pin's reason")
    chromium.screenshot(pictures / "dashboard-agent.png")
    chromium.open(open_world.url("/ui/events"))
    chromium.screenshot(pictures / "dashboard-events.png")
    assert (pictures / "dashboard-overview.png").read_bytes().startswith(b"\x89PNG")


def test_in_chromium_a_canary_is_promoted_and_aborted_and_versions_are_diffed(
    open_world: World, chromium: Chromium, tmp_path: Path
) -> None:
    pictures = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    pictures.mkdir(parents=True, exist_ok=True)
    canary = start_canary(open_world, "eta")
    page = agent_page(open_world, "eta")

    # Traffic split between the two versions, until the rate chart has a line for each:
    # two sampled intervals with requests to both.
    def charted() -> bool:
        for _ in range(10):
            open_world.shipyard.agent("eta", "production", "/charted")
        chromium.open(page)
        lines = "document.querySelectorAll('figure.chart:first-child polyline').length"
        return bool(chromium.evaluate(f"{lines} >= 2"))

    wait_for(charted, timeout=120.0, what="eta's traffic charted")
    legend = main_text(chromium)
    assert canary in legend
    assert "30% of requests" in legend

    # The page is one HTTP response: nothing but the stylesheet and the change stream
    # is fetched to draw it.
    fetched = chromium.evaluate(
        "performance.getEntriesByType('resource').map(function (e) { return e.name; })"
    )
    assert {url.split("?")[0].split(open_world.url(""))[-1] for url in fetched} <= {
        "/ui/static/dashboard.css",
        "/ui/events/stream",
    }, fetched
    chromium.screenshot(pictures / "dashboard-canary.png")
    chromium.open(open_world.url("/ui/"))
    overview = main_text(chromium)
    assert f"30% to {canary}" in overview
    chromium.evaluate("document.getElementById('env-production').scrollIntoView()")
    chromium.screenshot(pictures / "dashboard-overview-canary.png")
    chromium.open(page)

    # Promote: the button leads to a confirm page whose form posts the intent.
    chromium.evaluate("document.querySelector('a[href$=\"/confirm/promote\"]').click()")
    wait_for(
        lambda: chromium.evaluate("location.pathname").endswith("/confirm/promote"),
        what="the promote confirm page",
    )
    chromium.evaluate("document.querySelector('form button[type=submit]').click()")
    wait_for(lambda: canary_paused_at(open_world, "eta", 4), what="the canary at 60 %")
    wait_for(lambda: "60% of requests" in main_text(chromium), what="60 % on the open page")

    # The diff between the first revision and the canary's, chosen in the form.
    chromium.evaluate("document.querySelector('select[name=from]').value = '1'")
    chromium.evaluate("document.querySelector('select[name=to]').value = '2'")
    chromium.evaluate("document.querySelector('#diff + form button').click()")
    wait_for(lambda: "from=1" in chromium.evaluate("location.search"), what="the comparison")
    wait_for(
        lambda: chromium.evaluate("document.readyState") == "complete", what="the diff to load"
    )
    shown = main_text(chromium)
    assert "spec.model.parameters.temperature" in shown
    assert "spec.rollout.strategy" in shown
    chromium.evaluate("document.getElementById('diff').scrollIntoView()")
    chromium.screenshot(pictures / "dashboard-diff.png")

    # Abort: all traffic back to the stable version.
    chromium.evaluate("document.querySelector('a[href$=\"/confirm/abort\"]').click()")
    wait_for(
        lambda: chromium.evaluate("location.pathname").endswith("/confirm/abort"),
        what="the abort confirm page",
    )
    chromium.evaluate("document.querySelector('form button[type=submit]').click()")
    wait_for(
        lambda: (canary_of(open_world, "eta") or {}).get("phase") == "Aborted", what="the abort"
    )
    wait_for(lambda: "Last canary" in main_text(chromium), what="the ended canary on the page")
    assert "Promote…" not in main_text(chromium)


class AttackerSite:
    """Another site's page, on `localhost` (the dashboard is on 127.0.0.1), whose form
    posts itself to the dashboard as soon as it loads."""

    def __init__(self, form_action: str) -> None:
        page = (
            f'<!doctype html><form method="post" action="{form_action}">'
            '<input name="csrf" value="guessed"><input name="reason" value="forged"></form>'
            "<script>document.forms[0].submit()</script>"
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sign_in_with_chromium(world: World, chromium: Chromium, token: str) -> None:
    chromium.open(world.url("/ui/login"))
    chromium.evaluate(f"document.getElementById('token').value = {json.dumps(token)}")
    chromium.evaluate("document.querySelector('form button[type=submit]').click()")
    wait_for(lambda: chromium.evaluate("location.pathname") == "/ui/", what="signed in")


def test_in_chromium_a_cross_site_form_and_a_read_token_cannot_act(
    guarded: World, chromium: Chromium
) -> None:
    sign_in_with_chromium(guarded, chromium, WRITE)
    chromium.open(agent_page(guarded, "beta"))
    assert "Pause…" in main_text(chromium)  # this browser may act, from the dashboard

    # Another site's page posts to the dashboard in the same browser: SameSite=Strict
    # keeps the cookies home, and the post has no session, no token and a wrong CSRF.
    attacker = AttackerSite(agent_page(guarded, "beta") + "/pause")
    try:
        chromium.call("Page.navigate", url=attacker.url)
        wait_for(
            lambda: chromium.evaluate("location.pathname").endswith("/beta/pause"),
            what="the forged post to arrive",
        )
        wait_for(lambda: chromium.evaluate("document.readyState") == "complete", what="load")
    finally:
        attacker.close()
    assert "Sign in first" in main_text(chromium)
    assert pin_of(guarded, "beta") is None

    # A read token sees the pages but no buttons, and a confirm page refuses it.
    chromium.open(guarded.url("/ui/"))
    chromium.evaluate("document.querySelector('header form button').click()")  # sign out
    wait_for(lambda: chromium.evaluate("location.pathname") == "/ui/login", what="signed out")
    sign_in_with_chromium(guarded, chromium, READ)
    chromium.open(agent_page(guarded, "beta"))
    shown = main_text(chromium)
    assert "Sign in with a write token to act" in shown
    assert "Pause…" not in shown
    chromium.open(agent_page(guarded, "beta") + "/confirm/pause")
    assert "Read-only" in main_text(chromium)
    assert pin_of(guarded, "beta") is None
