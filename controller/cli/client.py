"""The CLI's connection to the controller's HTTP API (`/api/v1`).

Where to connect and with which token, first found wins: the `--server` / `--token`
flags, the `SHIPYARD_SERVER` / `SHIPYARD_TOKEN` environment variables, the config file
(`$SHIPYARD_CONFIG`, else `$XDG_CONFIG_HOME/shipyard/config.yaml`, else
`~/.config/shipyard/config.yaml`, holding `server:` and `token:`), then
`http://127.0.0.1:8080` without a token. Every failure becomes an `ApiError` carrying
one line for the user: the API's own `detail` when it sent one. Warnings the API sends
(`Warning: 299 - "..."` headers, e.g. "waiting for leadership: …") are printed on stderr
once each, as kubectl prints the Kubernetes API's.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import click
import httpx
import yaml

from controller.errors import ShipyardError

DEFAULT_SERVER = "http://127.0.0.1:8080"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0

F = TypeVar("F", bound=Callable[..., Any])
_WARNING = re.compile(r'^\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"')


class ApiError(ShipyardError):
    """A request failed; the message is the one line the user sees after `error: `."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Settings:
    server: str
    token: str | None


def config_path() -> Path:
    explicit = os.environ.get("SHIPYARD_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "shipyard" / "config.yaml"


def settings(server: str | None, token: str | None) -> Settings:
    """Flags (which click already filled from the environment), then the config file."""
    config: dict[str, Any] = {}
    if server is None or token is None:
        config = _read_config(config_path())
    chosen = server or _text(config.get("server")) or DEFAULT_SERVER
    return Settings(chosen.rstrip("/"), token or _text(config.get("token")))


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ApiError(f"cannot read {path}: {error.strerror}") from error
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ApiError(f"{path} is not valid YAML: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ApiError(f"{path} must be a mapping with server and token")
    return loaded


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def connection_options(function: F) -> F:
    """`--server` and `--token`, shared by every command that talks to the API."""
    function = click.option(
        "--token",
        envvar="SHIPYARD_TOKEN",
        show_envvar=True,
        help="Bearer token for the API. Default: `token` in the config file.",
    )(function)
    return click.option(
        "--server",
        "-s",
        envvar="SHIPYARD_SERVER",
        show_envvar=True,
        help=f"URL of the Shipyard API. Default: `server` in the config file, else "
        f"{DEFAULT_SERVER}.",
    )(function)


def segment(value: str) -> str:
    """One path segment, escaped so a name can never change the path."""
    return quote(value, safe="")


class Client:
    """A small synchronous client; each method is one API call."""

    def __init__(self, server: str | None = None, token: str | None = None) -> None:
        chosen = settings(server, token)
        self.server = chosen.server
        parts = urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ApiError(f"--server must be an http(s) URL, not {self.server!r}")
        headers = {"accept": "application/json", "user-agent": "shipyard-cli"}
        if chosen.token:
            headers["authorization"] = f"Bearer {chosen.token}"
        self._http = httpx.Client(
            base_url=self.server,
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            # Proxies from the environment apply, except to this machine (as in Go).
            trust_env=not _loopback(parts.hostname or ""),
        )
        self._warned: set[str] = set()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Reads -----------------------------------------------------------------------------

    def environments(self) -> list[dict[str, Any]]:
        return list(self.environment_list()["items"])

    def environment_list(self) -> dict[str, Any]:
        """`items` and `source`: the repository, its default branch and its fetch error."""
        return self.get("/api/v1/environments")

    def environment(self, name: str) -> dict[str, Any]:
        return self.get(f"/api/v1/environments/{segment(name)}")

    def agents(self, environment: str | None = None) -> list[dict[str, Any]]:
        params = {"environment": environment} if environment is not None else None
        return list(self.get("/api/v1/agents", params=params)["items"])

    def describe(self, environment: str, agent: str) -> dict[str, Any]:
        return self.get(f"/api/v1/environments/{segment(environment)}/agents/{segment(agent)}")

    def evals(self, environment: str, agent: str) -> dict[str, Any]:
        return self.get(
            f"/api/v1/environments/{segment(environment)}/agents/{segment(agent)}/evals"
        )

    def revisions(self, agent: str, environment: str) -> list[dict[str, Any]]:
        params = {"agent": agent, "environment": environment}
        return list(self.get("/api/v1/revisions", params=params)["items"])

    def rollouts(
        self, agent: str | None = None, environment: str | None = None
    ) -> list[dict[str, Any]]:
        params = {
            key: value
            for key, value in (("agent", agent), ("environment", environment))
            if value is not None
        }
        return list(self.get("/api/v1/rollouts", params=params)["items"])

    def events(
        self, environment: str | None = None, agent: str | None = None
    ) -> list[dict[str, Any]]:
        params = {
            key: value
            for key, value in (("environment", environment), ("agent", agent))
            if value is not None
        }
        return list(self.get("/api/v1/events", params=params)["items"])

    def logs(
        self,
        environment: str,
        agent: str,
        since: float | None,
        follow: bool,
        *,
        tail: int | None = None,
        previous: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Log lines as the API streams them (JSON lines), until the stream ends;
        `previous`: the last ended instance's output instead of the running one's."""
        path = f"/api/v1/environments/{segment(environment)}/agents/{segment(agent)}/logs"
        params: dict[str, Any] = {"follow": "true" if follow else "false"}
        if previous:
            params["previous"] = "true"
        if since is not None:
            params["since"] = since
        if tail is not None:
            params["tail"] = tail
        # A followed stream may stay quiet for as long as the agent does.
        timeout = httpx.Timeout(None if follow else READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        request = self._http.build_request("GET", path, params=params, timeout=timeout)
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from error
        try:
            if response.status_code >= 400:
                response.read()
                raise _failure(response)
            try:
                for raw in response.iter_lines():
                    if raw.strip():
                        yield json.loads(raw)
            except httpx.HTTPError as error:
                raise ApiError(f"the log stream from {self.server} broke off: {error}") from error
            except ValueError as error:
                raise ApiError(f"the API sent a log line that is not JSON: {error}") from error
        finally:
            response.close()

    def requests(
        self, environment: str, agent: str, version: str | None, limit: int
    ) -> list[dict[str, Any]]:
        path = f"/api/v1/environments/{segment(environment)}/agents/{segment(agent)}/requests"
        params: dict[str, Any] = {"limit": limit}
        if version is not None:
            params["version"] = version
        return list(self.get(path, params=params)["items"])

    # Writes ----------------------------------------------------------------------------

    def undo(
        self, environment: str, agent: str, to_revision: int | None, reason: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason}
        if to_revision is not None:
            body["toRevision"] = to_revision
        # An undo waits for the old version to turn healthy: no read timeout.
        return self.post(self._steer(environment, agent, "undo"), body, timeout=None)

    def pause(self, environment: str, agent: str, reason: str) -> dict[str, Any]:
        return self.post(self._steer(environment, agent, "pause"), {"reason": reason})

    def resume(self, environment: str, agent: str) -> dict[str, Any]:
        return self.post(self._steer(environment, agent, "resume"), None)

    def promote(self, environment: str, agent: str, *, full: bool) -> dict[str, Any]:
        return self.post(self._steer(environment, agent, "promote"), {"full": full})

    def abort(self, environment: str, agent: str) -> dict[str, Any]:
        return self.post(self._steer(environment, agent, "abort"), None)

    def sync(self) -> dict[str, Any]:
        return self.post("/api/v1/sync", None)

    @staticmethod
    def _steer(environment: str, agent: str, verb: str) -> str:
        return f"/api/v1/environments/{segment(environment)}/agents/{segment(agent)}/{verb}"

    # Plumbing --------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._request("GET", path, params=params)

    def post(
        self, path: str, body: dict[str, Any] | None, timeout: float | None = READ_TIMEOUT
    ) -> dict[str, Any]:
        headers = {"x-shipyard-actor": actor()}
        return self._request(
            "POST",
            path,
            json=body if body is not None else {},
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
        )

    def _request(self, method: str, path: str, **arguments: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **arguments)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from error
        self._warn(response)
        if response.status_code >= 400:
            raise _failure(response)
        try:
            body = response.json()
        except ValueError as error:
            raise ApiError(
                f"{self.server}{path} did not answer with JSON (HTTP {response.status_code}); "
                "is --server the Shipyard API?"
            ) from error
        if not isinstance(body, dict):
            raise ApiError(f"{self.server}{path} answered with an unexpected shape")
        return body

    def _warn(self, response: httpx.Response) -> None:
        for value in response.headers.get_list("warning"):
            match = _WARNING.match(value)
            text = re.sub(r"\\(.)", r"\1", match.group(1)) if match else value
            if text not in self._warned:
                self._warned.add(text)
                click.echo(f"Warning: {text}", err=True)

    def _unreachable(self, error: httpx.HTTPError) -> ApiError:
        reason = str(error) or type(error).__name__
        if isinstance(error, httpx.TimeoutException):
            reason = f"timed out ({reason})"
        return ApiError(f"cannot reach the Shipyard API at {self.server}: {reason}")


def actor() -> str:
    """Who is acting, for the audit trail: $USER, else the login name."""
    name = os.environ.get("USER") or os.environ.get("USERNAME")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "cli"
    return name


def _failure(response: httpx.Response) -> ApiError:
    detail: object = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error"))
    status = response.status_code
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(_validation_item(item) for item in detail)
    message = str(detail) if detail else f"the API answered HTTP {status} {response.reason_phrase}"
    if status == 401:
        message += f" (give a token with --token, SHIPYARD_TOKEN or `token:` in {config_path()})"
    return ApiError(message, status)


def _validation_item(item: object) -> str:
    if isinstance(item, dict):
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", ""))
    return str(item)


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
