"""The one module that talks to the `kubernetes` library.

A thin synchronous wrapper over the official client's `DynamicClient`: server-side apply
with field manager `shipyard`, get, list, delete and PUT, for any kind discovery knows.
It retries what is worth retrying (429 honouring Retry-After, 5xx, timeouts, refused
connections, and 409 on a server-side apply, which carries no resourceVersion and so can
only have lost a race) with capped exponential backoff, maps failures onto `errors`, refuses any
call `permissions.REQUIRED` does not declare, and counts calls by verb for tests and
benchmarks.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import random
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as kubeconfig
from kubernetes import watch as k8s_watch
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from controller.targets.kubernetes import errors, permissions

FIELD_MANAGER = "shipyard"
WRITE_VERBS = frozenset({"create", "patch", "update", "delete"})
CONNECTIONS = 32
TOKEN_CHECK_INTERVAL = 1.0  # seconds between checks that the bearer token is still fresh
T = TypeVar("T")
KubeObject = dict[str, Any]
KubeObjects = list[KubeObject]


class KubeClient:
    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        retries: int = 5,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_client = api_client
        # A request that hangs is a transient failure like any other: time out, retry.
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._lock = threading.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        cache = Path(tempfile.gettempdir()) / f"shipyard-discovery-{os.getpid()}.json"
        self._dynamic = self._retrying(
            "discovery", lambda: DynamicClient(api_client, cache_file=str(cache))
        )

    @classmethod
    def from_config(
        cls, kubeconfig_path: str | None = None, context: str | None = None
    ) -> KubeClient:
        """From a kubeconfig (path, `KUBECONFIG`, ~/.kube/config) or in-cluster config."""
        configuration = k8s.Configuration()
        try:
            if kubeconfig_path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                kubeconfig.load_incluster_config(client_configuration=configuration)
            else:
                kubeconfig.load_kube_config(
                    config_file=kubeconfig_path,
                    context=context,
                    client_configuration=configuration,
                )
        except (kubeconfig.ConfigException, OSError) as error:
            raise errors.Invalid(f"cannot load Kubernetes configuration: {error}") from error
        # One keep-alive connection per thread that may call at once (the target's write
        # pool, its watches, log streams, the default executor's reads); urllib3 drops
        # and re-opens connections past this size (2 cores: 10 by default).
        configuration.connection_pool_maxsize = max(
            configuration.connection_pool_maxsize or 0, CONNECTIONS
        )
        # The loaders' token hook runs before every request and re-runs their whole
        # `_set_config`, whose `host` assignment re-reads the proxy environment: a sixth
        # of the client's CPU per write. Tokens are renewed minutes before they expire
        # (5 for a kubeconfig's, 1 for the in-cluster file), so once a second is as good.
        hook = configuration.refresh_api_key_hook
        if hook is not None:
            configuration.refresh_api_key_hook = _ThrottledHook(TOKEN_CHECK_INTERVAL, hook)
        # Leader election builds its own API objects from the default configuration.
        k8s.Configuration.set_default(configuration)
        return cls(k8s.ApiClient(configuration))

    def own_credentials(self) -> frozenset[str]:
        """What this client authenticates with: its bearer token, password or client key.

        Read at each call, since an in-cluster token is refreshed from its file.
        """
        configuration = self.api_client.configuration
        values = [configuration.password]
        for value in (configuration.api_key or {}).values():
            values.append(str(value).removeprefix("Bearer ").strip())
        if configuration.key_file:
            # Unreadable: no key to compare with (and the cluster refuses the client anyway).
            with contextlib.suppress(OSError, UnicodeDecodeError):
                values.append(Path(configuration.key_file).read_text(encoding="utf-8").strip())
        return frozenset(value for value in values if value)

    # Calls --------------------------------------------------------------------------

    def apply(
        self, obj: KubeObject, *, force: bool = True, field_manager: str = FIELD_MANAGER
    ) -> KubeObject:
        """Server-side apply `obj` as `field_manager` (a second manager owns fields the
        main one's applies must leave alone, such as a canary's weight)."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        self._declared(resource, "patch")
        name, namespace = obj["metadata"].get("name"), obj["metadata"].get("namespace")
        if not name:
            raise errors.Invalid(f"cannot apply a {obj['kind']} without metadata.name")
        if resource.namespaced and not namespace:
            raise errors.Invalid(f"cannot apply the {obj['kind']} {name} without a namespace")
        # Serialized here, once: given a dict, the official client walks it to sanitize
        # it before its own json.dumps; given text it sends it as it is (JSON is YAML).
        body = json.dumps(obj, separators=(",", ":"))
        result = self._retrying(
            "patch",
            lambda: self._dynamic.server_side_apply(
                resource,
                body=body,
                name=name,
                namespace=namespace,
                field_manager=field_manager,
                force_conflicts=force,
                serializer=_raw,
                _request_timeout=self.timeout,
            ),
            retry_conflicts=True,
        )
        return dict(result)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None:
        resource = self._resource(api_version, kind)
        self._declared(resource, "get")
        try:
            result = self._retrying(
                "get",
                lambda: resource.get(
                    name=name,
                    namespace=namespace,
                    serializer=_raw,
                    _request_timeout=self.timeout,
                ),
            )
        except errors.NotFound:
            return None
        return dict(result)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[KubeObject]:
        return self.list_versioned(api_version, kind, namespace, label_selector)[0]

    def list_versioned(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> tuple[KubeObjects, str]:
        """The items, and the list's resourceVersion: where a watch picks up from."""
        resource = self._resource(api_version, kind)
        self._declared(resource, "list")
        result = self._retrying(
            "list",
            lambda: resource.get(
                namespace=namespace,
                label_selector=label_selector,
                serializer=_raw,
                _request_timeout=self.timeout,
            ),
        )
        items = result.get("items") or []
        version = str((result.get("metadata") or {}).get("resourceVersion") or "")
        # Lists leave out each item's kind; put it back so items can be applied again.
        return [{"apiVersion": api_version, "kind": kind, **item} for item in items], version

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        label_selector: str | None,
        resource_version: str,
        *,
        timeout_seconds: int,
    ) -> WatchStream:
        """Changes after `resource_version`, as (type, object) pairs, BOOKMARKs included.

        Not retried: the caller (an `informer`) lists again after any failure. A 410 (the
        version was compacted away) raises `errors.Expired`.
        """
        resource = self._resource(api_version, kind)
        self._declared(resource, "watch")
        with self._lock:
            self.calls["watch"] += 1
        return WatchStream(resource, namespace, label_selector, resource_version, timeout_seconds)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete one object; False when it was already gone."""
        resource = self._resource(api_version, kind)
        self._declared(resource, "delete")
        try:
            self._retrying(
                "delete",
                lambda: resource.delete(
                    name=name,
                    namespace=namespace,
                    propagation_policy="Background",
                    _request_timeout=self.timeout,
                ),
            )
        except errors.NotFound:
            return False
        return True

    def create(self, obj: KubeObject) -> KubeObject:
        resource = self._resource(obj["apiVersion"], obj["kind"])
        self._declared(resource, "create")
        namespace = obj["metadata"].get("namespace")
        result = self._retrying(
            "create",
            lambda: resource.create(
                body=obj, namespace=namespace, serializer=_raw, _request_timeout=self.timeout
            ),
        )
        return dict(result)

    def replace(self, obj: KubeObject) -> KubeObject:
        """PUT with the object's resourceVersion: `Conflict` if someone wrote in between."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        self._declared(resource, "update")
        namespace = obj["metadata"].get("namespace")
        result = self._retrying(
            "update",
            lambda: resource.replace(
                body=obj, namespace=namespace, serializer=_raw, _request_timeout=self.timeout
            ),
        )
        return dict(result)

    def pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        timestamps: bool = False,
        follow: bool = False,
    ) -> LogStream:
        """A pod's log as the kubelet serves it (`kubectl logs`); `follow` keeps it open."""
        # The subresource is its own RBAC resource: pods/log.
        if not permissions.allowed("", "pods/log", "get"):
            raise errors.UndeclaredCall("get pods/log (core) is not in permissions.REQUIRED")
        api = k8s.CoreV1Api(self.api_client)
        options: dict[str, Any] = {
            "container": container,
            "previous": previous or None,
            "tail_lines": tail_lines,
            "since_seconds": since_seconds,
            "timestamps": timestamps or None,
            "follow": follow or None,
        }
        response = self._retrying(
            "log",
            lambda: api.read_namespaced_pod_log(
                name,
                namespace,
                **{key: value for key, value in options.items() if value is not None},
                _preload_content=False,
                _request_timeout=None if follow else self.timeout,
            ),
        )
        return LogStream(response)

    def writes(self) -> int:
        return sum(count for verb, count in self.calls.items() if verb in WRITE_VERBS)

    # Plumbing -----------------------------------------------------------------------

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._retrying(
                "discovery",
                lambda: self._dynamic.resources.get(api_version=api_version, kind=kind),
            )
        except ResourceNotFoundError as error:
            raise errors.Invalid(f"the cluster does not serve {kind} in {api_version}") from error

    def _declared(self, resource: Any, verb: str) -> None:
        group = resource.group or ""
        if not permissions.allowed(group, resource.name, verb):
            raise errors.UndeclaredCall(
                f"{verb} {resource.name} ({group or 'core'}) is not in permissions.REQUIRED"
            )

    def _retrying(self, verb: str, call: Callable[[], T], *, retry_conflicts: bool = False) -> T:
        attempt = 0
        retryable: tuple[type[errors.ApiError], ...] = (errors.Transient,)
        if retry_conflicts:
            retryable = (errors.Transient, errors.Conflict)
        while True:
            with self._lock:
                self.calls[verb] += 1
            try:
                return call()
            except k8s.ApiException as error:
                mapped = _mapped(error)
                if not isinstance(mapped, retryable) or attempt >= self.retries:
                    raise mapped from error
                delay = _retry_after(error) or self._backoff(attempt)
            except (urllib3.exceptions.HTTPError, OSError) as error:
                if attempt >= self.retries:
                    raise errors.Transient(f"Kubernetes API unreachable: {error}") from error
                delay = self._backoff(attempt)
            attempt += 1
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * 2**attempt)
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311 - jitter


class LogStream:
    """An open pod log: its lines as they come; `stop` from another thread ends them."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def lines(self) -> Iterator[str]:
        pending = b""
        try:
            for chunk in self._response.stream(4096, decode_content=True):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", "replace")
            if pending:
                yield pending.decode("utf-8", "replace")
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError):
            return  # stopped, or the stream broke: the lines so far are what there is
        finally:
            self._response.release_conn()

    def stop(self) -> None:
        # Shut the socket so a read blocked in another thread returns now.
        connection = getattr(self._response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()


class WatchStream:
    """One open watch; `stop` from another thread ends `events` promptly."""

    def __init__(
        self,
        resource: Any,
        namespace: str | None,
        label_selector: str | None,
        resource_version: str,
        timeout_seconds: int,
    ) -> None:
        self._resource = resource
        self._namespace = namespace
        self._selector = label_selector
        self._version = resource_version
        self._timeout = timeout_seconds
        self._watcher = k8s_watch.Watch()

    def events(self) -> Iterator[tuple[str, KubeObject]]:
        try:
            for event in self._watcher.stream(
                self._resource.get,
                namespace=self._namespace,
                label_selector=self._selector,
                resource_version=self._version,
                timeout_seconds=self._timeout,
                allow_watch_bookmarks=True,
                serialize=False,
                deserialize=False,
                # A silent connection is a dead one: the server sends bookmarks meanwhile.
                _request_timeout=(10, self._timeout + 30),
            ):
                yield str(event.get("type", "")), dict(event.get("object") or {})
        except k8s.ApiException as error:
            raise _mapped(error) from error
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise errors.Transient(f"watch of {self._resource.kind} broken: {error}") from error

    def stop(self) -> None:
        self._watcher.stop()


class _ThrottledHook:
    """A configuration's token hook, skipped when it last ran under `seconds` ago.

    The kubeconfig loader's hook installs itself again each time it runs; it is wrapped
    again then, so the throttle stays in place."""

    def __init__(self, seconds: float, hook: Callable[[k8s.Configuration], None]) -> None:
        self.seconds = seconds
        self.hook = hook
        self._lock = threading.Lock()
        self._last_run = -math.inf

    def __deepcopy__(self, memo: dict[int, Any]) -> _ThrottledHook:
        # The official client copies configurations (`get_default_copy`); a lock cannot be.
        return _ThrottledHook(self.seconds, self.hook)

    def __call__(self, configuration: k8s.Configuration) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last_run < self.seconds:
                return
            self.hook(configuration)  # a failure is tried again by the next request
            self._last_run = now
            installed = configuration.refresh_api_key_hook
            if installed is not self and installed is not None:
                self.hook = installed
                configuration.refresh_api_key_hook = self


def _raw(client: Any, data: Any) -> Any:
    """Keep responses as plain JSON: the dynamic client's wrappers cost far more than the
    call itself on large lists."""
    return data


def _mapped(error: k8s.ApiException) -> errors.ApiError:
    status = int(error.status or 0)
    message = _message(error)
    if status == 404:
        return errors.NotFound(message, status)
    if status == 409:
        return errors.Conflict(message, status)
    if status == 410:
        return errors.Expired(message, status)
    if status == 403:
        return errors.Forbidden(message, status)
    if status in (400, 415, 422):
        return errors.Invalid(message, status)
    if status == 429 or status >= 500 or status == 0:
        return errors.Transient(message, status)
    return errors.ApiError(message, status)


def _message(error: k8s.ApiException) -> str:
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    detail = body.get("message") if isinstance(body, dict) else None
    return f"{error.status} {error.reason}: {detail or error.body or ''}".strip()


def _retry_after(error: k8s.ApiException) -> float | None:
    headers = error.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return min(float(value), 30.0) if value is not None else None
    except ValueError:
        return None
