"""The API verbs with a real API server's semantics, independent of HTTP.

create / get / list / replace / patch (merge, JSON, strategic, apply) / delete /
deletecollection, each doing what kube-apiserver's generic registry does in order:
preconditions (resourceVersion, namespace exists and is not terminating, name
matches the URL), the endpoint's reset rules (status is ignored on the main resource
and only status is taken on `/status`), defaulting, validation, managedFields,
generation (bumped only when the spec changes), and a no-op check so an unchanged
object keeps its resourceVersion. Deleting honours finalizers, sends namespaces into
Terminating, and propagates to dependents by ownerReferences: Background (the default)
removes the owner at once and collects its dependents; Foreground and Orphan mark the
owner with the `foregroundDeletion` / `orphan` finalizer and leave the rest to the
garbage collector (garbage_collector.py). The same entry points serve the in-process
controllers (with manager `kube-controller-manager`).
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from tests.fake_apiserver import defaults, errors, fields, patches, ssa, validation
from tests.fake_apiserver.resources import Registry, ResourceType
from tests.fake_apiserver.schema import BuiltinSchema, CrdSchema, Schema
from tests.fake_apiserver.selectors import parse_fields, parse_labels, predicate, selector_string
from tests.fake_apiserver.store import Store

Json = dict[str, Any]
Query = Mapping[str, str]

CONTROLLER_MANAGER = "kube-controller-manager"
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")

_META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_INITIAL_STATUS: dict[str, Json] = {
    "Deployment": {},
    "ReplicaSet": {"replicas": 0},
    "Ingress": {"loadBalancer": {}},
    "Service": {"loadBalancer": {}},
    "Namespace": {"phase": "Active"},
    "Pod": {"phase": "Pending", "qosClass": "BestEffort"},
    "ResourceQuota": {},
}


def now() -> str:
    # Every write asks (timestamps and managedFields); formatting once a second is enough.
    return _formatted_second(int(time.time()))


@functools.lru_cache(maxsize=4)
def _formatted_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Target:
    """What a request addresses: a collection or one object, maybe a subresource."""

    rt: ResourceType
    namespace: str = ""  # "" for cluster-scoped resources and all-namespace collections
    name: str = ""
    subresource: str = ""


@dataclass(frozen=True)
class Result:
    code: int
    body: Json


def schema_for(rt: ResourceType) -> Schema:
    return BuiltinSchema(rt.kind) if rt.builtin else CrdSchema(rt.openapi_schema)


def manager_from(user_agent: str) -> str:
    """The default field manager: the User-Agent up to its first '/', as kube-apiserver."""
    return user_agent.split("/", 1)[0][:128]


def parse_body(raw: bytes, content_type: str) -> Any:
    """Decode a JSON (or YAML) request body; protobuf is not spoken (415)."""
    if "protobuf" in content_type or "cbor" in content_type:
        raise errors.unsupported_media_type(content_type, ["application/json", "application/yaml"])
    if not raw:
        raise errors.bad_request("the request body is empty")
    try:
        return json.loads(raw)
    except ValueError:
        if content_type.endswith("yaml"):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise errors.bad_request(f"error decoding YAML: {exc}") from None
        raise errors.bad_request(
            "the object provided is unrecognized (must be of type JSON): invalid JSON"
        ) from None


def drop_nulls(value: Any) -> Any:
    """Explicit nulls vanish on write, as when a real server decodes into its types."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def _ordered(obj: Json) -> Json:
    """Key order as a real server prints it (cosmetic, for humans reading JSON)."""
    meta = obj.get("metadata") or {}
    ordered_meta = {k: meta.get(k, "") for k in _META_ORDER if k in meta or k == "resourceVersion"}
    ordered_meta.update({k: v for k, v in meta.items() if k not in ordered_meta})
    out: Json = {}
    for k in ("kind", "apiVersion"):
        if k in obj:
            out[k] = obj[k]
    out["metadata"] = ordered_meta
    for k, v in obj.items():
        if k not in out and k != "status":
            out[k] = v
    if "status" in obj:
        out["status"] = obj["status"]
    return out


def _spec_of(rt: ResourceType, obj: Json | None) -> Any:
    if obj is None:
        return None
    if rt.builtin:
        return obj.get("spec")
    skip = {"metadata", "apiVersion", "kind"} | (
        {"status"} if "status" in rt.subresources else set()
    )
    return {k: v for k, v in obj.items() if k not in skip}


class Api:
    """The verbs over one store and registry; every method is thread-safe."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._next_ip = 10

    # -- helpers -------------------------------------------------------------------------

    def _allocate_ip(self) -> str:
        n = self._next_ip
        self._next_ip += 1
        return f"10.96.{(n >> 8) & 255}.{n & 255}"

    def present(self, rt: ResourceType, obj: Json) -> Json:
        """The stored object as served at `rt`'s version."""
        if obj.get("apiVersion") == rt.api_version:
            return obj
        return {**obj, "apiVersion": rt.api_version}

    def _ns_rt(self) -> ResourceType:
        rt = self.registry.find("", "v1", "namespaces")
        assert rt is not None
        return rt

    def _check_namespace(self, target: Target, name: str) -> None:
        if not target.rt.namespaced:
            return
        ns = self.store.get(self._ns_rt().key, "", target.namespace)
        if ns is None:
            raise errors.not_found("", "namespaces", target.namespace)
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.namespace_terminating(
                target.rt.group, target.rt.plural, name, target.namespace
            )

    def _check_identity(self, target: Target, body: Json, *, require_type: bool) -> None:
        rt = target.rt
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if require_type and (not api_version or not kind):
            raise errors.bad_request(f"invalid object type: {api_version or ''}, Kind={kind or ''}")
        if api_version and str(api_version).rpartition("/")[0] != rt.group:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        meta = meta or {}
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != target.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        if target.name and meta.get("name") and meta["name"] != target.name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({target.name})"
            )

    @staticmethod
    def _precondition_rv(target: Target, live: Json, wanted: Any) -> None:
        if wanted and str(wanted) != live["metadata"]["resourceVersion"]:
            raise errors.conflict(target.rt.group, target.rt.plural, target.name)

    # -- reads ---------------------------------------------------------------------------

    def get(self, target: Target) -> Json:
        obj = self.store.get(target.rt.key, target.namespace, target.name)
        if obj is None:
            raise errors.not_found(target.rt.group, target.rt.plural, target.name)
        return self.present(target.rt, obj)

    def list_objects(self, target: Target, query: Query) -> Json:
        rt = target.rt
        matches = predicate(
            parse_labels(query.get("labelSelector")),
            parse_fields(query.get("fieldSelector"), rt.kind),
        )
        with self.store.lock:
            rv = self.store.resource_version
            objects = self.store.items(
                rt.key, (target.namespace or None) if rt.namespaced else None
            )
        start: tuple[str, str] | None = None
        token = query.get("continue")
        if token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                namespace, _, name = str(decoded["start"]).partition("/")
                start = (namespace, name)
                rv = int(decoded["rv"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request(f"continue key is not valid: {token}") from None
        selected = []
        for obj in objects:
            meta = obj["metadata"]
            if start is not None and (meta.get("namespace", ""), meta["name"]) <= start:
                continue
            if matches(obj):
                selected.append(obj)
        metadata: Json = {"resourceVersion": str(rv)}
        limit = int(query.get("limit") or 0)
        if limit > 0 and len(selected) > limit:
            last = selected[limit - 1]["metadata"]
            position = f"{last.get('namespace', '')}/{last['name']}"
            payload = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": position})
            metadata["continue"] = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
            metadata["remainingItemCount"] = len(selected) - limit
            selected = selected[:limit]
        items = [self.present(rt, o) for o in selected]
        if rt.builtin:
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": metadata,
            "items": items,
        }

    # -- writes --------------------------------------------------------------------------

    def create(self, target: Target, body: Any, query: Query, user_agent: str) -> Result:
        rt = target.rt
        if not isinstance(body, dict):
            raise errors.bad_request("the body of a create must be an object")
        self._check_identity(target, body, require_type=False)
        obj: Json = ssa.clone(body)
        fields.enforce(rt, obj, query, apply=False)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise errors.internal_error(
                "resourceVersion should not be set on objects to be created"
            )
        if not meta.get("name") and meta.get("generateName"):
            alphabet = "bcdfghjklmnpqrstvwxz2456789"
            meta["name"] = (
                f"{meta['generateName']}{''.join(secrets.choice(alphabet) for _ in range(5))}"
            )
        if rt.namespaced:
            meta["namespace"] = target.namespace
        else:
            meta.pop("namespace", None)
        name = str(meta.get("name", ""))
        with self.store.lock:
            self._check_namespace(target, name)
            if name and self.store.get(rt.key, target.namespace, name) is not None:
                raise errors.already_exists(rt.group, rt.plural, name)
            return self._create(
                target,
                obj,
                manager=query.get("fieldManager") or manager_from(user_agent),
                dry_run=bool(query.get("dryRun")),
            )

    def _create(
        self,
        target: Target,
        obj: Json,
        *,
        manager: str,
        dry_run: bool,
        entries: list[Json] | None = None,
    ) -> Result:
        rt = target.rt
        obj = drop_nulls(obj)
        meta = obj["metadata"]
        for server_set in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "deletionGracePeriodSeconds",
            "selfLink",
            "resourceVersion",
        ):
            meta.pop(server_set, None)
        if "status" in rt.subresources:
            if rt.builtin:
                obj["status"] = ssa.clone(_INITIAL_STATUS.get(rt.kind, {}))
            else:
                obj.pop("status", None)
        defaults.apply(rt.kind, obj, None, self._allocate_ip)
        if rt.kind == "Secret":
            validation.check_secret_data(obj)
        validation.validate(rt, obj, None)
        if not meta.get("name"):
            raise errors.invalid(
                rt.group,
                rt.kind,
                "",
                [errors.FieldError.required("metadata.name", "name or generateName is required")],
            )
        if rt.kind == "CustomResourceDefinition":
            obj["status"] = _crd_status(obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.has_generation:
            meta["generation"] = 1
        if entries is not None:
            meta["managedFields"] = entries
        else:
            meta["managedFields"] = ssa.update(
                None,
                obj,
                manager=manager,
                schema=schema_for(rt),
                api_version=rt.api_version,
                subresource="",
                status_separate="status" in rt.subresources,
                now=now(),
            )
            if not meta["managedFields"]:
                del meta["managedFields"]
        if rt.kind == "Namespace":  # the namespace strategy's, after field tracking
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        obj = _ordered(obj)
        if dry_run:
            return Result(201, obj)
        stored = self.store.put(rt.key, obj)
        if rt.kind == "CustomResourceDefinition":
            self.registry.install_crd(stored)
        return Result(201, self.present(rt, stored))

    def replace(self, target: Target, body: Any, query: Query, user_agent: str) -> Result:
        rt = target.rt
        if not isinstance(body, dict):
            raise errors.bad_request("the body of an update must be an object")
        self._check_identity(target, body, require_type=False)
        with self.store.lock:
            live = self.store.get(rt.key, target.namespace, target.name)
            if live is None:
                raise errors.not_found(rt.group, rt.plural, target.name)
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if not wanted and not rt.builtin:
                raise errors.invalid(
                    rt.group,
                    rt.kind,
                    target.name,
                    [
                        errors.FieldError.invalid(
                            "metadata.resourceVersion", 0, "must be specified for an update"
                        )
                    ],
                )
            self._precondition_rv(target, live, wanted)
            new = ssa.clone(body)
            fields.enforce(rt, new, query, apply=False)
            return self._write(
                target,
                live,
                new,
                manager=query.get("fieldManager") or manager_from(user_agent),
                dry_run=bool(query.get("dryRun")),
                incoming_fields=(body.get("metadata") or {}).get("managedFields"),
            )

    def patch(
        self, target: Target, raw: bytes, content_type: str, query: Query, user_agent: str
    ) -> Result:
        rt = target.rt
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH, APPLY_PATCH_CBOR]
        if rt.builtin:
            accepted.insert(2, STRATEGIC_PATCH)
        if content_type not in accepted or content_type == APPLY_PATCH_CBOR:
            raise errors.unsupported_media_type(content_type, accepted)
        force = query.get("force", "").lower() in ("true", "1")
        manager = query.get("fieldManager", "")
        if content_type == APPLY_PATCH:
            if not manager:
                raise errors.invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    [errors.FieldError.required("fieldManager", "is required for apply patch")],
                )
            config = parse_body(raw, content_type)
            fields.enforce(rt, config, query, apply=True)
            return self.apply(
                target,
                config,
                manager=manager,
                force=force,
                dry_run=bool(query.get("dryRun")),
            )
        if "force" in query:
            raise errors.invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                [errors.FieldError.forbidden("force", "may not be specified for non-apply patch")],
            )
        body = parse_body(raw, content_type)
        with self.store.lock:
            live = self.store.get(rt.key, target.namespace, target.name)
            if live is None:
                raise errors.not_found(rt.group, rt.plural, target.name)
            current = self.present(rt, live)
            if content_type == JSON_PATCH:
                new = patches.json_patch(current, body)
            elif not isinstance(body, dict):
                raise errors.bad_request("the patch must be a JSON object")
            elif content_type == MERGE_PATCH:
                new = patches.merge_patch(current, body)
            else:
                new = patches.strategic_merge(current, body, schema_for(rt))
            fields.enforce(rt, new, query, apply=False)
            self._check_identity(target, new, require_type=False)
            self._precondition_rv(target, live, (new.get("metadata") or {}).get("resourceVersion"))
            return self._write(
                target,
                live,
                new,
                manager=manager or manager_from(user_agent),
                dry_run=bool(query.get("dryRun")),
                incoming_fields=(new.get("metadata") or {}).get("managedFields"),
            )

    def apply(
        self, target: Target, config: Any, *, manager: str, force: bool, dry_run: bool = False
    ) -> Result:
        rt = target.rt
        if not isinstance(config, dict):
            raise errors.bad_request("the apply configuration must be an object")
        self._check_identity(target, config, require_type=True)
        if (config.get("metadata") or {}).get("managedFields"):
            raise errors.bad_request("metadata.managedFields must be nil")
        schema = schema_for(rt)
        with self.store.lock:
            live = self.store.get(rt.key, target.namespace, target.name)
            if live is None and target.subresource:
                raise errors.not_found(rt.group, rt.plural, target.name)
            if live is not None:
                self._precondition_rv(
                    target, live, (config.get("metadata") or {}).get("resourceVersion")
                )
            merged = ssa.apply(
                live,
                config,
                manager=manager,
                force=force,
                schema=schema,
                api_version=rt.api_version,
                subresource=target.subresource,
                status_separate="status" in rt.subresources,
                prune_empty=rt.builtin,
                now=now(),
            )
            merged["apiVersion"], merged["kind"] = rt.api_version, rt.kind
            meta = merged["metadata"]
            meta["name"] = target.name
            if rt.namespaced:
                meta["namespace"] = target.namespace
            if live is None:
                self._check_namespace(target, target.name)
                entries = meta.pop("managedFields", [])
                return self._create(
                    target, merged, manager=manager, dry_run=dry_run, entries=entries
                )
            entries_json = meta.get("managedFields") or []
            return self._write(
                target, live, merged, manager=manager, dry_run=dry_run, managed=entries_json
            )

    def _write(
        self,
        target: Target,
        live: Json,
        new: Json,
        *,
        manager: str,
        dry_run: bool,
        incoming_fields: Any = None,
        managed: list[Json] | None = None,
        trusted: bool = False,
    ) -> Result:
        """Store `new` as the next version of `live` (store lock held). `new` is ours to
        change; `trusted` (the fake's own controllers) skips decoding-time clean-ups."""
        rt = target.rt
        status_separate = "status" in rt.subresources
        if not trusted:
            new = drop_nulls(new)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        if target.subresource == "status":
            # Stored objects are never mutated, so the new version may share their parts.
            new = {**live, "metadata": dict(live["metadata"]), "status": new.get("status", {})}
            if new["status"] is None:
                new.pop("status", None)
        elif status_separate:
            if "status" in live:
                new["status"] = live["status"]
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        old_meta = live["metadata"]
        for kept in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if kept in old_meta:
                meta[kept] = old_meta[kept]
            else:
                meta.pop(kept, None)
        if rt.kind == "Namespace" and target.subresource != "finalize":
            # Only `namespaces/<name>/finalize` changes a namespace's spec.finalizers.
            new["spec"] = {**(new.get("spec") or {}), **(live.get("spec") or {})}
        if target.subresource != "status" and not trusted:
            defaults.apply(rt.kind, new, live, self._allocate_ip)
            if rt.kind == "Secret":
                validation.check_secret_data(new)
            validation.validate(rt, new, live)
        if managed is None:
            base_entries = None
            if incoming_fields and incoming_fields != old_meta.get("managedFields"):
                base_entries = ssa.decode({"metadata": {"managedFields": incoming_fields}})
            managed = ssa.update(
                live,
                new,
                manager=manager,
                schema=schema_for(rt),
                api_version=rt.api_version,
                subresource=target.subresource,
                status_separate=status_separate,
                now=now(),
                entries=base_entries,
            )
        if managed:
            meta["managedFields"] = managed
        else:
            meta.pop("managedFields", None)
        if rt.has_generation and _spec_of(rt, new) != _spec_of(rt, live):
            meta["generation"] = int(old_meta.get("generation", 0)) + 1
        if rt.kind == "CustomResourceDefinition" and target.subresource != "status":
            accepted = (live.get("status") or {}).get("acceptedNames")
            if accepted != (new.get("spec") or {}).get("names"):
                new["status"] = _crd_status(new)
        new = _ordered(new)
        if new == live or dry_run:
            return Result(200, self.present(rt, new))
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.kind != "Namespace":
            # The last finalizer is gone: the object goes (one DELETED event).
            self._remove(rt, meta.get("namespace", ""), meta["name"])
            return Result(200, self.present(rt, new))
        stored = self.store.put(rt.key, new)
        if rt.kind == "CustomResourceDefinition":
            self.registry.install_crd(stored)
        return Result(200, self.present(rt, stored))

    # -- the scale subresource (autoscaling/v1 Scale) ------------------------------------

    def get_scale(self, target: Target) -> Json:
        obj = self.get(Target(target.rt, target.namespace, target.name))
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": selector_string((obj.get("spec") or {}).get("selector")),
            },
        }

    def update_scale(
        self,
        target: Target,
        scale: Any,
        query: Query,
        user_agent: str,
        *,
        patch: tuple[bytes, str] | None = None,
    ) -> Result:
        """PUT (or, with `patch`, PATCH) of `<resource>/scale`: only spec.replicas changes."""
        rt = target.rt
        with self.store.lock:
            current = self.get_scale(target)
            if patch is not None:
                raw, content_type = patch
                body = parse_body(raw, content_type)
                if content_type == JSON_PATCH:
                    scale = patches.json_patch(current, body)
                elif content_type in (MERGE_PATCH, STRATEGIC_PATCH) and isinstance(body, dict):
                    scale = patches.merge_patch(current, body)
                else:
                    raise errors.unsupported_media_type(
                        content_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH]
                    )
            if not isinstance(scale, dict):
                raise errors.bad_request("the body must be a Scale object")
            live = self.store.get(rt.key, target.namespace, target.name)
            assert live is not None
            self._precondition_rv(
                target, live, (scale.get("metadata") or {}).get("resourceVersion")
            )
            replicas = (scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.invalid(
                    "autoscaling",
                    "Scale",
                    target.name,
                    [
                        errors.FieldError.invalid(
                            "spec.replicas", replicas, "must be greater than or equal to 0"
                        )
                    ],
                )
            new = ssa.clone(live)
            new.setdefault("spec", {})["replicas"] = replicas
            self._write(
                target,
                live,
                new,
                manager=query.get("fieldManager") or manager_from(user_agent),
                dry_run=bool(query.get("dryRun")),
            )
            return Result(200, self.get_scale(target))

    # -- deletes -------------------------------------------------------------------------

    def delete(self, target: Target, options: Any, query: Query) -> Result:
        rt = target.rt
        options = options if isinstance(options, dict) else {}
        dry_run = bool(query.get("dryRun") or options.get("dryRun"))
        # DeleteOptions are validated before the object is looked up (422 before 404).
        policy, orphan_false = _propagation(options, query)
        with self.store.lock:
            live = self.store.get(rt.key, target.namespace, target.name)
            if live is None:
                raise errors.not_found(rt.group, rt.plural, target.name)
            pre = options.get("preconditions") or {}
            meta = live["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(
                    rt.group,
                    rt.plural,
                    target.name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                    f"meta: {meta.get('uid')}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(
                    rt.group,
                    rt.plural,
                    target.name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                    f"{meta['resourceVersion']}",
                )
            if rt.kind == "Namespace" and target.name in PROTECTED_NAMESPACES:
                raise errors.forbidden(
                    "", "namespaces", target.name, "this namespace may not be deleted"
                )
            if dry_run:
                return Result(200, self.present(rt, live))
            result = self._delete_one(rt, live, policy)
            if orphan_false and self.store.get(rt.key, target.namespace, target.name):
                # apiserver answers 202 when a delete asked `orphanDependents: false`
                # explicitly and the object is still there.
                return Result(202, result.body)
            return result

    def _delete_one(self, rt: ResourceType, live: Json, policy: str = "Background") -> Result:
        meta = live["metadata"]
        if rt.kind != "Namespace" and policy != "Background":
            return self._mark_for_collector(rt, live, policy)
        if rt.kind == "Namespace" or meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return Result(200, self.present(rt, live))
            new = ssa.clone(live)
            new["metadata"]["deletionTimestamp"] = now()
            if rt.kind == "Namespace":
                new.setdefault("status", {})["phase"] = "Terminating"
            else:
                new["metadata"]["deletionGracePeriodSeconds"] = 0
            return Result(200, self.present(rt, self.store.put(rt.key, _ordered(new))))
        gone = self._remove(rt, meta.get("namespace", ""), meta["name"])
        if rt.kind == "Pod":
            # Pods end gracefully: a real server answers with the pod, marked for deletion
            # (here it goes at once, as if its containers stopped instantly).
            ended = ssa.clone(gone)
            grace = int((gone.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            ended["metadata"]["deletionTimestamp"] = now()
            ended["metadata"]["deletionGracePeriodSeconds"] = grace
            return Result(200, self.present(rt, _ordered(ended)))
        if rt.kind == "Service" or not rt.builtin:
            return Result(200, self.present(rt, gone))
        details: Json = {"name": meta["name"]}
        if rt.group:
            details["group"] = rt.group
        details |= {"kind": rt.plural, "uid": meta.get("uid", "")}
        return Result(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            },
        )

    def _mark_for_collector(self, rt: ResourceType, live: Json, policy: str) -> Result:
        """Foreground / Orphan: the owner stays, marked, until the garbage collector has
        dealt with its dependents and removes the finalizer (apiserver's
        `deletionFinalizersForGarbageCollection`: the other policy's finalizer gives way)."""
        wanted, other = (
            (FOREGROUND_FINALIZER, ORPHAN_FINALIZER)
            if policy == "Foreground"
            else (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)
        )
        new = ssa.clone(live)
        meta = new["metadata"]
        finalizers = [f for f in meta.get("finalizers") or [] if f != other]
        if wanted not in finalizers:
            finalizers.append(wanted)
        meta["finalizers"] = finalizers
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = now()
            meta["deletionGracePeriodSeconds"] = 0
        if new == live:
            return Result(200, self.present(rt, live))
        return Result(200, self.present(rt, self.store.put(rt.key, _ordered(new))))

    def _remove(self, rt: ResourceType, namespace: str, name: str) -> Json:
        gone = self.store.delete(rt.key, namespace, name)
        assert gone is not None
        if rt.kind == "CustomResourceDefinition":
            for removed in self.registry.remove_crd(name)[:1]:
                for obj in self.store.items(removed.key):
                    m = obj["metadata"]
                    self.store.delete(removed.key, m.get("namespace", ""), m["name"])
        self._collect_garbage(str(gone["metadata"].get("uid", "")))
        return gone

    def _collect_garbage(self, uid: str) -> None:
        """Background propagation: delete what this uid owned."""
        if not uid:
            return
        for key, namespace, name in self.store.dependents(uid):
            dependent_rt = self.registry.by_key(key)
            current = self.store.get(key, namespace, name)
            if dependent_rt is not None and current is not None:
                self._delete_one(dependent_rt, current)

    def delete_collection(self, target: Target, options: Any, query: Query) -> Json:
        policy, _ = _propagation(options if isinstance(options, dict) else {}, query)
        listed = self.list_objects(target, {k: v for k, v in query.items() if k != "limit"})
        deleted = []
        with self.store.lock:
            for item in listed["items"]:
                meta = item["metadata"]
                live = self.store.get(target.rt.key, meta.get("namespace", ""), meta["name"])
                if live is None:
                    continue
                if not query.get("dryRun"):
                    self._delete_one(target.rt, live, policy)
                deleted.append(item)
        listed["items"] = deleted
        return listed

    # -- for in-process controllers ------------------------------------------------------

    def update_as_controller(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        mutate: Callable[[Json], None],
        *,
        subresource: str = "",
    ) -> Json | None:
        """Read-modify-write as kube-controller-manager; None if the object is gone.

        `mutate` gets a copy-on-write view: it may change top-level keys and those of
        `metadata`, `metadata.annotations` and `spec`; anything deeper is shared with the
        stored object and must be replaced, not changed in place."""
        with self.store.lock:
            live = self.store.get(rt.key, namespace, name)
            if live is None:
                return None
            meta = dict(live["metadata"])
            if "annotations" in meta:
                meta["annotations"] = dict(meta["annotations"])
            new = {**live, "metadata": meta}
            if isinstance(live.get("spec"), dict):
                new["spec"] = dict(live["spec"])
            mutate(new)
            target = Target(rt, namespace, name, subresource)
            return self._write(
                target, live, new, manager=CONTROLLER_MANAGER, dry_run=False, trusted=True
            ).body

    def create_as_controller(self, rt: ResourceType, obj: Json) -> Json | None:
        namespace = obj["metadata"].get("namespace", "")
        with self.store.lock:
            if self.store.get(rt.key, namespace, obj["metadata"]["name"]) is not None:
                return None
            target = Target(rt, namespace, obj["metadata"]["name"])
            try:
                self._check_namespace(target, obj["metadata"]["name"])
            except errors.ApiError:
                return None
            return self._create(target, obj, manager=CONTROLLER_MANAGER, dry_run=False).body

    def delete_as_controller(
        self, rt: ResourceType, namespace: str, name: str, policy: str
    ) -> None:
        """Delete as the garbage collector does, with a propagation policy."""
        with self.store.lock:
            live = self.store.get(rt.key, namespace, name)
            if live is not None:
                self._delete_one(rt, live, policy)

    def remove_as_controller(self, rt: ResourceType, namespace: str, name: str) -> None:
        with self.store.lock:
            if self.store.get(rt.key, namespace, name) is not None:
                self._remove(rt, namespace, name)


def _propagation(options: Json, query: Query) -> tuple[str, bool]:
    """(policy, whether `orphanDependents: false` was given) from DeleteOptions in the body
    or the query, validated as apiserver's `ValidateDeleteOptions` does."""
    policy = options.get("propagationPolicy") or query.get("propagationPolicy")
    orphan: Any = options.get("orphanDependents")
    if orphan is None and "orphanDependents" in query:
        orphan = query["orphanDependents"].lower() in ("true", "1")
    problems: list[errors.FieldError] = []
    if orphan is not None and policy:
        problems.append(
            errors.FieldError.invalid(
                "propagationPolicy",
                policy,
                "orphanDependents and deletionPropagation cannot be both set",
            )
        )
    if policy and policy not in PROPAGATION_POLICIES:
        supported = ", ".join(f'"{p}"' for p in (*PROPAGATION_POLICIES, "nil"))
        problems.append(
            errors.FieldError(
                "NotSupported", "propagationPolicy", f"supported values: {supported}", policy, True
            )
        )
    if problems:
        raise errors.invalid("meta.k8s.io", "DeleteOptions", "", problems)
    if policy:
        return str(policy), False
    if orphan is not None:
        return ("Orphan" if orphan else "Background"), not orphan
    return "Background", False


def _crd_status(crd: Json) -> Json:
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    stamp = now()
    storage = [str(v["name"]) for v in spec.get("versions") or [] if v.get("storage")]
    return {
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": stamp,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": stamp,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "acceptedNames": names,
        "storedVersions": storage,
    }
