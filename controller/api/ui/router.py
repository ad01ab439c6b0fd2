"""The dashboard's routes: gather data from the controller, render a page, guard actions.

Reads go straight to the controller and its store (no HTTP round trip to our own API, a
fixed number of store queries per page whatever the number of agents); writes call the
same `Controller.undo / pause / resume` and canary steering (`Controller.steer_canary`)
the API calls. Every page needs a read scope and every post a write scope plus a genuine
CSRF token (see `session`).
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from controller.api import auth, crash_output, tracing
from controller.api.ui import live, log_follow, pages, rates, session, version_diff
from controller.api.ui.markup import FOLLOW_SCRIPT, STREAM, page
from controller.errors import Conflict, NotFound, ShipyardError, Transient
from controller.reconciler import agent_logs, canary
from controller.reconciler.agent_logs import LogOptions
from controller.reconciler.controller import Controller

FORM_LIMIT_BYTES = 16 * 1024
LOG_LINES = 200
REQUESTS_SHOWN = 20
EVENTS_SHOWN = 200
ACTOR = "dashboard"
LogRow = tuple[float | None, str, str]  # when, which stream or pod, the line


class Dashboard:
    def __init__(
        self,
        controller: Controller,
        tokens: auth.Tokens,
        traced: tracing.Tracing | None,
        traffic: rates.RateHistory | None = None,
    ) -> None:
        self.controller = controller
        self.sessions = session.Sessions(tokens)
        self.traced = traced
        self.fingerprints = live.Fingerprints(controller)
        self.rates = traffic or rates.RateHistory(
            rates.registry_reader(controller.metrics.registry)
        )
        self.rates.start()  # when built inside the running controller; else at a first page
        self.stylesheet = (
            resources.files("controller.api.ui").joinpath("static/dashboard.css").read_bytes()
        )

    def respond(
        self,
        request: Request,
        viewer: session.Viewer,
        title: str,
        body: str,
        *,
        status: int = 200,
        live_page: bool = False,
        extra_script: str = "",
        events: live.EventFilter | None = None,
    ) -> HTMLResponse:
        """A page; a live one names the state it shows in its stream's URL, so a change
        between this render and the stream's start still refreshes it."""
        nonce = secrets.token_urlsafe(16)
        query = {"seen": live.digest(self.fingerprints.current(events))}
        if events is not None:
            query |= {"events": "1", "environment": events[0] or "", "agent": events[1] or ""}
        markup = page(
            title,
            body,
            nonce=nonce,
            signed_in=viewer.signed_in,
            csrf=viewer.csrf,
            live=live_page,
            extra_script=extra_script,
            stream=f"{STREAM}?{urlencode(query)}",
        )
        response = HTMLResponse(markup, status_code=status, headers=_headers(nonce))
        session.remember_session(response, request, viewer)
        return response

    def looking(self, request: Request) -> session.Viewer | Response:
        """The viewer, or the way to the sign-in form when they may not read."""
        self.rates.start()
        viewer = self.sessions.viewer(request)
        if viewer.scope is None:
            response = RedirectResponse("/ui/login", status_code=303)
            session.remember_session(response, request, viewer)
            return response
        return viewer


def create_router(
    controller: Controller,
    tokens: auth.Tokens,
    traced: tracing.Tracing | None = None,
    traffic: rates.RateHistory | None = None,
) -> APIRouter:
    """`traffic`: where the charts' numbers come from (default: this process's registry,
    which the local router records into)."""
    board = Dashboard(controller, tokens, traced, traffic)
    router = APIRouter(prefix="/ui", include_in_schema=False)

    @router.get("")
    async def bare() -> Response:
        return RedirectResponse("/ui/", status_code=308)

    @router.get("/static/dashboard.css")
    async def stylesheet() -> Response:
        return Response(
            board.stylesheet,
            media_type="text/css",
            headers={"cache-control": "max-age=300", "x-content-type-options": "nosniff"},
        )

    @router.get("/")
    async def overview(request: Request) -> Response:
        viewer = board.looking(request)
        if isinstance(viewer, Response):
            return viewer
        environments = controller.environments()
        requests = controller.store.review_requests_of(env["branch"] for env in environments)
        pulls = {branch: [r.number for r in found] for branch, found in requests.items()}
        body = pages.overview(environments, pulls, _running_canaries(controller))
        return board.respond(request, viewer, "Overview", body, live_page=True)

    @router.get("/environments/{environment}/agents/{agent}")
    async def agent_page(  # noqa: PLR0917 - FastAPI passes one argument per query field
        request: Request,
        environment: str,
        agent: str,
        previous: bool = False,
        follow: bool = False,
        compare_from: str | None = Query(default=None, alias="from"),
        compare_to: str | None = Query(default=None, alias="to"),
    ) -> Response:
        viewer = board.looking(request)
        if isinstance(viewer, Response):
            return viewer
        try:
            status = controller.status_of(environment, agent)
        except NotFound as error:
            return board.respond(
                request, viewer, "Not found", pages.problem("Not found", str(error)), status=404
            )
        store = controller.store
        pins = [p for p in store.pins(environment) if p.agent == agent]
        lines, note = await _logs(controller, environment, agent, previous=previous)
        revisions = store.revisions(agent, environment)
        view = pages.AgentView(
            environment=environment,
            status=status.as_dict(),
            rollouts=store.rollouts(agent, environment),
            revisions=revisions,
            pin=pins[0] if pins else None,
            events=store.events(environment, agent, limit=pages.AGENT_EVENTS_SHOWN),
            requests=[
                record.as_dict()
                for record in traced.recent.of(agent, environment, None, REQUESTS_SHOWN)
            ]
            if traced is not None
            else None,
            logs=lines,
            logs_note=note,
            previous=previous,
            comparison=version_diff.choose(
                agent, revisions, status.version, compare_from, compare_to
            ),
            traffic=board.rates.of(agent, environment),
            canary=controller.canaries.as_dict(environment, agent),
            canary_running=controller.canaries.running(environment, agent),
            follow=follow,
        )
        body = pages.agent(view, may_write=viewer.may_write)
        return board.respond(
            request,
            viewer,
            f"{agent} in {environment}",
            body,
            live_page=True,
            extra_script=FOLLOW_SCRIPT if follow and not previous else "",
        )

    @router.get("/environments/{environment}/agents/{agent}/logs/stream")
    async def follow_logs(
        request: Request, environment: str, agent: str, since: str | None = None
    ) -> Response:
        viewer = board.sessions.viewer(request)
        if viewer.scope is None:
            raise HTTPException(401, "sign in at /ui/login first")
        try:
            controller.status_of(environment, agent)
        except NotFound as error:
            raise HTTPException(404, str(error)) from error
        cutoff = log_follow.after(request.headers.get("last-event-id"), since)
        return StreamingResponse(
            log_follow.stream(controller, environment, agent, cutoff),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    @router.get("/events")
    async def events_page(
        request: Request, environment: str | None = None, agent: str | None = None
    ) -> Response:
        viewer = board.looking(request)
        if isinstance(viewer, Response):
            return viewer
        environment, agent = environment or None, agent or None
        shown = controller.store.events(environment, agent, limit=EVENTS_SHOWN)
        names = sorted(controller.statuses)
        agents = sorted({a for s in controller.statuses.values() for a in s.agents})
        body = pages.events(shown, names, agents, environment, agent)
        return board.respond(
            request, viewer, "Events", body, live_page=True, events=(environment, agent)
        )

    @router.get("/events/stream")
    async def stream(
        request: Request,
        events: bool = False,
        environment: str | None = None,
        agent: str | None = None,
        seen: str | None = None,
    ) -> Response:
        viewer = board.sessions.viewer(request)
        if viewer.scope is None:
            raise HTTPException(401, "sign in at /ui/login first")
        watched = (environment or None, agent or None) if events else None
        return StreamingResponse(
            live.changes(board.fingerprints, board.fingerprints.current(watched), watched, seen),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    _actions(router, board)
    return router


def _actions(router: APIRouter, board: Dashboard) -> None:
    """Sign-in, sign-out and the steering posts, each checking its CSRF token."""
    controller, tokens = board.controller, board.sessions.tokens

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        viewer = board.sessions.viewer(request)
        if not tokens.enabled:
            return RedirectResponse("/ui/", status_code=303)
        return board.respond(request, viewer, "Sign in", pages.login(viewer.csrf))

    @router.post("/login")
    async def login(request: Request) -> Response:
        viewer = board.sessions.viewer(request)
        form = await _form(request)
        if not board.sessions.genuine(request, viewer, form.get("csrf", "")):
            return _refused(board, request, viewer)
        token = form.get("token", "").strip()
        if board.sessions.scope_of(token) is None:
            body = pages.login(viewer.csrf, "Unknown token.")
            return board.respond(request, viewer, "Sign in", body, status=401)
        response = RedirectResponse("/ui/", status_code=303)
        session.sign_in(response, request, token)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        viewer = board.sessions.viewer(request)
        form = await _form(request)
        if not board.sessions.genuine(request, viewer, form.get("csrf", "")):
            return _refused(board, request, viewer)
        response = RedirectResponse("/ui/login", status_code=303)
        session.sign_out(response)
        return response

    @router.get("/environments/{environment}/agents/{agent}/confirm/{action}")
    async def confirm(request: Request, environment: str, agent: str, action: str) -> Response:
        viewer = board.looking(request)
        if isinstance(viewer, Response):
            return viewer
        if action not in pages.ACTIONS:
            return _no_such_action(board, request, viewer, action)
        if not viewer.may_write:
            return _read_only(board, request, viewer)
        body = pages.confirm(environment, agent, action, viewer.csrf)
        return board.respond(request, viewer, f"{pages.LABELS[action]} {agent}?", body)

    @router.post("/environments/{environment}/agents/{agent}/{action}")
    async def act(request: Request, environment: str, agent: str, action: str) -> Response:
        viewer = board.sessions.viewer(request)
        form = await _form(request)
        if viewer.scope is None:
            body = pages.problem("Sign in first", "Sign in with a write token to act.")
            return board.respond(request, viewer, "Sign in first", body, status=401)
        if not board.sessions.genuine(request, viewer, form.get("csrf", "")):
            return _refused(board, request, viewer)
        if not viewer.may_write:
            return _read_only(board, request, viewer)
        reason = form.get("reason", "")[:1000]
        steps: dict[str, Callable[[], Any]] = {
            "undo": lambda: controller.undo(environment, agent, None, ACTOR, reason),
            # While a canary runs, pause holds it at its step and resume walks on, as the API.
            "pause": lambda: (
                controller.steer_canary(environment, agent, canary.PAUSE, ACTOR)
                if controller.canaries.running(environment, agent)
                else controller.pause(environment, agent, ACTOR, reason)
            ),
            "resume": lambda: (
                controller.steer_canary(environment, agent, canary.RESUME, ACTOR)
                if controller.canaries.held(environment, agent)
                else controller.resume(environment, agent, ACTOR)
            ),
            "promote": lambda: controller.steer_canary(environment, agent, canary.PROMOTE, ACTOR),
            "promote-full": lambda: controller.steer_canary(
                environment, agent, canary.PROMOTE_FULL, ACTOR
            ),
            "abort": lambda: controller.steer_canary(environment, agent, canary.ABORT, ACTOR),
        }
        if action not in steps:
            return _no_such_action(board, request, viewer, action)
        try:
            result = steps[action]()
            if inspect.isawaitable(result):
                await result
        except (NotFound, Conflict, Transient) as error:
            code = (
                404 if isinstance(error, NotFound) else 409 if isinstance(error, Conflict) else 503
            )
            title = f"Could not {pages.LABELS[action].lower()}"
            return board.respond(
                request, viewer, title, pages.problem(title, str(error)), status=code
            )
        return RedirectResponse(pages.agent_href(environment, agent), status_code=303)


def _running_canaries(controller: Controller) -> pages.Canaries:
    book = controller.canaries
    return {
        slot: progress.as_dict()
        for slot, progress in list(book.progress.items())
        if book.running(*slot)
    }


def _no_such_action(
    board: Dashboard, request: Request, viewer: session.Viewer, action: str
) -> Response:
    known = ", ".join(pages.ACTIONS)
    body = pages.problem("Not found", f'no action "{action}" ({known})')
    return board.respond(request, viewer, "Not found", body, status=404)


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (first value of each); empty for anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def _refused(board: Dashboard, request: Request, viewer: session.Viewer) -> Response:
    body = pages.problem(
        "Refused",
        "This form did not come from this dashboard in this browser session "
        "(missing or stale CSRF token, or another site's page). Reload the page and try again.",
    )
    return board.respond(request, viewer, "Refused", body, status=403)


def _read_only(board: Dashboard, request: Request, viewer: session.Viewer) -> Response:
    body = pages.problem(
        "Read-only", "Your token may read but not act; sign in with a write token."
    )
    return board.respond(request, viewer, "Read-only", body, status=403)


async def _logs(
    controller: Controller, environment: str, agent: str, *, previous: bool
) -> tuple[list[LogRow], str]:
    """The agent's last log lines (or its previous instance's) and a note on what is shown."""
    target = controller.target
    if crash_output.keeps_instances(target):
        if previous:
            try:
                ended = crash_output.previous(target, environment, agent, None)
            except HTTPException as error:
                return [], str(error.detail)
            ended_lines = ended.output[-LOG_LINES:]
            shown: list[LogRow] = [(line.timestamp, line.stream, line.line) for line in ended_lines]
            return shown, ended.message
        process = target.process(environment, agent)
        if process is None:
            return [], f"{agent} has no running process in {environment}"
        kept = list(process.logs.lines(None))[-LOG_LINES:]
        current: list[LogRow] = [(line.timestamp, line.stream, line.line) for line in kept]
        return current, ""
    try:
        entries = await agent_logs.from_pods(
            controller, environment, agent, LogOptions(None, LOG_LINES, previous, False)
        )
    except ShipyardError as error:
        return [], str(error)
    if entries is None:
        return [], "this target keeps no logs"
    lines: list[LogRow] = [
        (entry.get("timestamp"), str(entry.get("source", "")), str(entry.get("line", "")))
        async for entry in entries
    ]
    return lines[-LOG_LINES:], ""


def _headers(nonce: str) -> dict[str, str]:
    return {
        "content-security-policy": (
            "default-src 'none'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            f"script-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'"
        ),
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
        "cache-control": "no-store",
    }
