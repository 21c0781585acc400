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
from typing import Any, Final

from service_loadbalancer.kube.ingress_spec import spec_errors
from service_loadbalancer.kube.names import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    NameFormat,
)
from service_loadbalancer.kube.objects import (
    CLUSTER_SCOPED_KINDS,
    KNOWN_KINDS,
    ObjectKey,
    RawObject,
    a_type,
)
from service_loadbalancer.model import Problem
from service_loadbalancer.sources.documents import BadDocument, documents

#: The format of metadata.name per kind, as the API server validates it.
_NAME_FORMAT_OF_KIND: Final = {
    "Service": DNS1035_LABEL,
    "Endpoints": DNS1123_SUBDOMAIN,
    "EndpointSlice": DNS1123_SUBDOMAIN,
    "Secret": DNS1123_SUBDOMAIN,
    "Ingress": DNS1123_SUBDOMAIN,
    "IngressClass": DNS1123_SUBDOMAIN,
}


def parse_manifests(text: str, *, origin: str) -> tuple[list[RawObject], list[Problem]]:
    """Parse one file's text (multi-document YAML, or JSON) into checked objects.

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
    for index, document in documents(text, reasons):
        label = f"document {index}"
        if isinstance(document, BadDocument):
            reasons.append(f"{label}: {document}")
        else:
            _accept(document, label, objects, reasons)
    return objects, [Problem(subject, reason) for reason in reasons]


def _accept(data: object, label: str, objects: list[RawObject], reasons: list[str]) -> None:
    """Check one document (or List item): append it to `objects`, or why not to `reasons`."""
    if data is None:
        return
    if not isinstance(data, dict):
        reasons.append(f"{label}: not a mapping but {a_type(data)}")
        return
    where = _describe(label, data.get("kind"), _name_of(data))
    try:
        item_kind = _list_kind(data.get("kind"))
        if item_kind is None:
            objects.append(_checked(data))
            return
        for number, item in enumerate(_list_items(data, item_kind), start=1):
            _accept(item, f"{label}, item {number}", objects, reasons)
    except BadDocument as error:
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
        raise BadDocument(f"{kind} needs apiVersion {_quote(want)}, not {_quote(api_version)}")
    items = data.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadDocument(f"items is {a_type(items)}, not a list")
    if item_kind:
        for item in items:
            if isinstance(item, dict):
                # The API leaves kind and apiVersion out of the items of a typed list.
                item.setdefault("kind", item_kind)
                item.setdefault("apiVersion", want)
    return items


def _checked(obj: dict[str, Any]) -> RawObject:
    """The object with its namespace defaulted; `BadDocument` says why the API would refuse it."""
    kind = obj.get("kind")
    if kind is None or kind == "":
        raise BadDocument("no kind")
    if not isinstance(kind, str):
        raise BadDocument(f"kind is {a_type(kind)}, not a string")
    if kind not in KNOWN_KINDS:
        raise BadDocument(_unknown_kind(kind))
    want = KNOWN_KINDS[kind]
    api_version = obj.get("apiVersion")
    if api_version != want:
        if api_version is None or api_version == "":
            raise BadDocument(f"no apiVersion ({kind} is {_quote(want)})")
        raise BadDocument(f"{kind} needs apiVersion {_quote(want)}, not {_quote(api_version)}")

    meta = obj.get("metadata")
    if meta is None:
        raise BadDocument("no metadata.name")
    if not isinstance(meta, dict):
        raise BadDocument(f"metadata is {a_type(meta)}, not a mapping")
    name = meta.get("name")
    if name is None or name == "":
        if meta.get("generateName"):
            raise BadDocument("no metadata.name (generateName cannot be used in manifests)")
        raise BadDocument("no metadata.name")
    if not isinstance(name, str):
        raise BadDocument(f"metadata.name is {a_type(name)}, not a string")
    _check_name("metadata.name", name, _NAME_FORMAT_OF_KIND[kind])

    namespace = meta.get("namespace")
    if kind in CLUSTER_SCOPED_KINDS:
        meta.pop("namespace", None)  # the API server ignores it for a cluster-scoped kind
    elif namespace is None or namespace == "":
        meta["namespace"] = "default"
    elif not isinstance(namespace, str):
        raise BadDocument(f"metadata.namespace is {a_type(namespace)}, not a string")
    else:
        _check_name("metadata.namespace", namespace, DNS1123_LABEL)

    for field in ("labels", "annotations"):
        _check_string_map(meta, field)
    if kind == "Ingress":
        errors = spec_errors(obj.get("spec"))
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise BadDocument(f"{errors[0]}{more}")
    elif kind in ("EndpointSlice", "Endpoints"):
        error = _endpoints_error(obj)
        if error:
            raise BadDocument(error)
    elif kind == "IngressClass":
        spec = obj.get("spec")
        if spec is not None and not isinstance(spec, dict):
            raise BadDocument(f"spec is {a_type(spec)}, not a mapping")
        controller = (spec or {}).get("controller")
        if controller is not None and not isinstance(controller, str):
            raise BadDocument(f"spec.controller is {a_type(controller)}, not a string")
    return obj


#: The lists of mappings in endpoint objects, by kind: (path, field, inner fields).
_ENDPOINT_LISTS: Final = {
    "EndpointSlice": (("ports", ()), ("endpoints", ("conditions",))),
    "Endpoints": (("subsets", ("addresses", "notReadyAddresses", "ports")),),
}


def _endpoints_error(obj: dict[str, Any]) -> str | None:
    """The first field of an EndpointSlice or Endpoints of a type the API would refuse
    (a list that is not a list of mappings, a mapping that is not one), with its path."""
    for field, inner in _ENDPOINT_LISTS[str(obj["kind"])]:
        items = obj.get(field)
        if items is None:
            continue
        if not isinstance(items, list):
            return f"{field} is {a_type(items)}, not a list"
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                return f"{field}[{i}] is {a_type(item)}, not a mapping"
            for name in inner:
                value = item.get(name)
                wanted = dict if name == "conditions" else list
                if value is not None and not isinstance(value, wanted):
                    shape = "a mapping" if wanted is dict else "a list"
                    return f"{field}[{i}].{name} is {a_type(value)}, not {shape}"
                if isinstance(value, list):
                    for j, entry in enumerate(value):
                        if not isinstance(entry, dict):
                            return f"{field}[{i}].{name}[{j}] is {a_type(entry)}, not a mapping"
            addresses = item.get("addresses") if field == "endpoints" else None
            if addresses is not None and not (
                isinstance(addresses, list) and all(isinstance(a, str) for a in addresses)
            ):
                return f"{field}[{i}].addresses must be a list of strings"
    return None


def _check_name(field: str, value: str, name_format: NameFormat) -> None:
    if len(value) > name_format.max_length:
        raise BadDocument(
            f"{field} {_quote(value)} is invalid: must be no more than "
            f"{name_format.max_length} characters"
        )
    if not name_format.matches(value):
        raise BadDocument(f"{field} {_quote(value)} is invalid: {name_format.rule}")


def _check_string_map(meta: dict[str, Any], field: str) -> None:
    """Labels and annotations are map[string]string in the API: `true` or `8080` unquoted fails."""
    value = meta.get(field)
    if value is None:
        return
    if not isinstance(value, dict):
        raise BadDocument(f"metadata.{field} is {a_type(value)}, not a mapping")
    for key, item in value.items():
        if item is None:  # JSON null decodes to "" in a Go map[string]string
            value[key] = ""
        elif not isinstance(item, str):
            raise BadDocument(
                f"metadata.{field}[{_quote(key)}] must be a string, not {a_type(item)} "
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


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else ""
