"""A test-only kubelet for the fake API server: pods run as local processes and serve HTTP.

Without it the fake's pods only carry a status (`pods.py`); with it a pod is a real
process that answers requests, so Shipyard's gateway can be tested with real traffic.

- **Images** are a table the test gives: image name → the local command that stands in
  for its entrypoint (and the image's own `ENV`, and a working directory). A container's
  `command`/`args`, when the pod spec has them, win over the table, as in a cluster. An
  image the table lacks shows `ErrImagePull`.
- **Addresses**: each pod gets its own loopback address, drawn at random from
  127.0.0.0/8 and checked free for the pod's container port (several test runs share
  the machine), reported as `status.podIP`. The process gets `HOST=<podIP>` on top of
  its environment (and `HOSTNAME=<pod name>`, as a container has): there is no network
  namespace, so binding all interfaces would make two pods of one Deployment collide on
  their common container port. Callers connect to `podIP:containerPort`, exactly as in
  a cluster.
- **Environment** from the pod spec: `value`, `secretKeyRef`, `configMapKeyRef` and
  `fieldRef` (`status.podIP`, `metadata.name`, `metadata.namespace`); a missing Secret
  or ConfigMap shows `CreateContainerConfigError`. Volumes are not mounted.
- **Status**: `Running` at once with `Ready=False`; `Ready=True` once the readiness
  probe's `httpGet` answers 2xx/3xx (no probe: as soon as the port accepts). A process
  that exits is restarted with a doubling back-off (CrashLoopBackOff meanwhile, with
  `lastState.terminated` and `restartCount`), as `restartPolicy: Always` does.
- **Stopping**: a deleted pod's process gets SIGTERM, then SIGKILL after a grace period.
- **Crashes a test sets** (`fake.pods.set_crash`) win: such pods are not run, and keep
  the crash status the pod controller gives them.

Attaching it (`Kubelet(fake, images).start()`) tells the fake's pod controller to leave
healthy pods' status to the kubelet (the hook in `pods.py`). Output goes to
`<log_dir>/<namespace>_<pod>.log`.
"""

from __future__ import annotations

import base64
import http.client
import os
import queue
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.fake_apiserver import operations
from tests.fake_apiserver.store import Event

if TYPE_CHECKING:
    from tests.fake_apiserver.server import FakeApiServer

Json = dict[str, Any]
_PROBE_INTERVAL = 0.05
_STOP_GRACE = 5.0
_MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class Image:
    """What the kubelet runs for a container image: a local command in a directory."""

    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: Path | None = None


class ConfigError(Exception):
    """A container's environment refers to something missing (CreateContainerConfigError)."""


@dataclass
class _Pod:
    namespace: str
    name: str
    uid: str
    address: str
    port: int
    probe_path: str | None
    command: list[str]
    env: dict[str, str]
    workdir: Path | None
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    ready: bool = False
    restarts: int = 0
    last_exit: int | None = None
    next_start: float = 0.0
    stopped: threading.Event = field(default_factory=threading.Event)


class Kubelet:
    def __init__(
        self,
        fake: FakeApiServer,
        images: Mapping[str, Image],
        *,
        log_dir: Path | None = None,
    ) -> None:
        self.fake = fake
        self.images = dict(images)
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="fake-kubelet-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._pods: dict[tuple[str, str], _Pod] = {}
        self._lock = threading.Lock()
        self._events: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._work, name="fake-kubelet", daemon=True)
        self._stopping = False

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> Kubelet:
        self.fake.pods.kubelet = self
        self.fake.deployments.pods_ready = self.pods_ready
        self.fake.store.subscribe(self._on_event)
        self._worker.start()
        for pod in self.fake.store.items(self._pod_key):
            self._events.put(
                Event(0, "ADDED", self._pod_key, pod["metadata"]["namespace"], pod, None)
            )
        return self

    def stop(self) -> None:
        """Stop every pod's process (the pods stay in the API, as after a node loss)."""
        self._stopping = True
        self.fake.deployments.pods_ready = None
        self.fake.pods.kubelet = None
        self._events.put(None)
        self._worker.join(timeout=10)
        with self._lock:
            pods = list(self._pods.values())
            self._pods.clear()
        for pod in pods:
            self._stop_pod(pod)

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests read -----------------------------------------------------------------

    def address(self, namespace: str, name: str) -> tuple[str, int] | None:
        """Where the pod's container listens, once the kubelet runs it."""
        with self._lock:
            pod = self._pods.get((namespace, name))
        return (pod.address, pod.port) if pod is not None else None

    def pods_ready(self, namespace: str, replicaset: str) -> bool:
        """Whether the ReplicaSet's wanted number of pods run here and are ready."""
        rt = self.fake.registry.find("apps", "v1", "replicasets")
        assert rt is not None
        live = self.fake.store.get(rt.key, namespace, replicaset)
        if live is None:
            return False
        wanted = int((live.get("spec") or {}).get("replicas", 1))
        with self._lock:
            ready = [
                pod
                for (pod_namespace, name), pod in self._pods.items()
                if pod_namespace == namespace and name.startswith(f"{replicaset}-") and pod.ready
            ]
        return len(ready) >= wanted

    def running(self) -> list[tuple[str, str]]:
        """(namespace, name) of every pod whose process is alive."""
        with self._lock:
            pods = list(self._pods.values())
        return sorted(
            (pod.namespace, pod.name)
            for pod in pods
            if pod.process is not None and pod.process.poll() is None
        )

    def kill(self, namespace: str, name: str) -> None:
        """Kill a pod's process, as an OOM kill or a crash would (it is restarted)."""
        with self._lock:
            pod = self._pods.get((namespace, name))
        if pod is not None and pod.process is not None:
            pod.process.kill()

    # -- events --------------------------------------------------------------------------

    @property
    def _pod_key(self) -> str:
        rt = self.fake.registry.find("", "v1", "pods")
        assert rt is not None
        return rt.key

    def _on_event(self, event: Event) -> None:
        # Called under the store's lock: hand over, never block or write from here.
        if event.key == self._pod_key:
            self._events.put(event)

    def _work(self) -> None:
        while True:
            event = self._events.get()
            if event is None or self._stopping:
                return
            meta = event.obj["metadata"]
            slot = (meta["namespace"], meta["name"])
            gone = event.type == "DELETED" or bool(meta.get("deletionTimestamp"))
            with self._lock:
                known = self._pods.get(slot)
                if known is not None and (gone or known.uid != meta.get("uid")):
                    del self._pods[slot]
            if known is not None and (gone or known.uid != meta.get("uid")):
                threading.Thread(target=self._stop_pod, args=(known,), daemon=True).start()
                known = None
            if gone or known is not None or not (event.obj.get("spec") or {}).get("nodeName"):
                continue
            self._admit(event.obj)

    def _admit(self, pod: Json) -> None:
        meta = pod["metadata"]
        containers = (pod.get("spec") or {}).get("containers") or []
        if not containers:
            return
        owners = [ref.get("name", "") for ref in meta.get("ownerReferences") or []]
        if any(self.fake.pods.crashing(meta["namespace"], owner) for owner in owners):
            return  # a crash the test set: the pod controller shows it, nothing runs
        container = containers[0]
        image = self.images.get(str(container.get("image", "")))
        command = [*(container.get("command") or []), *(container.get("args") or [])]
        if not command and image is None:
            self._write_waiting(pod, "ErrImagePull", f'image "{container.get("image")}" not known')
            return
        if not command and image is not None:
            command = list(image.command)
        port = _container_port(container)
        address = _free_address(port)
        try:
            env = self._environment(pod, container, address)
        except ConfigError as error:
            self._write_waiting(pod, "CreateContainerConfigError", str(error))
            return
        base_env = dict(image.env) if image is not None else {}
        state = _Pod(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=str(meta.get("uid", "")),
            address=address,
            port=port,
            probe_path=_probe_path(container),
            command=command,
            # HOSTNAME: a container's host name is its pod's name.
            env={**os.environ, **base_env, **env, "HOST": address, "HOSTNAME": meta["name"]},
            workdir=image.workdir if image is not None else None,
            log_path=self.log_dir / f"{meta['namespace']}_{meta['name']}.log",
        )
        with self._lock:
            self._pods[(state.namespace, state.name)] = state
        threading.Thread(target=self._run_pod, args=(state,), daemon=True).start()

    # -- one pod -------------------------------------------------------------------------

    def _run_pod(self, pod: _Pod) -> None:
        """Start, probe and restart one pod's process until the pod goes."""
        while not pod.stopped.is_set():
            if pod.process is None or pod.process.poll() is not None:
                if pod.process is not None:  # it exited: back off, then start again
                    pod.last_exit = pod.process.returncode
                    pod.restarts += 1
                    pod.ready = False
                    backoff = min(_MAX_BACKOFF, 0.25 * 2 ** (pod.restarts - 1))
                    pod.next_start = time.monotonic() + backoff
                    self._write_status(pod, crashed=True)
                    pod.process = None
                if time.monotonic() < pod.next_start:
                    pod.stopped.wait(_PROBE_INTERVAL)
                    continue
                pod.process = self._spawn(pod)
                if pod.stopped.is_set() and pod.process is not None:
                    pod.process.kill()  # the pod went while it started
                    pod.process.wait()
                    return
                self._write_status(pod)
            elif not pod.ready and self._probe(pod):
                pod.ready = True
                self._write_status(pod)
            pod.stopped.wait(_PROBE_INTERVAL)

    def _spawn(self, pod: _Pod) -> subprocess.Popen[bytes] | None:
        with pod.log_path.open("ab") as log:
            try:
                return subprocess.Popen(
                    pod.command,
                    env=pod.env,
                    cwd=pod.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: stopping reaches its children
                )
            except OSError as error:
                log.write(f"kubelet: cannot start {pod.command}: {error}\n".encode())
                return None

    def _probe(self, pod: _Pod) -> bool:
        if pod.probe_path is None:
            try:
                with socket.create_connection((pod.address, pod.port), timeout=1):
                    return True
            except OSError:
                return False
        connection = http.client.HTTPConnection(pod.address, pod.port, timeout=1)
        try:
            connection.request("GET", pod.probe_path)
            return 200 <= connection.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _stop_pod(self, pod: _Pod) -> None:
        pod.stopped.set()
        process = pod.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    # -- status --------------------------------------------------------------------------

    def _write_status(self, pod: _Pod, *, crashed: bool = False) -> None:
        if pod.stopped.is_set():
            return
        stamp = operations.now()
        live = self.fake.store.get(self._pod_key, pod.namespace, pod.name)
        if live is None or live["metadata"].get("uid") != pod.uid:
            return
        container = ((live.get("spec") or {}).get("containers") or [{}])[0]
        flag = "True" if pod.ready else "False"
        not_ready = {} if pod.ready else {"reason": "ContainersNotReady"}
        container_status: Json = {
            "name": container.get("name", ""),
            "image": container.get("image", ""),
            "imageID": "",
            "ready": pod.ready,
            "restartCount": pod.restarts,
            "started": not crashed and pod.process is not None,
        }
        if crashed or pod.process is None:
            container_status["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container in pod {pod.name}",
                }
            }
        else:
            container_status["state"] = {"running": {"startedAt": stamp}}
            container_status["containerID"] = f"fake-kubelet://{pod.process.pid}"
        if pod.last_exit is not None:
            container_status["lastState"] = {
                "terminated": {
                    "exitCode": pod.last_exit,
                    "reason": "Error" if pod.last_exit else "Completed",
                    "finishedAt": stamp,
                }
            }
        status = {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
                {"type": "Ready", "status": flag, "lastTransitionTime": stamp, **not_ready},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp,
                 **not_ready},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            ],
            "hostIP": "127.0.0.1",
            "podIP": pod.address,
            "podIPs": [{"ip": pod.address}],
            "startTime": stamp,
            "containerStatuses": [container_status],
            "qosClass": "Burstable",
        }  # fmt: skip
        self._update_status(pod.namespace, pod.name, status)

    def _write_waiting(self, pod: Json, reason: str, message: str) -> None:
        meta = pod["metadata"]
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        stamp = operations.now()
        status = {
            "phase": "Pending",
            "conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": stamp,
                 "reason": "ContainersNotReady"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            ],
            "containerStatuses": [
                {
                    "name": container.get("name", ""),
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
            ],
        }  # fmt: skip
        self._update_status(meta["namespace"], meta["name"], status)

    def _update_status(self, namespace: str, name: str, status: Json) -> None:
        rt = self.fake.registry.find("", "v1", "pods")
        assert rt is not None
        self.fake.api.update_as_controller(
            rt, namespace, name, lambda o: o.__setitem__("status", status), subresource="status"
        )

    # -- environment ---------------------------------------------------------------------

    def _environment(self, pod: Json, container: Json, address: str) -> dict[str, str]:
        meta = pod["metadata"]
        env: dict[str, str] = {}
        for item in container.get("env") or []:
            name = str(item.get("name", ""))
            if "value" in item:
                env[name] = str(item["value"])
                continue
            source = item.get("valueFrom") or {}
            if "fieldRef" in source:
                path = source["fieldRef"].get("fieldPath", "")
                fields = {
                    "status.podIP": address,
                    "metadata.name": meta["name"],
                    "metadata.namespace": meta["namespace"],
                }
                env[name] = fields.get(path, "")
            elif "secretKeyRef" in source or "configMapKeyRef" in source:
                found = self._key_ref(meta["namespace"], source)
                if found is not None:
                    env[name] = found
        return env

    def _key_ref(self, namespace: str, source: Json) -> str | None:
        is_secret = "secretKeyRef" in source
        ref = source["secretKeyRef" if is_secret else "configMapKeyRef"]
        plural = "secrets" if is_secret else "configmaps"
        rt = self.fake.registry.find("", "v1", plural)
        assert rt is not None
        obj = self.fake.store.get(rt.key, namespace, str(ref.get("name", "")))
        data = (obj or {}).get("data") or {}
        key = str(ref.get("key", ""))
        if key not in data:
            if ref.get("optional"):
                return None
            kind = "secret" if is_secret else "configmap"
            what = f'{kind} "{ref.get("name")}" not found' if obj is None else (
                f'couldn\'t find key {key} in {kind} {namespace}/{ref.get("name")}'
            )  # fmt: skip
            raise ConfigError(what)
        value = str(data[key])
        return base64.b64decode(value).decode() if is_secret else value


def _container_port(container: Json) -> int:
    ports = container.get("ports") or []
    if ports:
        return int(ports[0].get("containerPort", 8080))
    return 8080


def _probe_path(container: Json) -> str | None:
    probe = (container.get("readinessProbe") or {}).get("httpGet")
    return str(probe.get("path", "/")) if probe else None


def _free_address(port: int) -> str:
    """A loopback address on which `port` is free (127.0.0.0/8 is all loopback on Linux)."""
    for _ in range(100):
        octets = (random.randint(1, 254), random.randint(0, 255), random.randint(1, 254))
        address = "127.{}.{}.{}".format(*octets)
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
        return address
    raise RuntimeError(f"no loopback address with port {port} free")
