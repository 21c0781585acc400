"""A manifest file's text to plain, JSON-like documents; no validation (manifests.py).

JSON (what `kubectl get -o json` writes) goes through the JSON parser, fast and exactly
as the API server reads it. Everything else, and JSON the strict parser refuses (a key
given twice, NaN), goes through YAML with Kubernetes' rules: no timestamps (a date stays
a string), string map keys, a key given twice is an error, aliases are copied (never
shared between objects) within a budget, and errors say where (line and column).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Final

import yaml

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


class BadDocument(Exception):
    """A document that cannot become an object; the message is the problem's reason."""


def documents(text: str, reasons: list[str]) -> Iterator[tuple[int, object]]:
    """The documents of a YAML stream, 1-based, as plain JSON-like data or a `BadDocument`.

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
                    raise BadDocument(duplicate)
                data = loader.construct_document(node)
                yield index, _json_like(data)
            except BadDocument as error:
                yield index, error
            except yaml.MarkedYAMLError as error:
                _reset_constructor(loader)
                yield index, BadDocument(_marked(error))
            except RecursionError:
                _reset_constructor(loader)
                yield index, BadDocument("nested too deeply")
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
            raise BadDocument(f"more than {MAX_VALUES_PER_DOCUMENT} values (alias expansion?)")
        if isinstance(value, dict | list):
            if id(value) in active:
                raise BadDocument("a YAML alias refers to its own parent")
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
        raise BadDocument("nested too deeply") from None


def _json_key(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)
