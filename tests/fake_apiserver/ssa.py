"""Server-side apply and managedFields, after structured-merge-diff's rules.

Every write records who owns which fields in `metadata.managedFields`:
- *Update* operations (POST, PUT, merge / strategic / JSON patch, status writes) take
  ownership of every field they changed, away from anyone else, and never conflict;
- *Apply* (`application/apply-patch+yaml`) merges the manager's configuration into the
  live object (maps by key, associative lists by their keys, everything else replaced),
  owns exactly the fields it sent, conflicts when it would change a field another
  manager owns (409 listing the paths, unless `force`), shares a field when both set
  the same value, and *removes* a field it sent last time and no longer sends, provided
  no other manager owns it;
- the applier's entry keeps its timestamp when nothing changed, so a repeated apply is
  a true no-op (same resourceVersion).

Identity fields (apiVersion, kind, name, namespace, uid, resourceVersion, generation,
creationTimestamp, managedFields) are never owned, and the fields the endpoint resets
(status on the main resource, everything but status on `/status`) are not either.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tests.fake_apiserver import errors
from tests.fake_apiserver import fieldpath as fp
from tests.fake_apiserver.schema import ListRule, Schema, key_of

Json = dict[str, Any]
Names = tuple[str, ...]

_MISSING: Any = object()
IGNORED_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    }
)


@dataclass(frozen=True)
class Entry:
    """One managedFields entry."""

    manager: str
    operation: str  # Apply | Update
    api_version: str
    time: str
    subresource: str
    fields: fp.FieldSet

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def printed(self) -> str:
        """How apply conflicts name this manager (apiserver's `printManager`)."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


@dataclass(frozen=True)
class Comparison:
    added: frozenset[fp.Path]
    modified: frozenset[fp.Path]
    removed: frozenset[fp.Path]

    @property
    def changed(self) -> frozenset[fp.Path]:
        return self.added | self.modified


def clone(value: Any) -> Any:
    """A deep copy of JSON data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


# -- managedFields codec ---------------------------------------------------------------


def decode(obj: Json | None) -> list[Entry]:
    if not obj:
        return []
    raw = (obj.get("metadata") or {}).get("managedFields") or []
    entries = []
    for item in raw:
        if not isinstance(item, dict) or (not item.get("manager") and not item.get("fieldsV1")):
            continue
        entries.append(
            Entry(
                manager=str(item.get("manager", "")),
                operation=str(item.get("operation", "Update")),
                api_version=str(item.get("apiVersion", "")),
                time=str(item.get("time", "")),
                subresource=str(item.get("subresource", "")),
                fields=fp.from_fields_v1(item.get("fieldsV1")),
            )
        )
    return entries


def encode(entries: list[Entry]) -> list[Json]:
    ordered = sorted(
        entries,
        key=lambda e: (e.operation, e.time, e.manager, e.api_version, e.subresource),
    )
    out = []
    for e in ordered:
        item: Json = {
            "manager": e.manager,
            "operation": e.operation,
            "apiVersion": e.api_version,
            "time": e.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fp.to_fields_v1(e.fields),
        }
        if e.subresource:
            item["subresource"] = e.subresource
        out.append(item)
    return out


# -- what is tracked -------------------------------------------------------------------


def trackable(obj: Json | None, subresource: str, status_separate: bool) -> Json:
    """The part of an object whose fields can be owned through this endpoint."""
    if not obj:
        return {}
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    view = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if status_separate:
        view.pop("status", None)
    meta = view.get("metadata")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in IGNORED_METADATA}
        if kept:
            view["metadata"] = kept
        else:
            view.pop("metadata")
    return view


# -- field sets and comparison ---------------------------------------------------------


def field_set(obj: Json, schema: Schema) -> frozenset[fp.Path]:
    out: set[fp.Path] = set()
    _walk_map(obj, (), (), schema, out)
    return frozenset(out)


def _walk_map(m: Json, names: Names, path: fp.Path, schema: Schema, out: set[fp.Path]) -> None:
    for k, v in m.items():
        if isinstance(v, dict | list):
            _walk_value(v, (*names, k), (*path, fp.field(k)), schema, out)
        else:  # a leaf, as most fields are: no call, no names to build
            out.add((*path, ("f", k)))


def _walk_value(v: Any, names: Names, path: fp.Path, schema: Schema, out: set[fp.Path]) -> None:
    if isinstance(v, dict):
        if not v or schema.atomic_map(names):
            out.add(path)
        else:
            _walk_map(v, names, path, schema, out)
    elif isinstance(v, list):
        rule = schema.list_rule(names)
        if rule.type == "atomic":
            out.add(path)
        elif rule.type == "set":
            out.update((*path, fp.value(item)) for item in v)
        else:
            keys = [key_of(item, rule) for item in v]  # once each, not once to check too
            if any(k is None for k in keys):
                out.add(path)
                return
            for item, item_key in zip(v, keys, strict=True):
                item_path = (*path, fp.key(item_key or ()))
                out.add(item_path)
                _walk_map(item, names, item_path, schema, out)
    else:
        out.add(path)


def _keyed(items: list[Any], rule: ListRule) -> bool:
    return rule.type == "set" or all(key_of(i, rule) is not None for i in items)


def compare(old: Json, new: Json, schema: Schema) -> Comparison:
    added: set[fp.Path] = set()
    modified: set[fp.Path] = set()
    removed: set[fp.Path] = set()
    _cmp_map(old, new, (), (), schema, added, modified, removed)
    return Comparison(frozenset(added), frozenset(modified), frozenset(removed))


def _cmp_map(
    a: Json,
    b: Json,
    names: Names,
    path: fp.Path,
    schema: Schema,
    added: set[fp.Path],
    modified: set[fp.Path],
    removed: set[fp.Path],
) -> None:
    for k in {**a, **b}:
        old, new = a.get(k, _MISSING), b.get(k, _MISSING)
        if old is new or old == new:
            continue  # what `_cmp` would conclude, without building the paths first
        _cmp(
            old,
            new,
            (*names, k),
            (*path, fp.field(k)),
            schema,
            added,
            modified,
            removed,
        )


def _cmp(
    a: Any,
    b: Any,
    names: Names,
    path: fp.Path,
    schema: Schema,
    added: set[fp.Path],
    modified: set[fp.Path],
    removed: set[fp.Path],
) -> None:
    if a is _MISSING:
        _walk_value(b, names, path, schema, added)
        return
    if b is _MISSING:
        _walk_value(a, names, path, schema, removed)
        return
    if a is b or a == b:
        # Equal subtrees differ nowhere; a controller's write shares most of them with
        # the stored object, so most comparisons end here instead of walking them.
        return
    if isinstance(a, dict) and isinstance(b, dict) and not schema.atomic_map(names):
        if not a and not b:
            return
        _cmp_map(a, b, names, path, schema, added, modified, removed)
        return
    if isinstance(a, list) and isinstance(b, list):
        rule = schema.list_rule(names)
        if rule.type != "atomic" and _keyed(a, rule) and _keyed(b, rule):
            if rule.type == "set":
                va = {fp.value(i) for i in a}
                vb = {fp.value(i) for i in b}
                added.update((*path, e) for e in vb - va)
                removed.update((*path, e) for e in va - vb)
                return
            ia = {fp.key(key_of(i, rule) or ()): i for i in a}
            ib = {fp.key(key_of(i, rule) or ()): i for i in b}
            for element in {**ia, **ib}:
                item_path = (*path, element)
                if element not in ia:
                    added.add(item_path)
                    _walk_map(ib[element], names, item_path, schema, added)
                elif element not in ib:
                    removed.add(item_path)
                    _walk_map(ia[element], names, item_path, schema, removed)
                else:
                    _cmp_map(
                        ia[element], ib[element], names, item_path, schema, added, modified, removed
                    )
            return
    if a != b:
        modified.add(path)


# -- merging and removal ---------------------------------------------------------------


def merge(live: Json, config: Json, schema: Schema, names: Names = ()) -> Json:
    """Apply's merge: config wins; maps merge; associative lists merge by key."""
    result = dict(live)
    for k, cv in config.items():
        sub = (*names, k)
        if cv is None:
            result.pop(k, None)
            continue
        result[k] = _merge_value(live.get(k, _MISSING), cv, sub, schema)
    return result


def _merge_value(lv: Any, cv: Any, names: Names, schema: Schema) -> Any:
    if lv is _MISSING:
        return clone(cv)
    if isinstance(lv, dict) and isinstance(cv, dict) and not schema.atomic_map(names):
        return merge(lv, cv, schema, names)
    if isinstance(lv, list) and isinstance(cv, list):
        rule = schema.list_rule(names)
        if rule.type != "atomic" and _keyed(lv, rule) and _keyed(cv, rule):
            return _merge_list(lv, cv, rule, names, schema)
    return clone(cv)


def _merge_list(
    lv: list[Any], cv: list[Any], rule: ListRule, names: Names, schema: Schema
) -> list[Any]:
    """structured-merge-diff's item order: live order, with the configuration's items
    placed where the configuration orders them relative to the items both share."""

    def element(item: Any) -> fp.PathElement:
        return fp.value(item) if rule.type == "set" else fp.key(key_of(item, rule) or ())

    lhs = {element(i): i for i in lv}
    rhs = {element(i): i for i in cv}
    lhs_order, rhs_order = list(lhs), list(rhs)

    def merged(e: fp.PathElement) -> Any:
        if e not in lhs:
            return clone(rhs[e])
        if rule.type == "set":
            return lhs[e]
        return merge(lhs[e], rhs[e], schema, names)

    shared = [e for e in rhs_order if e in lhs]
    next_shared = shared.pop(0) if shared else None
    out: list[Any] = []
    li = ri = 0
    while li < len(lhs_order) or ri < len(rhs_order):
        if li < len(lhs_order) and ri < len(rhs_order):
            e = lhs_order[li]
            if e == rhs_order[ri]:
                out.append(merged(e))
                li, ri = li + 1, ri + 1
                next_shared = shared.pop(0) if shared else None
                continue
            if e in rhs and next_shared is not None and next_shared != e:
                li += 1
                continue
        if li < len(lhs_order) and lhs_order[li] not in rhs:
            out.append(lhs[lhs_order[li]])
            li += 1
            continue
        if ri < len(rhs_order):
            e = rhs_order[ri]
            out.append(merged(e))
            ri += 1
            if next_shared == e:
                next_shared = shared.pop(0) if shared else None
            continue
        li += 1  # a shared item already placed by the configuration's order
    return out


def _locate(obj: Json, path: fp.Path, schema: Schema) -> tuple[Any, Any] | None:
    """(container, index-or-key) of the node at `path`, or None if absent."""
    node: Any = obj
    names: Names = ()
    container: Any = None
    slot: Any = None
    for kind, payload in path:
        if kind == "f":
            if not isinstance(node, dict) or payload not in node:
                return None
            names = (*names, payload)
            container, slot = node, payload
            node = node[payload]
        elif isinstance(node, list):
            found = _find_item(node, kind, payload, schema.list_rule(names))
            if found is None:
                return None
            container, slot = node, found
            node = node[found]
        else:
            return None
    return (container, slot) if container is not None else None


def _find_item(items: list[Any], kind: str, payload: str, rule: ListRule) -> int | None:
    for i, item in enumerate(items):
        if kind == "k" and fp.key(key_of(item, rule) or ()) == ("k", payload):
            return i
        if kind == "v" and fp.value(item) == ("v", payload):
            return i
        if kind == "i" and str(i) == payload:
            return i
    return None


def remove(
    obj: Json,
    paths: frozenset[fp.Path],
    owned: frozenset[fp.Path],
    schema: Schema,
    prune_empty: bool,
) -> None:
    """Remove the nodes at `paths`, keeping any whose descendants somebody still owns."""
    owned_prefixes = {p[:i] for p in owned for i in range(1, len(p))}
    # Outermost first: a node nobody else owns anything under goes as a whole (its keys
    # with it); a node with owned descendants stays and its stale children go one by one.
    for path in sorted(paths, key=len):
        if path in owned_prefixes:
            continue
        located = _locate(obj, path, schema)
        if located is None:
            continue
        container, slot = located
        if isinstance(container, list):
            container.pop(slot)
        else:
            del container[slot]
        if prune_empty:
            _prune_empty_ancestors(obj, path[:-1], owned, schema)


def _prune_empty_ancestors(
    obj: Json, path: fp.Path, owned: frozenset[fp.Path], schema: Schema
) -> None:
    while path:
        if path in owned:
            return
        located = _locate(obj, path, schema)
        if located is None:
            return
        container, slot = located
        node = container[slot]
        if not isinstance(node, dict | list) or node:
            return
        if isinstance(container, list):
            container.pop(slot)
        else:
            del container[slot]
        path = path[:-1]


# -- the two operations ----------------------------------------------------------------


def apply(
    live: Json | None,
    config: Json,
    *,
    manager: str,
    force: bool,
    schema: Schema,
    api_version: str,
    subresource: str,
    status_separate: bool,
    prune_empty: bool,
    now: str,
) -> Json:
    """The object after `manager` applies `config` (managedFields updated); raises a 409
    ApiError on conflicts unless `force`."""
    base: Json = clone(live) if live else {}
    entries = decode(live)
    if subresource == "status":
        config = {"status": config.get("status") or {}}
    elif status_separate:
        config = {k: v for k, v in config.items() if k != "status"}
    if isinstance(config.get("metadata"), dict):
        meta = {k: v for k, v in config["metadata"].items() if k != "managedFields"}
        config = {**config, "metadata": meta}
    merged = merge(base, config, schema)
    before = trackable(base, subresource, status_separate)
    after = trackable(merged, subresource, status_separate)
    applied = field_set(trackable(config, subresource, status_separate), schema)
    diff = compare(before, after, schema)

    me = (manager, "Apply", subresource)
    previous = next((e for e in entries if e.identity == me), None)
    conflicts: list[tuple[str, str]] = []
    updated: list[Entry] = []
    for entry in entries:
        if entry.identity == me:
            continue
        overlap = entry.fields & diff.changed
        if overlap and not force:
            conflicts.extend((entry.printed(), fp.to_string(p)) for p in overlap)
        updated.append(_without(entry, overlap | diff.removed))
    if conflicts:
        raise errors.apply_conflict(sorted(conflicts))

    previous_fields = previous.fields if previous else frozenset()
    others: frozenset[fp.Path] = frozenset().union(*(e.fields for e in updated))
    stale = previous_fields - applied - others
    remove(merged, stale, others | applied, schema, prune_empty)

    changed = bool(diff.changed or diff.removed or stale) or applied != previous_fields
    if previous is not None and not changed:
        # The very field set again, so it encodes to the stored tree without a rebuild.
        mine = Entry(manager, "Apply", api_version, previous.time, subresource, previous.fields)
    else:
        mine = Entry(manager, "Apply", api_version, now, subresource, applied)
    final = [e for e in updated if e.fields]
    if mine.fields:
        final.append(mine)
    merged.setdefault("metadata", {})["managedFields"] = encode(final)
    return merged


def update(
    live: Json | None,
    new: Json,
    *,
    manager: str,
    schema: Schema,
    api_version: str,
    subresource: str,
    status_separate: bool,
    now: str,
    entries: list[Entry] | None = None,
) -> list[Json]:
    """managedFields after an Update operation by `manager` turned `live` into `new`."""
    current = decode(live) if entries is None else entries
    diff = compare(
        trackable(live, subresource, status_separate),
        trackable(new, subresource, status_separate),
        schema,
    )
    me = (manager, "Update", subresource)
    result: list[Entry] = []
    mine: Entry | None = None
    touched = diff.changed | diff.removed
    for entry in current:
        if entry.identity == me:
            mine = entry
            continue
        kept = _without(entry, touched)
        if kept.fields:
            result.append(kept)
    if mine is not None and not diff.changed and mine.fields.isdisjoint(diff.removed):
        # Unchanged: the stored field set itself, so its tree is reused, not rebuilt.
        if mine.fields:
            result.append(replace(mine, api_version=api_version))
    elif mine is not None or diff.changed:
        old = mine.fields if mine else frozenset()
        fields = (old - diff.removed) | diff.changed
        time = now if diff.changed or mine is None else mine.time
        if fields:
            result.append(Entry(manager, "Update", api_version, time, subresource, fields))
    return encode(result)


def _without(entry: Entry, paths: frozenset[fp.Path]) -> Entry:
    """`entry` owning none of `paths`: the same entry (and field set) when it owned none."""
    if entry.fields.isdisjoint(paths):
        return entry
    return replace(entry, fields=entry.fields - paths)
