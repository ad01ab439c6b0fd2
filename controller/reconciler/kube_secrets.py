"""Which Secrets an agent on Kubernetes may reference: scopes by annotation, copies for previews.

Operators keep Secrets in the production namespace and say who may have each one with
the annotation `shipyard.dev/scope`: `production` (the default, also when the annotation
is absent), `previews` or `all`. Production's pods reference production's Secrets in
place. A preview runs in a namespace of its own, where pods can only read Secrets of that
namespace and nothing but Shipyard writes; Shipyard copies into it exactly the Secrets
scoped to previews that its agents reference, so a preview can never read the rest. The
controller's own Secrets (`shipyard`, `shipyard-*`) and any Secret holding one of the
controller's credentials are refused in every environment.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping

from controller.reconciler.launching import NotLaunchable
from controller.reconciler.secret_scopes import Scope, holds_credential
from controller.specs.model import Agent
from controller.targets.kubernetes.rendering import KubeObject
from preview import naming

SCOPE_ANNOTATION = "shipyard.dev/scope"
_RESERVED = "shipyard"


def is_reserved(name: str) -> bool:
    """The controller's own Secrets: `shipyard` and `shipyard-*` (`shipyard-secrets`)."""
    return name == _RESERVED or name.startswith(_RESERVED + "-")


def referenced(agent: Agent) -> list[str]:
    """The Secrets the agent names that the cluster must be asked about."""
    return sorted({item.secret for item in agent.spec.secrets if not is_reserved(item.secret)})


def scope_of(secret: KubeObject) -> Scope | None:
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    try:
        return Scope(str(annotations.get(SCOPE_ANNOTATION, Scope.PRODUCTION.value)).lower())
    except ValueError:
        return None


def copies_for(
    agent: Agent,
    environment: str,
    found: Mapping[str, KubeObject | None],
    *,
    namespace: str,
    credentials: Iterable[str] = (),
) -> list[KubeObject]:
    """The source Secrets to copy into a preview (none for production); `NotLaunchable`
    naming every reference the environment may not have, and what to do about it."""
    preview = environment != naming.PRODUCTION
    own = tuple(credentials)
    problems: list[str] = []
    copies: dict[str, KubeObject] = {}
    for reference in agent.spec.secrets:
        name, key = reference.secret, reference.key
        asked = f"secret {name}/{key} for {reference.env}"
        if is_reserved(name):
            problems.append(
                f"{asked}: Secrets named {_RESERVED} or {_RESERVED}-* hold the controller's "
                "credentials; agents never receive them. Give the agent a Secret of its own"
            )
            continue
        source = found.get(name)
        if source is None:
            scope = f" annotated {SCOPE_ANNOTATION}=previews (or all)" if preview else ""
            problems.append(
                f"{asked}: no Secret {name} in namespace {namespace}; create it there{scope}"
            )
            continue
        problem = _scope_problem(asked, source, preview, namespace)
        if problem is None:
            problem = _content_problem(asked, source, key, own)
        if problem is not None:
            problems.append(problem)
        elif preview:
            copies[name] = source
    if problems:
        raise NotLaunchable("; ".join(problems))
    return [copies[name] for name in sorted(copies)]


def _scope_problem(asked: str, source: KubeObject, preview: bool, namespace: str) -> str | None:
    name = source["metadata"]["name"]
    scope = scope_of(source)
    annotate = f"kubectl -n {namespace} annotate secret {name} {SCOPE_ANNOTATION}="
    if scope is None:
        known = ", ".join(scope.value for scope in Scope)
        return f"{asked}: Secret {name} has an unknown {SCOPE_ANNOTATION} (one of: {known})"
    if preview and scope is Scope.PRODUCTION:
        return (
            f"{asked}: Secret {name} is scoped to production; previews never receive it. "
            f"To expose it to previews: {annotate}all --overwrite (or keep preview values "
            f"in a Secret of their own annotated {SCOPE_ANNOTATION}=previews)"
        )
    if not preview and scope is Scope.PREVIEWS:
        return (
            f"{asked}: Secret {name} is scoped to previews; production never receives it. "
            f"To use it in production too: {annotate}all --overwrite"
        )
    return None


def _content_problem(asked: str, source: KubeObject, key: str, own: tuple[str, ...]) -> str | None:
    name = source["metadata"]["name"]
    data: Mapping[str, str] = source.get("data") or {}
    if key not in data:
        return f"{asked}: Secret {name} has no key {key!r}"
    # Every key, not only the one asked for: a preview's copy carries them all.
    for encoded in data.values():
        try:
            value = base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            continue
        if holds_credential(value, own):
            return (
                f"{asked}: Secret {name} holds one of the controller's own credentials; "
                "agents never receive those. Give the agent a credential of its own"
            )
    return None
