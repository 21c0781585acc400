"""Manifest parsing and validation: text in, checked Kubernetes objects and problems out.

Why it looks like this:

- **The same objects as the API.** Translation must not care where an object came from, so a
  manifest goes through the checks the API server would make before storing it (kind with its
  apiVersion, name and namespace formats, string-valued labels and annotations) and gets the
  namespace `kubectl apply` would give it. Scalars keep the meaning Kubernetes' YAML-to-JSON
  step gives them: dates stay strings, map keys become strings, and a key given twice is an
  error as in `kubectl apply --validate=strict`. An object the cluster would refuse is a
  `Problem` here too, never silently half-accepted.
- **Pure.** No files, no watching, no exceptions for bad input: every defect is a `Problem`
  naming the origin, the document and the object, and the good objects next to it are still
  used. So the rules are tested with plain tables, and the directory reader (sources/files.py)
  only has to decide which files to read and when.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from typing import Any, Final

import yaml

from service_loadbalancer.kube.names import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    NameFormat,
)
from service_loadbalancer.kube.objects import KNOWN_KINDS, ObjectKey, RawObject
from service_loadbalancer.model import Problem

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

#: A document may not expand (through YAML aliases) into more values than this.
MAX_VALUES_PER_DOCUMENT: Final = 1_000_000


class _ManifestLoader(_SafeLoader):
    """The safe loader without the YAML 1.1 timestamp type: Kubernetes keeps 2024-01-01 a string."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}

_MERGE_TAG: Final = "tag:yaml.org,2002:merge"

#: The format of metadata.name per kind, as the API server validates it.
_NAME_FORMAT_OF_KIND: Final = {
    "Service": DNS1035_LABEL,
    "Endpoints": DNS1123_SUBDOMAIN,
    "EndpointSlice": DNS1123_SUBDOMAIN,
    "Secret": DNS1123_SUBDOMAIN,
}


class _BadDocument(Exception):
    """A document that cannot become an object; the message is the problem's reason."""


def parse_manifests(text: str, *, origin: str) -> tuple[list[RawObject], list[Problem]]:
    """Parse one file's text (multi-document YAML; JSON is YAML too) into checked objects.

    `kind: List` (and `<Kind>List`, as the API returns it) is flattened. Empty documents are
    ignored. Each object must be a mapping with a known kind and its apiVersion, a valid
    metadata.name and, if given, a valid metadata.namespace; objects without a namespace get
    "default" written into their metadata. An object that fails is skipped with a Problem on
    ObjectKey("File", "", origin) whose reason names the document and the object, e.g.
    'document 2 (Service "web"): unknown kind "Servise"'. Unparsable YAML gives one Problem with
    the parser's line and column; the objects of the documents before it are still returned.
    """
    subject = ObjectKey("File", "", origin)
    objects: list[RawObject] = []
    reasons: list[str] = []
    for index, document in _documents(text, reasons):
        label = f"document {index}"
        if isinstance(document, _BadDocument):
            reasons.append(f"{label}: {document}")
        else:
            _accept(document, label, objects, reasons)
    return objects, [Problem(subject, reason) for reason in reasons]


def _documents(text: str, reasons: list[str]) -> Iterator[tuple[int, object]]:
    """The documents of a YAML stream, 1-based, as plain JSON-like data or a `_BadDocument`.

    A syntax error ends the stream (the parser cannot resynchronise) and adds a reason; a
    document that parses but cannot be constructed (duplicate key, unknown tag) is bad alone.

    A text that is one JSON value (what `kubectl get -o json` writes) is read by the JSON
    parser, ten times faster than YAML's for the same data and exactly as the API server
    reads it; anything it refuses (a duplicate key, NaN, bad syntax) goes through the
    YAML path, whose messages say where.
    """
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        data = _strict_json(stripped)
        if data is not _NOT_JSON:
            yield 1, data
            return
    loader = _ManifestLoader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except yaml.MarkedYAMLError as error:
                reasons.append(_syntax_error(error, index))
                return
            except yaml.YAMLError as error:  # unmarked: should not happen, but is still input
                reasons.append(f"invalid YAML: {error}")
                return
            index += 1
            if node is None:
                continue
            try:
                duplicate = _duplicate_key(node)
                if duplicate:
                    raise _BadDocument(duplicate)
                data = loader.construct_document(node)
                yield index, _json_like(data)
            except _BadDocument as error:
                yield index, error
            except yaml.MarkedYAMLError as error:
                _reset_constructor(loader)
                yield index, _BadDocument(_marked(error))
            except RecursionError:
                _reset_constructor(loader)
                yield index, _BadDocument("nested too deeply")
    finally:
        loader.dispose()


#: `_strict_json`'s answer for a text the JSON parser does not take as it is.
_NOT_JSON = object()


def _strict_json(text: str) -> object:
    """The JSON value of `text`, or `_NOT_JSON` when it has a duplicate key, a constant
    JSON does not define (NaN, Infinity), bad syntax, or nests too deeply."""

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        mapping = dict(items)
        if len(mapping) != len(items):
            raise ValueError("duplicate key")
        return mapping

    def constant(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _syntax_error(error: yaml.MarkedYAMLError, documents_read: int) -> str:
    reason = f"invalid YAML: {_marked(error)}"
    if documents_read:
        reason += f"; documents after document {documents_read} were not read"
    return reason


def _marked(error: yaml.MarkedYAMLError) -> str:
    """'line 4, column 1: did not find ... (while parsing a flow sequence at line 3, column 4)'."""
    mark = error.problem_mark or error.context_mark
    text = error.problem or error.context or "error"
    if mark is not None:
        text = f"line {mark.line + 1}, column {mark.column + 1}: {text}"
    if error.context and error.problem:
        context = error.context
        if error.context_mark is not None:
            line, column = error.context_mark.line + 1, error.context_mark.column + 1
            context += f" at line {line}, column {column}"
        text += f" ({context})"
    return text


def _reset_constructor(loader: _ManifestLoader) -> None:
    """Forget a failed construction, as construct_document does after a good one."""
    loader.constructed_objects = {}
    loader.recursive_objects = {}
    loader.state_generators = []
    loader.deep_construct = False


def _duplicate_key(root: yaml.Node) -> str | None:
    """The first key given twice in one mapping (YAML merge keys aside), as a reason, or None."""
    seen: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias: checked already
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, yaml.Node] = {}
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                    continue
                first = keys.setdefault(key.value, key)
                if first is not key:
                    return (
                        f'line {key.start_mark.line + 1}: key "{key.value}" is given twice '
                        f"(first at line {first.start_mark.line + 1})"
                    )
            stack.extend(child for pair in reversed(node.value) for child in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    return None


def _json_like(data: object) -> object:
    """A deep copy as Kubernetes' YAML-to-JSON step would see it: string keys, no shared parts.

    Copying breaks the sharing YAML aliases create (so no two stored objects share a dict), and
    the budget stops an alias bomb from expanding without bound.
    """
    budget = MAX_VALUES_PER_DOCUMENT
    active: set[int] = set()

    def copy(value: object) -> object:
        nonlocal budget
        budget -= 1
        if budget < 0:
            raise _BadDocument(f"more than {MAX_VALUES_PER_DOCUMENT} values (alias expansion?)")
        if isinstance(value, dict | list):
            if id(value) in active:
                raise _BadDocument("a YAML alias refers to its own parent")
            active.add(id(value))
            try:
                if isinstance(value, dict):
                    return {_json_key(k): copy(v) for k, v in value.items()}
                return [copy(item) for item in value]
            finally:
                active.discard(id(value))
        return value

    try:
        return copy(data)
    except RecursionError:
        raise _BadDocument("nested too deeply") from None


def _json_key(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def _accept(data: object, label: str, objects: list[RawObject], reasons: list[str]) -> None:
    """Check one document (or List item): append it to `objects`, or why not to `reasons`."""
    if data is None:
        return
    if not isinstance(data, dict):
        reasons.append(f"{label}: not a mapping but {_a(data)}")
        return
    where = _describe(label, data.get("kind"), _name_of(data))
    try:
        item_kind = _list_kind(data.get("kind"))
        if item_kind is None:
            objects.append(_checked(data))
            return
        for number, item in enumerate(_list_items(data, item_kind), start=1):
            _accept(item, f"{label}, item {number}", objects, reasons)
    except _BadDocument as error:
        reasons.append(f"{where}: {error}")


def _describe(label: str, kind: object, name: str | None) -> str:
    """'document 2 (Service "web")', as much of it as the document gives."""
    parts = [
        part for part in (kind if isinstance(kind, str) else "", name and _quote(name)) if part
    ]
    return f"{label} ({' '.join(parts)})" if parts else label


def _list_kind(kind: object) -> str | None:
    """For `List` "" (any kinds); for `ServiceList` and friends the item kind; else None."""
    if kind == "List":
        return ""
    if isinstance(kind, str) and kind.endswith("List") and kind[: -len("List")] in KNOWN_KINDS:
        return kind[: -len("List")]
    return None


def _list_items(data: dict[str, Any], item_kind: str) -> list[object]:
    want = KNOWN_KINDS[item_kind] if item_kind else "v1"
    if data.get("apiVersion") != want:
        kind, api_version = data.get("kind"), data.get("apiVersion")
        raise _BadDocument(f"{kind} needs apiVersion {_quote(want)}, not {_quote(api_version)}")
    items = data.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise _BadDocument(f"items is {_a(items)}, not a list")
    if item_kind:
        for item in items:
            if isinstance(item, dict):
                # The API leaves kind and apiVersion out of the items of a typed list.
                item.setdefault("kind", item_kind)
                item.setdefault("apiVersion", want)
    return items


def _checked(obj: dict[str, Any]) -> RawObject:
    """The object with its namespace defaulted; `_BadDocument` says why the API would refuse it."""
    kind = obj.get("kind")
    if kind is None or kind == "":
        raise _BadDocument("no kind")
    if not isinstance(kind, str):
        raise _BadDocument(f"kind is {_a(kind)}, not a string")
    if kind not in KNOWN_KINDS:
        raise _BadDocument(_unknown_kind(kind))
    want = KNOWN_KINDS[kind]
    api_version = obj.get("apiVersion")
    if api_version != want:
        if api_version is None or api_version == "":
            raise _BadDocument(f"no apiVersion ({kind} is {_quote(want)})")
        raise _BadDocument(f"{kind} needs apiVersion {_quote(want)}, not {_quote(api_version)}")

    meta = obj.get("metadata")
    if meta is None:
        raise _BadDocument("no metadata.name")
    if not isinstance(meta, dict):
        raise _BadDocument(f"metadata is {_a(meta)}, not a mapping")
    name = meta.get("name")
    if name is None or name == "":
        if meta.get("generateName"):
            raise _BadDocument("no metadata.name (generateName cannot be used in manifests)")
        raise _BadDocument("no metadata.name")
    if not isinstance(name, str):
        raise _BadDocument(f"metadata.name is {_a(name)}, not a string")
    _check_name("metadata.name", name, _NAME_FORMAT_OF_KIND[kind])

    namespace = meta.get("namespace")
    if namespace is None or namespace == "":
        meta["namespace"] = "default"
    elif not isinstance(namespace, str):
        raise _BadDocument(f"metadata.namespace is {_a(namespace)}, not a string")
    else:
        _check_name("metadata.namespace", namespace, DNS1123_LABEL)

    for field in ("labels", "annotations"):
        _check_string_map(meta, field)
    return obj


def _check_name(field: str, value: str, name_format: NameFormat) -> None:
    if len(value) > name_format.max_length:
        raise _BadDocument(
            f"{field} {_quote(value)} is invalid: must be no more than "
            f"{name_format.max_length} characters"
        )
    if not name_format.matches(value):
        raise _BadDocument(f"{field} {_quote(value)} is invalid: {name_format.rule}")


def _check_string_map(meta: dict[str, Any], field: str) -> None:
    """Labels and annotations are map[string]string in the API: `true` or `8080` unquoted fails."""
    value = meta.get(field)
    if value is None:
        return
    if not isinstance(value, dict):
        raise _BadDocument(f"metadata.{field} is {_a(value)}, not a mapping")
    for key, item in value.items():
        if item is None:  # JSON null decodes to "" in a Go map[string]string
            value[key] = ""
        elif not isinstance(item, str):
            raise _BadDocument(
                f"metadata.{field}[{_quote(key)}] must be a string, not {_a(item)} "
                f"{_yaml_scalar(item)} (quote it)"
            )


def _unknown_kind(kind: str) -> str:
    reason = f"unknown kind {_quote(kind)}"
    by_lower = {known.lower(): known for known in KNOWN_KINDS}
    guess = by_lower.get(kind.lower()) or next(
        iter(difflib.get_close_matches(kind, list(KNOWN_KINDS), n=1, cutoff=0.75)), None
    )
    if guess:
        return f"{reason} (did you mean {_quote(guess)}?)"
    return f"{reason} (service-loadbalancer reads {', '.join(KNOWN_KINDS)})"


def _name_of(data: dict[str, Any]) -> str | None:
    meta = data.get("metadata")
    if isinstance(meta, dict):
        name = meta.get("name")
        if isinstance(name, str) and name:
            return name
    return None


def _quote(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _a(value: object) -> str:
    """'a list', 'a number', ... for messages about wrong types."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else ""
