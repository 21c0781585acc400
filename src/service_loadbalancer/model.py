"""The neutral load-balancer model: what to serve, independent of Kubernetes and HAProxy.

`translate` builds it from Kubernetes objects; `haproxy.render` turns it into config.
Everything is a frozen, slotted dataclass with tuples, so two models compare by value:
the reconciler does nothing when the new model equals the running one.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from service_loadbalancer.kube.objects import ObjectKey


class Mode(StrEnum):
    HTTP = "http"
    TCP = "tcp"


#: What backend_name gives: namespaces and Service names are DNS labels (no underscore),
#: so the Service can be read back (per-Service figures from HAProxy's stats).
_BACKEND_NAME = re.compile(r"[a-z0-9]+_([a-z0-9][a-z0-9-]*)_([a-z0-9][a-z0-9-]*)_[0-9]+\Z")


def backend_name(mode: Mode, key: ObjectKey, number: int) -> str:
    """The backend of one Service port: `<mode>_<namespace>_<name>_<port>`."""
    return f"{mode.value}_{key.namespace}_{key.name}_{number}"


def service_of_backend(backend: str) -> ObjectKey | None:
    """The Service a backend serves, from its name; None for our own backends."""
    found = _BACKEND_NAME.match(backend)
    if found is None:
        return None
    return ObjectKey("Service", found[1], found[2])


class Algorithm(StrEnum):
    ROUNDROBIN = "roundrobin"
    LEASTCONN = "leastconn"
    FIRST = "first"
    SOURCE = "source"


class Stickiness(StrEnum):
    NONE = "none"
    SOURCE_IP = "source-ip"
    COOKIE = "cookie"


class Affinity(StrEnum):
    """Which cluster's endpoints a global Service prefers (lb.affinity): the others
    are HAProxy backup servers, used per request once no preferred one is usable."""

    LOCAL = "local"
    NONE = "none"
    REMOTE = "remote"


class Protocol(StrEnum):
    """What a backend speaks to its pods: HTTP/1.1 or HTTP/2, in clear text or over TLS."""

    H1 = "h1"
    H2C = "h2c"
    #: HTTP/2 over TLS (offered by ALPN).
    H2 = "h2"
    #: HTTP/1.1 over TLS.
    HTTPS = "https"

    @property
    def tls(self) -> bool:
        return self in (Protocol.H2, Protocol.HTTPS)


@dataclass(frozen=True, slots=True, order=True)
class Server:
    """One endpoint of a backend. `name` is stable for a given address and port."""

    name: str
    address: str
    port: int
    #: A backup server: used only while no other (active) server is usable.
    backup: bool = False
    #: The remote cluster the endpoint comes from; "" for the local one.
    cluster: str = ""


@dataclass(frozen=True, slots=True)
class Backend:
    """A pool of servers for one port of one Service."""

    name: str
    mode: Mode
    service: ObjectKey
    port: int
    algorithm: Algorithm
    servers: tuple[Server, ...]
    stickiness: Stickiness = Stickiness.NONE
    #: How long a client stays with its server (ClientIP timeout), in seconds.
    stickiness_timeout: int = 10800
    #: Path prefixes (without trailing slash) removed before the request reaches a
    #: server; only applied when the request came in through such a path route.
    strip_prefixes: tuple[str, ...] = ()
    #: Plain HTTP requests get a redirect to HTTPS (lb.sslRedirect).
    ssl_redirect: bool = False
    #: Strict-Transport-Security max-age for responses sent over HTTPS (lb.hsts).
    hsts_max_age: int | None = None
    #: `timeout server` and `timeout connect` in milliseconds (lb.timeout-server,
    #: lb.timeout-connect); None: the template's defaults.
    timeout_server_ms: int | None = None
    timeout_connect_ms: int | None = None
    #: An external service (ExternalName): the DNS name its one server is, resolved
    #: by the proxy at run time. Kept here as well as in the server so that a change of
    #: name is a change of the backend (a reload), never an endpoint change.
    external_name: str | None = None
    #: HTTP/1.1 or HTTP/2, in clear text or over TLS, to the pods; HTTP backends only.
    protocol: Protocol = Protocol.H1
    #: Only clients from these networks (CIDRs) are served (loadBalancerSourceRanges);
    #: empty: everyone.
    allowed_sources: tuple[str, ...] = ()
    #: Over TLS: the name to ask the pods for (SNI) and to verify their certificate
    #: against; None: the client's Host header. Unset for clear-text backends.
    tls_server_name: str | None = None
    #: Every usable backup server takes traffic at once (`option allbackups`), not only
    #: the first: a global Service fails over to all the other cluster's endpoints.
    all_backups: bool = False


@dataclass(frozen=True, slots=True, order=True)
class HttpRoute:
    """A request whose Host is `host` (any host when None) and whose path begins with
    `path` on a segment boundary goes to `backend`; with `strip`, minus that prefix."""

    path: str
    backend: str
    host: str | None = None
    strip: bool = False


class PathMatch(StrEnum):
    """How an Ingress path matches: the request path is the rule's path (Exact), or
    begins with it element by element on "/" (Prefix, and ImplementationSpecific)."""

    EXACT = "exact"
    PREFIX = "prefix"


@dataclass(frozen=True, slots=True, order=True)
class IngressRoute:
    """One Ingress path rule, decided: who won it, how it matches, whether it has HTTPS.

    `host` is "" for a rule without a host (any host), a name, or `*.<name>` (exactly
    one label in its place). `path` is normalised: a Prefix path has no trailing "/"
    ("/" stays "/"), an Exact path is the rule's own. Requests keep their path.
    """

    host: str
    path: str
    match: PathMatch
    backend: str
    #: Also served over HTTPS: the host is in a spec.tls entry with a usable certificate.
    https: bool = False
    #: Plain HTTP requests to this route are redirected to HTTPS.
    redirect: bool = False


@dataclass(frozen=True, slots=True, order=True)
class TcpFrontend:
    """A TCP listener on `port` that forwards to `backend`; with `allowed_sources`, a
    connection from elsewhere is refused as it is accepted."""

    port: int
    backend: str
    allowed_sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class Certificate:
    """A certificate chain and its key from a TLS Secret, as one PEM text.

    `name` is a file name made of the Secret's namespace, name and a hash of the content,
    so a rotated certificate is a new file and an old worker keeps reading its own.
    The PEM is re-encoded by translation (never the Secret's bytes verbatim) and is kept
    out of repr() so that it cannot reach a log line.
    """

    name: str
    pem: str = field(repr=False, compare=True)
    #: The crt-list SNI filters of this certificate (sni_filters.py): the names it is
    #: shown for, or `!name`s taken from its own names; empty: its own names.
    sni: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class TlsPassthrough:
    """A TLS connection whose SNI is `host` goes, still encrypted, to `backend`."""

    host: str
    backend: str


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """Everything HAProxy must serve. Sorted tuples, so equal inputs give equal models."""

    backends: tuple[Backend, ...] = ()
    http_routes: tuple[HttpRoute, ...] = ()
    tcp_frontends: tuple[TcpFrontend, ...] = ()
    #: Routes also served over HTTPS, terminated here (lb.sslTerm).
    https_routes: tuple[HttpRoute, ...] = ()
    #: Certificates from Secrets, chosen by SNI; --ssl-cert is the default before them.
    certificates: tuple[Certificate, ...] = ()
    #: The SNI filters of the default certificate (--ssl-cert), see sni_filters.py.
    default_sni: tuple[str, ...] = ()
    passthrough: tuple[TlsPassthrough, ...] = ()
    #: Services of type LoadBalancer served on all their ports: their status lists our
    #: addresses (written by the leader, publish/).
    load_balancers: tuple[ObjectKey, ...] = ()
    #: Services that carry such status but are no longer ours: it is cleared.
    unpublished: tuple[ObjectKey, ...] = ()
    #: The Ingresses that are ours: their status lists our addresses too.
    ingresses: tuple[ObjectKey, ...] = ()
    #: Ingresses not ours that carry some status: the publisher clears it when it is the
    #: status we would write (we wrote it, before they stopped being ours).
    unclaimed_ingresses: tuple[ObjectKey, ...] = ()
    #: Ingress path rules: looked up before the Service routes (http_routes).
    ingress_routes: tuple[IngressRoute, ...] = ()
    #: The backend of the (oldest) Ingress spec.defaultBackend: after the Service routes,
    #: before the default 404.
    ingress_default: str | None = None

    @property
    def terminates(self) -> bool:
        """Whether HTTPS is terminated here (Service lb.sslTerm routes or Ingress TLS)."""
        return terminates_https(self.https_routes, self.ingress_routes)

    @property
    def https(self) -> bool:
        """Whether anything is served on the HTTPS port."""
        return bool(self.passthrough) or self.terminates


def terminates_https(
    https_routes: Collection[HttpRoute], ingress_routes: Iterable[IngressRoute]
) -> bool:
    """Whether HTTPS is terminated: Service lb.sslTerm routes, or Ingress rules with TLS.
    translate.py asks it before the model exists."""
    return bool(https_routes) or any(r.https for r in ingress_routes)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """Something that was skipped, and why. Logged, counted and (in a cluster) an Event."""

    subject: ObjectKey
    reason: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Translation:
    model: LoadBalancer
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def ingresses(self) -> frozenset[ObjectKey]:
        """The Ingresses that are ours (by class and namespace), served even if some of
        their rules were skipped: the set whose status.loadBalancer the status writer
        keeps. One that left this set since the last translation is no longer ours."""
        return frozenset(self.model.ingresses)
