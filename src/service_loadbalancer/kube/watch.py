"""The informer's decisions, without I/O: what to do with a response, a watch event or an
error, and how long to wait before trying again.

Kept apart from the transport (sources/kube.py) so that every rule below is a plain table
test, as lightkube keeps its watch driver apart from httpx. The rules follow the API
concepts page (https://kubernetes.io/docs/reference/using-api/api-concepts/):

- "Efficient detection of changes": list, then watch from the list's resourceVersion;
  when the server no longer has that version it answers `410 Gone` (or, once the watch is
  open, an ERROR event whose object is a Status with code 410, reason "Expired"/"Gone"),
  and the client must relist, replacing its cache, and watch from the new version.
- "Watch bookmarks": a BOOKMARK event carries only a newer metadata.resourceVersion; it
  moves the version we resume from, and is never an object.
- "Retrieving large results sets in chunks": `limit` and `continue`; a continue token that
  has expired is also `410` (reason "Expired"), and the list must start over.

Everything else is transient (the connection, 5xx, 429 "TooManyRequests", timeouts): keep
the cache, back off, retry from the last version. 401/403 is a configuration fault: report it
and retry slowly (RBAC may be fixed without restarting us), never exit.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from service_loadbalancer.kube.objects import RawObject


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind the informer reads, and where it lives in the API."""

    kind: str
    group_version: str  # "v1" or "discovery.k8s.io/v1"
    plural: str

    def path(self, namespace: str) -> str:
        """The collection path: all namespaces when `namespace` is ""."""
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


#: Every kind the source can watch, by kind. Which are watched is a parameter
#: (KubeOptions.kinds: Secrets only with --tls-secrets; Endpoints where EndpointSlices are
#: not served).
RESOURCES: Final[Mapping[str, Resource]] = {
    "Service": Resource("Service", "v1", "services"),
    "Endpoints": Resource("Endpoints", "v1", "endpoints"),
    "EndpointSlice": Resource("EndpointSlice", "discovery.k8s.io/v1", "endpointslices"),
    "Secret": Resource("Secret", "v1", "secrets"),
    # The status publisher's (publish/): our own pods, and the nodes they run on.
    "Pod": Resource("Pod", "v1", "pods"),
    "Node": Resource("Node", "v1", "nodes"),
    "Ingress": Resource("Ingress", "networking.k8s.io/v1", "ingresses"),
    "IngressClass": Resource("IngressClass", "networking.k8s.io/v1", "ingressclasses"),
    # Multi-Cluster Services (KEP-1645): read from remote clusters only.
    "ServiceExport": Resource("ServiceExport", "multicluster.x-k8s.io/v1alpha1", "serviceexports"),
}


class Action(enum.Enum):
    """What the informer does after a failure."""

    #: Version gone (410/Expired): list again and replace the cache atomically.
    RELIST = "relist"
    #: Transient (network, 5xx, 429, timeout): back off, then watch on from the last version.
    RETRY = "retry"
    #: Not allowed (401/403): report the missing permission, back off long, try again.
    FORBIDDEN = "forbidden"


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed request or an ERROR watch event, as data."""

    action: Action
    code: int  # HTTP status, 0 for a connection error
    reason: str  # the Status reason ("Expired", "Forbidden", ...) or the error's text
    message: str = ""
    #: Seconds the server asked us to wait (Retry-After on 429/503), 0 if it did not.
    retry_after: float = 0.0


def classify(
    code: int,
    status: Mapping[str, Any] | None = None,
    *,
    error: str = "",
    retry_after: str = "",
) -> Failure:
    """The failure for an HTTP status `code` (0: no response) and its Status body, if any.

    A Status body's own `code` wins over the HTTP code: an ERROR event arrives inside a
    200 stream and carries the real code only there.
    """
    reason = error
    message = ""
    if status:
        code = int(status.get("code") or code)
        reason = str(status.get("reason") or reason)
        message = str(status.get("message") or "")
    if code == 410 or reason in ("Expired", "Gone", "ResourceExpired"):
        return Failure(Action.RELIST, code, reason or "Gone", message)
    if code in (401, 403):
        return Failure(Action.FORBIDDEN, code, reason or "Forbidden", message)
    try:
        wait = max(float(retry_after), 0.0) if retry_after else 0.0
    except ValueError:  # an HTTP date: rare from the API server; the backoff covers it
        wait = 0.0
    return Failure(Action.RETRY, code, reason or f"HTTP {code}", message, wait)


class EventType(enum.Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    object: RawObject


def parse_event(data: Mapping[str, Any], *, kind: str, api_version: str) -> WatchEvent | None:
    """One watch line, decoded; None for a line that is not a watch event at all.

    Objects in a watch carry their kind, but we set it (and apiVersion) anyway, as items of
    a list do not: the store keys objects by kind.
    """
    try:
        event_type = EventType(data.get("type"))
    except ValueError:
        return None
    obj = data.get("object")
    if not isinstance(obj, dict):
        return None
    if event_type in (EventType.ADDED, EventType.MODIFIED, EventType.DELETED):
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", api_version)
    return WatchEvent(event_type, obj)


def resource_version(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("resourceVersion") or "") if isinstance(meta, Mapping) else ""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter, as data: `delay(attempt)` is pure given
    the random source, so tests pass their own."""

    base: float = 0.2
    #: Low on purpose: after an API outage the controller must catch up within ~2 s of the
    #: API returning. A retry is one cheap watch request (a list only after a 410), a
    #: loaded server says so with 429 and Retry-After, which is honoured, and the jitter
    #: spreads the few load-balancer nodes apart.
    cap: float = 1.0
    #: Longer cap for 401/403: a permission fix is a human action, not a blip.
    forbidden_cap: float = 30.0

    def delay(self, attempt: int, action: Action, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number `attempt` (1 = the first retry)."""
        if action is Action.RELIST and attempt <= 1:
            return 0.0  # a 410 is routine: relist at once, back off only if it repeats
        cap = self.forbidden_cap if action is Action.FORBIDDEN else self.cap
        ceiling = min(cap, self.base * 2 ** max(attempt - 1, 0))
        # "Full jitter": uniform in [ceiling/2, ceiling], so many controllers restarted by
        # the same API outage do not come back in lockstep, and none retries at once.
        return (rng or random).uniform(ceiling / 2, ceiling)


def forbidden_message(*, verb: str, resource: Resource, namespace: str, failure: Failure) -> str:
    """The log line and /healthz reason for a 401/403: which permission is missing."""
    group = resource.group_version.rpartition("/")[0] or '"" (core)'
    where = f'in namespace "{namespace}"' if namespace else "at cluster scope (all namespaces)"
    text = (
        f"{failure.code} {failure.reason}: cannot {verb} {resource.plural} "
        f"(API group {group}) {where}"
    )
    return f"{text}: {failure.message}" if failure.message else text
