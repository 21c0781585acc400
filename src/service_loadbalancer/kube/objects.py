"""TypedDicts for the raw Kubernetes objects the controller reads.

They describe the JSON the API server (or a manifest file) gives us, no more: the
translation reads them defensively, because a manifest may omit anything. Only the
fields we use are declared; `total=False` everywhere, since the API omits empty fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    resourceVersion: str
    uid: str


class ServicePort(TypedDict, total=False):
    name: str
    protocol: str
    port: int
    targetPort: int | str
    nodePort: int


class ClientIPConfig(TypedDict, total=False):
    timeoutSeconds: int


class SessionAffinityConfig(TypedDict, total=False):
    clientIP: ClientIPConfig


class ServiceSpec(TypedDict, total=False):
    type: str
    clusterIP: str
    clusterIPs: list[str]
    externalName: str
    ports: list[ServicePort]
    selector: dict[str, str]
    sessionAffinity: str
    sessionAffinityConfig: SessionAffinityConfig


class Service(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ServiceSpec


class EndpointAddress(TypedDict, total=False):
    ip: str
    hostname: str
    nodeName: str


class EndpointPort(TypedDict, total=False):
    name: str
    port: int
    protocol: str


class EndpointSubset(TypedDict, total=False):
    addresses: list[EndpointAddress]
    notReadyAddresses: list[EndpointAddress]
    ports: list[EndpointPort]


class Endpoints(TypedDict, total=False):
    """core/v1 Endpoints: one object per Service, named like it."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    subsets: list[EndpointSubset]


class EndpointConditions(TypedDict, total=False):
    ready: bool | None
    serving: bool | None
    terminating: bool | None


class SliceEndpoint(TypedDict, total=False):
    addresses: list[str]
    conditions: EndpointConditions
    hostname: str
    nodeName: str


class EndpointSlice(TypedDict, total=False):
    """discovery.k8s.io/v1 EndpointSlice: many per Service, tied by a label."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    addressType: str
    endpoints: list[SliceEndpoint]
    ports: list[EndpointPort]


class Secret(TypedDict, total=False):
    """core/v1 Secret; only `kubernetes.io/tls` ones, and only when an annotation names
    them (lb.ssl-secret) and --tls-secrets allows it. `data` values are base64."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    type: str
    data: dict[str, str]


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
}

RawObject = dict[str, Any]


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """The identity of an object: kind, namespace and name.

    Also used for things that are not API objects but can have problems, such as a
    manifest file (kind "File", namespace "", name = its path) or a flag.
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
    """The key of a raw object; namespace defaults to "default" as kubectl does."""
    meta = obj.get("metadata") or {}
    return ObjectKey(
        kind=str(obj.get("kind", "")),
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name", "")),
    )
