"""A fake kube-apiserver for tests: real HTTP on loopback, driven by the official client.

No real API server can run on the machines this project is built on (DESIGN.md §8), so
the Kubernetes target is tested against this one. It must behave like the real thing
wherever Shipyard's code could notice the difference; BEHAVIOURS.md lists what it
reproduces and what it does not, and grows with every bug found.

    from tests.fake_apiserver import FakeApiServer

    server = FakeApiServer().start()       # .url, .kubeconfig(path), .stop()
    server.faults.fail(1, 500, method="PATCH")
    server.deployments.set_mode("stuck", "preview-a/support-bot", deadline=0.5)
    server.requests.writes()

Started by hand: `python -m tests.fake_apiserver --port 18080 --kubeconfig-out PATH`.
"""

from __future__ import annotations

from tests.fake_apiserver.server import FakeApiServer

__all__ = ["FakeApiServer"]
