"""A kubeconfig pointing at a fake API server, for kubectl and `config.load_kube_config`.

One cluster (`server: http://127.0.0.1:PORT`), one user holding a bearer token and one
current context with a default namespace: what `kubectl --kubeconfig PATH` and
`kubernetes.config.load_kube_config(PATH)` need, nothing else.
"""

from __future__ import annotations

from pathlib import Path

import yaml

CONTEXT = "fake-apiserver"
DEFAULT_TOKEN = "fake-apiserver-token"  # a fake credential for a fake server


def render(
    url: str, *, token: str = DEFAULT_TOKEN, namespace: str = "default", name: str = CONTEXT
) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write(
    path: str | Path, url: str, *, token: str = DEFAULT_TOKEN, namespace: str = "default"
) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(url, token=token, namespace=namespace), encoding="utf-8")
    target.chmod(0o600)
    return target
