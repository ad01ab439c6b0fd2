"""`python -m tests.fake_apiserver`: run the fake API server by hand.

Writes a kubeconfig (`--kubeconfig-out`) that kubectl, `shipyard serve --target
kubernetes --kubeconfig PATH` and `kubernetes.config.load_kube_config` accept, and
by default makes Deployments ready shortly after they are written. With `--kubelet
IMAGE=COMMAND` pods of that image run as local processes that serve HTTP (kubelet.py).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from typing import cast

from tests.fake_apiserver import crds
from tests.fake_apiserver.controllers import MODES, Mode
from tests.fake_apiserver.kubelet import Image, Kubelet
from tests.fake_apiserver.server import FakeApiServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_apiserver", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument(
        "--kubeconfig-out", metavar="PATH", help="write a kubeconfig for this server to PATH"
    )
    parser.add_argument("--deployment-mode", choices=MODES, default="ready")
    parser.add_argument(
        "--ready-delay",
        type=float,
        default=1.0,
        help="seconds from a Deployment write to it being ready",
    )
    parser.add_argument(
        "--stuck-after",
        type=float,
        default=None,
        help="seconds to ProgressDeadlineExceeded in stuck mode "
        "(default: spec.progressDeadlineSeconds)",
    )
    parser.add_argument("--namespace-termination-delay", type=float, default=1.0)
    parser.add_argument("--history-size", type=int, default=1000)
    parser.add_argument(
        "--servicemonitors",
        action="store_true",
        help="install the monitoring.coreos.com/v1 ServiceMonitor CRD",
    )
    parser.add_argument(
        "--token", default=None, help="require this bearer token (default: accept anyone)"
    )
    parser.add_argument(
        "--kubelet",
        metavar="IMAGE=COMMAND",
        action="append",
        default=[],
        help="run pods of IMAGE as local processes of COMMAND (kubelet.py; repeatable)",
    )
    args = parser.parse_args(argv)
    images = kubelet_images(args.kubelet, parser)

    server = FakeApiServer(
        host=args.host,
        port=args.port,
        history_size=args.history_size,
        deployment_mode=cast(Mode, args.deployment_mode),
        ready_delay=args.ready_delay,
        stuck_after=args.stuck_after,
        namespace_termination_delay=args.namespace_termination_delay,
        token=args.token,
        crds=(crds.SERVICE_MONITOR,) if args.servicemonitors else (),
    ).start()
    running = Kubelet(server, images).start() if images else None
    print(f"fake kube-apiserver listening on {server.url}", flush=True)
    if running is not None:
        print(f"kubelet runs images {', '.join(images)}; pod output in {running.log_dir}")
    if args.kubeconfig_out:
        path = server.kubeconfig(args.kubeconfig_out)
        print(f"kubeconfig written to {path}  (kubectl --kubeconfig {path} get ns)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    if running is not None:
        running.stop()
    server.stop()
    return 0


def kubelet_images(given: list[str], parser: argparse.ArgumentParser) -> dict[str, Image]:
    images: dict[str, Image] = {}
    for item in given:
        image, equals, command = item.partition("=")
        if not equals or not image or not command.strip():
            parser.error(f"--kubelet {item!r}: expected IMAGE=COMMAND")
        images[image] = Image(tuple(shlex.split(command)))
    return images


if __name__ == "__main__":
    sys.exit(main())
