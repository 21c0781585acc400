"""The raw Kubernetes objects: how they are held, how they are named, which kinds we read.

Objects stay the plain JSON dicts the API server (or a manifest file) gives us (`RawObject`),
and translation reads them defensively, because a manifest may omit or mistype anything: a
typed shape would promise what nothing checks. What every part shares is here: the identity
of an object (`ObjectKey`, `key_of`), the kinds with their apiVersions, and the few
well-known strings (the TLS Secret type, the EndpointSlice-to-Service label).
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: The type of a Secret holding a certificate and its key.
TLS_SECRET_TYPE = "kubernetes.io/tls"

#: The label that ties an EndpointSlice to its Service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

#: Kinds the controller reads, with the apiVersion each must carry.
KNOWN_KINDS: dict[str, str] = {
    "Service": "v1",
    "Endpoints": "v1",
    "EndpointSlice": "discovery.k8s.io/v1",
    "Secret": "v1",
    "Ingress": "networking.k8s.io/v1",
    "IngressClass": "networking.k8s.io/v1",
}

#: Kinds without a namespace: their key's namespace is "" and they are listed cluster-wide
#: even when the controller serves only some namespaces.
CLUSTER_SCOPED_KINDS: frozenset[str] = frozenset({"IngressClass"})

RawObject = dict[str, Any]


class ObjectKey(NamedTuple):
    """The identity of an object: kind, namespace and name.

    Also used for things that are not API objects but can have problems, such as a
    manifest file (kind "File", namespace "", name = its path) or a flag.

    A NamedTuple rather than a frozen dataclass: it is hashed and compared in every dict
    of the store, the sources and translation, and a tuple's hash is C code where a
    dataclass's is a Python function (75 ms per re-read of a 20,000-object directory).
    """

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind, namespace, name = (_shown(p) for p in (self.kind, self.namespace, self.name))
        if namespace:
            return f"{kind} {namespace}/{name}"
        return f"{kind} {name}"


def _shown(part: str) -> str:
    """A key part as it may appear in a log line: a hostile name (with a line break, a
    bidi control or 100 kB of text) is escaped and shortened, so it cannot forge lines."""
    if part.isprintable() and len(part) <= 253:
        return part
    return repr(part if len(part) <= 64 else part[:61] + "...")


def key_of(obj: RawObject) -> ObjectKey:
    """The key of a raw object; namespace defaults to "default" as kubectl does (and is
    "" for a cluster-scoped kind)."""
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind", ""))
    return ObjectKey(
        kind=kind,
        namespace="" if kind in CLUSTER_SCOPED_KINDS else str(meta.get("namespace") or "default"),
        name=str(meta.get("name", "")),
    )


#: Annotations the controller never reads that can be as large as the object itself.
_BULKY_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim(obj: RawObject) -> RawObject:
    """Drop, in place, what the API server sends in bulk and the controller never reads.

    `metadata.managedFields` and kubectl's last-applied copy of the object, and of each
    EndpointSlice endpoint everything but its first address (the only one consumers need
    to read, says the EndpointSlice API) and a `ready: false` condition (a missing one
    means ready): no nodeName, targetRef, zone, hints. At 10,000 Services x 10 endpoints
    that is a third of the store's memory; translation reads exactly the same values.
    """
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            for name in _BULKY_ANNOTATIONS:
                annotations.pop(name, None)
    status = obj.get("status")
    if obj.get("kind") == "Node" and isinstance(status, dict):
        status.pop("images", None)  # the publisher reads addresses only; images are bulk
    endpoints = obj.get("endpoints")
    if obj.get("kind") == "EndpointSlice" and isinstance(endpoints, list):
        obj["endpoints"] = [_slim_endpoint(ep) for ep in endpoints]
    return obj


def _slim_endpoint(endpoint: object) -> object:
    if not isinstance(endpoint, dict):
        return endpoint  # translation reports or skips it as it is
    slimmed: dict[str, Any] = {}
    addresses = endpoint.get("addresses")
    if addresses is not None:
        slimmed["addresses"] = addresses[:1] if isinstance(addresses, list) else addresses
    conditions = endpoint.get("conditions")
    if isinstance(conditions, dict) and conditions.get("ready") is False:
        slimmed["conditions"] = {"ready": False}
    return slimmed


def a_type(value: object) -> str:
    """'a list', 'a number', 'null', ... for messages about a field of the wrong type."""
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


def pod_ready(pod: RawObject) -> bool:
    """A pod that serves: Running, Ready, not terminating (its node is about to stop
    serving). A malformed pod is not ready, never an exception."""
    meta, status = pod.get("metadata"), pod.get("status")
    if not isinstance(meta, dict) or not isinstance(status, dict):
        return False
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return False
    return any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )


def quoted(value: object) -> str:
    """A value as a message may show it: escaped (repr) and shortened, so a hostile
    value cannot forge log lines or flood them."""
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= 64 else text[:61] + "...")
