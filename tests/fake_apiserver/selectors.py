"""Label and field selectors with apimachinery's full syntax and its errors.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
`a>1`, `a<1`, comma-joined; a malformed one is a 400. Field selectors: `f=v`, `f==v`,
`f!=v` over the fields each kind supports (`metadata.name` and `metadata.namespace`
everywhere); any other field is a 400 "field label not supported", as on a real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fake_apiserver import errors

Json = dict[str, Any]

_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = re.compile(rf"^({_NAME})?$")
_QUALIFIED_NAME = re.compile(rf"^{_NAME}$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid label key (a qualified name), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return (
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character"
        )
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
            "or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # = != in notin exists !exists gt lt
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.operator == "gt" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, obj: Json | None) -> bool:
        if obj is None:
            return False
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)


_TOKEN = re.compile(r"\s*(==|!=|=|!|<|>|\(|\)|,|[^\s,()=!<>]+)")


def _tokens(text: str) -> list[str]:
    out = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise errors.bad_request(f"unable to parse requirement: unexpected {text[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _bad(found: str, expected: str) -> errors.ApiError:
    return errors.bad_request(f"unable to parse requirement: found '{found}', expected: {expected}")


def parse_labels(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    tokens = _tokens(text)
    requirements = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            return ""
        i += 1
        return tokens[i - 1]

    def peek() -> str:
        return tokens[i] if i < len(tokens) else ""

    while True:
        token = take()
        negated = False
        if token == "!":
            negated = True
            token = take()
        if not token or token in "(),=!<>" or token in ("==", "!="):
            raise _bad(token, "identifier")
        key = token
        problem = label_key_error(key)
        if problem:
            raise errors.bad_request(
                f"unable to parse requirement: invalid label key {key!r}: {problem}"
            )
        if negated:
            requirements.append(Requirement(key, "!exists"))
        elif peek() in ("", ","):
            requirements.append(Requirement(key, "exists"))
        else:
            op = take()
            if op in ("=", "==", "!="):
                value = "" if peek() in ("", ",") else _value(take())
                requirements.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
            elif op in ("in", "notin"):
                if take() != "(":
                    raise _bad(tokens[i - 1] if i else "", "'(', expected a value list")
                values = []
                while True:
                    item = take()
                    if item == ")":
                        break
                    if item == ",":
                        continue
                    if item == "":
                        raise _bad("", "')'")
                    values.append(_value(item))
                requirements.append(Requirement(key, op, tuple(values)))
            elif op in (">", "<"):
                bound = take()
                if not re.fullmatch(r"-?\d+", bound):
                    raise errors.bad_request(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                        f"must be an integer, got {bound!r}"
                    )
                requirements.append(Requirement(key, "gt" if op == ">" else "lt", (bound,)))
            else:
                raise _bad(op, "'=', '!=', '==', 'in', notin'")
        token = take()
        if token == "":
            break
        if token != ",":
            raise _bad(token, "','")
    return LabelSelector(tuple(requirements))


def _value(token: str) -> str:
    if token in ("(", ")", "=", "==", "!=", "!", "<", ">"):
        raise _bad(token, "identifier for value")
    problem = label_value_error(token)
    if problem:
        raise errors.bad_request(
            f"unable to parse requirement: values[0][{token}]: Invalid value: {token!r}: {problem}"
        )
    return token


def selector_from_match(selector: Json | None) -> LabelSelector:
    """A `metav1.LabelSelector` (matchLabels / matchExpressions) as a LabelSelector."""
    if not selector:
        return LabelSelector()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")), "exists")
        reqs.append(Requirement(str(expr.get("key")), op, tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


def selector_string(selector: Json | None) -> str:
    """A `metav1.LabelSelector` in selector syntax (`app=web,tier in (a,b)`)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    ops = {"In": "in", "NotIn": "notin"}
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), str(expr.get("operator", ""))
        if op in ops:
            parts.append(f"{key} {ops[op]} ({','.join(sorted(expr.get('values') or []))})")
        elif op == "Exists":
            parts.append(str(key))
        else:
            parts.append(f"!{key}")
    return ",".join(parts)


# -- field selectors -------------------------------------------------------------------

_EVENT_FIELDS = {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}
EXTRA_FIELDS: dict[str, set[str]] = {
    "Secret": {"type"},
    "Event": _EVENT_FIELDS,
    "Namespace": {"status.phase"},
    "Pod": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "ReplicaSet": {"status.replicas"},
    "Service": {"spec.clusterIP", "spec.type"},
}


@dataclass(frozen=True)
class FieldTerm:
    field: str
    value: str
    equal: bool


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...] = ()

    def matches(self, obj: Json | None) -> bool:
        if obj is None:
            return False
        return all((_field_value(obj, t.field) == t.value) == t.equal for t in self.terms)

    def exact_name(self) -> str | None:
        for t in self.terms:
            if t.field == "metadata.name" and t.equal:
                return t.value
        return None


def _field_value(obj: Json, name: str) -> str:
    if name == "source":
        name = "source.component"
    node: Any = obj
    for part in name.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_fields(text: str | None, kind: str) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    allowed = {"metadata.name", "metadata.namespace"} | EXTRA_FIELDS.get(kind, set())
    terms = []
    for term in _split_unescaped(text, ","):
        raw = term.strip()
        if not raw:
            continue
        m = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", raw)
        if not m:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
        name, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3).strip())
        if name not in allowed:
            raise errors.bad_request(f"field label not supported: {name}")
        terms.append(FieldTerm(name, value, op != "!="))
    return FieldSelector(tuple(terms))


Predicate = Callable[[Json | None], bool]


def predicate(labels: LabelSelector, fields: FieldSelector) -> Predicate:
    def matches(obj: Json | None) -> bool:
        return labels.matches(obj) and fields.matches(obj)

    return matches
