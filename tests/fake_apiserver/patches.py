"""The three non-apply patch formats: JSON merge, JSON patch, strategic merge.

- `application/merge-patch+json` (RFC 7386): maps merge, `null` deletes, lists replace.
- `application/json-patch+json` (RFC 6902): add / remove / replace / move / copy /
  test; `kubectl rollout undo` sends one.
- `application/strategic-merge-patch+json`: like a merge patch, but lists with a
  `patchMergeKey` (containers and env by `name`, container ports by `containerPort`,
  volumeMounts by `mountPath`, ...) merge item by item, primitive lists with
  `patchStrategy=merge` (finalizers) union, and the `$patch: replace|delete`,
  `$retainKeys`, `$deleteFromPrimitiveList/<f>` and `$setElementOrder/<f>` directives
  kubectl emits are honoured. Custom resources do not support it (415), as on a real
  server.
"""

from __future__ import annotations

from typing import Any

from tests.fake_apiserver import errors
from tests.fake_apiserver.schema import Schema
from tests.fake_apiserver.ssa import clone

Json = dict[str, Any]
_DELETE: Any = object()


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# -- JSON patch ------------------------------------------------------------------------


def _unprocessable(message: str) -> errors.ApiError:
    return errors.ApiError(422, "Invalid", message)


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise errors.bad_request(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], op: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _unprocessable(
                f"{op} operation does not apply: doc is missing path: "
                f'"/{"/".join(parts)}": missing value'
            )
    return node


def _get(doc: Any, parts: list[str], op: str) -> Any:
    if not parts:
        return doc
    node = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node[int(last)]
    raise _unprocessable(
        f'{op} operation does not apply: doc is missing path: "/{"/".join(parts)}": missing value'
    )


def _remove(doc: Any, parts: list[str], op: str) -> Any:
    _get(doc, parts, op)
    node = _parent(doc, parts, op)
    if isinstance(node, list):
        return node.pop(int(parts[-1]))
    return node.pop(parts[-1])


def _add(doc: Any, parts: list[str], value: Any, op: str, replace: bool = False) -> Any:
    if not parts:
        return value
    node = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(node, dict):
        if replace and last not in node:
            raise _unprocessable(
                f"replace operation does not apply: doc is missing key: "
                f"/{'/'.join(parts)}: missing value"
            )
        node[last] = value
    elif isinstance(node, list):
        if last == "-" and not replace:
            node.append(value)
        elif last.isdigit() and int(last) <= len(node) - (1 if replace else 0):
            if replace:
                node[int(last)] = value
            else:
                node.insert(int(last), value)
        else:
            raise _unprocessable(f"{op} operation does not apply: index out of range")
    else:
        raise _unprocessable(f"{op} operation does not apply: doc is missing path")
    return doc


def json_patch(doc: Json, operations: Any) -> Json:
    if not isinstance(operations, list):
        raise errors.bad_request(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    result: Any = clone(doc)
    for operation in operations:
        if not isinstance(operation, dict):
            raise errors.bad_request("invalid JSON patch operation")
        op = operation.get("op")
        parts = _pointer(operation.get("path"))
        if op == "add":
            result = _add(result, parts, clone(operation.get("value")), "add")
        elif op == "remove":
            _remove(result, parts, "remove")
        elif op == "replace":
            result = _add(result, parts, clone(operation.get("value")), "replace", replace=True)
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from"))
            value = _remove(result, source, op) if op == "move" else clone(_get(result, source, op))
            result = _add(result, parts, value, op)
        elif op == "test":
            if _get(result, parts, "test") != operation.get("value"):
                raise _unprocessable(f"testing value /{'/'.join(parts)} failed: test failed")
        else:
            raise errors.bad_request(f"Unexpected kind: {op}")
    if not isinstance(result, dict):
        raise _unprocessable("the patch did not produce an object")
    return result


# -- strategic merge patch -------------------------------------------------------------


def strategic_merge(original: Json, patch: Json, schema: Schema) -> Json:
    result = _smp_map(original, patch, schema, ())
    return result if isinstance(result, dict) else {}


def _smp_map(original: Any, patch: Json, schema: Schema, names: tuple[str, ...]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    body = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace":
        return clone(body)
    result: Json = dict(original) if isinstance(original, dict) else {}
    for raw, values in patch.items():
        if raw.startswith("$deleteFromPrimitiveList/"):
            target = raw.split("/", 1)[1]
            if isinstance(result.get(target), list) and isinstance(values, list):
                result[target] = [v for v in result[target] if v not in values]
    for k, v in body.items():
        sub = (*names, k)
        if v is None:
            result.pop(k, None)
            continue
        current = result.get(k)
        if isinstance(v, dict) and not schema.atomic_map(sub):
            merged = _smp_map(current, v, schema, sub)
        elif isinstance(v, list):
            merged = _smp_list(current, v, schema, sub)
        else:
            merged = clone(v)
        if merged is _DELETE:
            result.pop(k, None)
        else:
            result[k] = merged
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(current: Any, patch: list[Any], schema: Schema, names: tuple[str, ...]) -> Any:
    original = list(current) if isinstance(current, list) else []
    if schema.smp_merges_primitives(names):
        return [*original, *(clone(v) for v in patch if v not in original)]
    key = schema.smp_key(names)
    if key is None:
        return [clone(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [clone(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    result = list(original)
    for item in patch:
        if not isinstance(item, dict):
            result.append(clone(item))
            continue
        position = next(
            (
                i
                for i, o in enumerate(result)
                if isinstance(o, dict) and o.get(key) == item.get(key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
            continue
        if position is None:
            result.append({k: clone(v) for k, v in item.items() if not k.startswith("$")})
        else:
            result[position] = _smp_map(result[position], item, schema, names)
    return result
