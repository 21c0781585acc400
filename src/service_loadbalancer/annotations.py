"""The annotation registry: every `serviceloadbalancer/...` annotation, declared once.

Nothing else in the code base reads annotation strings. Each declaration carries its
key, the type it parses to, how it is validated, its default and the line of
documentation that the README's table is checked against. Values are validated against
an allow-list or a strict pattern before they can reach the HAProxy config; there are
no free-form snippets, so an annotation cannot inject configuration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from service_loadbalancer.kube.names import DNS1123_SUBDOMAIN, is_host_name
from service_loadbalancer.kube.objects import quoted
from service_loadbalancer.model import Affinity, Algorithm, Protocol

PREFIX = "serviceloadbalancer/"

T = TypeVar("T")

#: A URL path prefix: a strict, unreserved character set, no `//`, no dot segments.
#: `\Z`, not `$`: `$` also matches before a trailing newline. (Host and Secret names are
#: checked with the name formats of kube/names.py.)
PATH_RE = re.compile(r"/(?:[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*/?)?\Z")
MAX_PATH_LEN = 512
#: HSTS max-age: at most two years, the preload list's recommendation.
MAX_HSTS_AGE = 63072000
#: A time in HAProxy's syntax, restricted to whole numbers of one unit (no "1m30s",
#: no default unit, no "d" or "us"), so the value can only ever be one config word.
TIME_RE = re.compile(r"([0-9]{1,9})(ms|s|m|h)\Z")
TIME_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
#: Bounds of lb.timeout-connect: a pod that does not accept within an hour is not there.
MAX_CONNECT_MS = 3_600_000
#: Bounds of lb.timeout-server: a day, for slow reports; HAProxy's own limit is ~24 days.
MAX_SERVER_MS = 86_400_000
#: Bounds of the autoscale annotations (a typo of three zeros should be refused).
MAX_AUTOSCALE_TARGET = 1_000_000
MAX_REPLICAS = 1000


class AnnotationError(ValueError):
    """An annotation value that does not validate; the message says what is allowed."""


@dataclass(frozen=True, slots=True)
class Annotation(Generic[T]):
    key: str
    parse: Callable[[str], T]
    default: T
    allowed: str
    doc: str

    def get(self, annotations: Mapping[str, str]) -> T:
        """The parsed value, or the default when absent. Raises AnnotationError."""
        raw = annotations.get(self.key)
        if raw is None:
            return self.default
        try:
            return self.parse(raw)
        except AnnotationError as err:
            raise AnnotationError(f"annotation {self.key}: {err}") from None


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise AnnotationError(f"{quoted(raw)} is not a boolean (true or false)")


def parse_algorithm(raw: str) -> Algorithm:
    try:
        return Algorithm(raw.strip())
    except ValueError:
        choices = ", ".join(a.value for a in Algorithm)
        raise AnnotationError(f"{quoted(raw)} is not one of {choices}") from None


def parse_host(raw: str) -> str:
    """An RFC 1123 host name, or one with a leading wildcard label (`*.example.com`,
    which matches exactly one label in its place, as in a Kubernetes Ingress)."""
    value = raw.strip()
    # ASCII first: some non-ASCII letters lower-case to ASCII (KELVIN SIGN to k).
    value = value.lower() if value.isascii() else ""
    rest = value[2:] if value.startswith("*.") else value
    if not is_host_name(rest) or len(value) > 253:
        raise AnnotationError(
            f"{quoted(raw)} is not an RFC 1123 host name (optionally with a leading *.)"
        )
    return value


def parse_path(raw: str) -> str:
    """A path prefix, normalised without its trailing slash ("/" stays "/")."""
    value = raw.strip()
    if len(value) > MAX_PATH_LEN or not PATH_RE.match(value):
        raise AnnotationError(
            f"{quoted(raw)} is not a path prefix (a leading /, then segments of "
            "letters, digits and . _ ~ -)"
        )
    segments = [s for s in value.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise AnnotationError(f"{quoted(raw)} has a dot segment")
    return "/" + "/".join(segments)


def parse_secret_name(raw: str) -> str:
    value = raw.strip()
    # A DNS-1123 subdomain, as the API server requires of a Secret's name.
    if not DNS1123_SUBDOMAIN.matches(value):
        raise AnnotationError(f"{quoted(raw)} is not a Secret name (a DNS-1123 subdomain)")
    return value


def parse_hsts(raw: str) -> int:
    """max-age in seconds; plain ASCII digits only (int() would take "1_0" or "\u0661")."""
    value = raw.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise AnnotationError(f"{quoted(raw)} is not a number of seconds")
    age = int(value)
    if not 0 < age <= MAX_HSTS_AGE:
        raise AnnotationError(f"{age} is not between 1 and {MAX_HSTS_AGE} seconds")
    return age


def parse_protocol(raw: str) -> Protocol:
    try:
        return Protocol(raw.strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in Protocol)
        raise AnnotationError(f"{quoted(raw)} is not one of {choices}") from None


def parse_positive_number(raw: str) -> float:
    """A plain decimal number above 0 (no exponent, no nan or inf), at most 1,000,000."""
    value = raw.strip()
    if not (value.isascii() and re.fullmatch(r"[0-9]{1,7}(?:\.[0-9]{1,6})?", value)):
        raise AnnotationError(f"{quoted(raw)} is not a number (digits, optionally a . and more)")
    number = float(value)
    if not 0 < number <= MAX_AUTOSCALE_TARGET:
        raise AnnotationError(f"{quoted(raw)} is not above 0 and at most {MAX_AUTOSCALE_TARGET}")
    return number


def parse_replicas(raw: str) -> int:
    """A replica count, 1 to MAX_REPLICAS."""
    value = raw.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 6):
        raise AnnotationError(f"{quoted(raw)} is not a number of replicas")
    count = int(value)
    if not 1 <= count <= MAX_REPLICAS:
        raise AnnotationError(f"{count} is not between 1 and {MAX_REPLICAS} replicas")
    return count


def parse_time(raw: str, *, most: int, most_text: str) -> int:
    """`<digits>(ms|s|m|h)`, 1 ms to `most` milliseconds; the value in milliseconds."""
    value = raw.strip()
    found = TIME_RE.match(value) if value.isascii() else None
    if found is None:
        raise AnnotationError(f"{quoted(raw)} is not a time (digits then ms, s, m or h)")
    ms = int(found.group(1)) * TIME_UNITS_MS[found.group(2)]
    if not 1 <= ms <= most:
        raise AnnotationError(f"{quoted(raw)} is not between 1ms and {most_text}")
    return ms


def parse_connect_timeout(raw: str) -> int:
    return parse_time(raw, most=MAX_CONNECT_MS, most_text="1h")


def parse_server_timeout(raw: str) -> int:
    return parse_time(raw, most=MAX_SERVER_MS, most_text="24h")


ALGORITHM: Annotation[Algorithm | None] = Annotation(
    key=PREFIX + "lb.algorithm",
    parse=parse_algorithm,
    default=None,
    allowed="roundrobin, leastconn, first, source",
    doc="Balancing algorithm for this Service's backends (default: --balance-algorithm).",
)
HOST: Annotation[str | None] = Annotation(
    key=PREFIX + "lb.host",
    parse=parse_host,
    default=None,
    allowed="an RFC 1123 host name, or *. and one",
    doc="Also route requests whose Host header is this name to the Service (any path, "
    "or the lb.aclMatch path), without stripping a prefix.",
)
ACL_MATCH: Annotation[str | None] = Annotation(
    key=PREFIX + "lb.aclMatch",
    parse=parse_path,
    default=None,
    allowed="a path prefix: / then segments of [A-Za-z0-9._~-]",
    doc="Serve the Service at this path prefix instead of /<name> and /<namespace>/<name>; "
    "the prefix is not stripped.",
)
COOKIE_STICKY: Annotation[bool] = Annotation(
    key=PREFIX + "lb.cookie-sticky-session",
    parse=parse_bool,
    default=False,
    allowed="true, false",
    doc="With spec.sessionAffinity: ClientIP, stick clients to a pod with a cookie "
    "(SERVERID) instead of by source address.",
)

SSL_TERM: Annotation[bool] = Annotation(
    key=PREFIX + "lb.sslTerm",
    parse=parse_bool,
    default=False,
    allowed="true, false",
    doc="Also serve the Service's HTTP routes over HTTPS on --https-port, terminated with "
    "the lb.ssl-secret certificate (chosen by SNI) or else the --ssl-cert one.",
)
SSL_SECRET: Annotation[str | None] = Annotation(
    key=PREFIX + "lb.ssl-secret",
    parse=parse_secret_name,
    default=None,
    allowed="a Secret name (DNS-1123 subdomain) in the Service's namespace",
    doc="With lb.sslTerm, the kubernetes.io/tls Secret (tls.crt, tls.key) whose certificate "
    "serves this Service; read only with --tls-secrets.",
)
SSL_PASSTHROUGH: Annotation[bool] = Annotation(
    key=PREFIX + "lb.sslPassthrough",
    parse=parse_bool,
    default=False,
    allowed="true, false",
    doc="Pass TLS connections whose SNI is lb.host, still encrypted, to the Service's port "
    "443 (or its only port) on --https-port. Needs lb.host; not with lb.sslTerm.",
)
SSL_REDIRECT: Annotation[bool] = Annotation(
    key=PREFIX + "lb.sslRedirect",
    parse=parse_bool,
    default=False,
    allowed="true, false",
    doc="Answer plain HTTP requests to the Service's routes with a redirect to HTTPS "
    "(--ssl-redirect-code, 308). Needs lb.sslTerm or lb.sslPassthrough.",
)
HSTS: Annotation[int | None] = Annotation(
    key=PREFIX + "lb.hsts",
    parse=parse_hsts,
    default=None,
    allowed=f"seconds, 1 to {MAX_HSTS_AGE}",
    doc="With lb.sslTerm, add Strict-Transport-Security: max-age=<seconds> to responses "
    "sent over HTTPS.",
)

TIMEOUT_SERVER: Annotation[int | None] = Annotation(
    key=PREFIX + "lb.timeout-server",
    parse=parse_server_timeout,
    default=None,
    allowed="a time: digits then ms, s, m or h; 1ms to 24h",
    doc="How long to wait for the pod's answer (and, for TCP, how long a connection may "
    "idle) before a 504; default: the template's defaults section. An upgraded "
    "connection (WebSocket) is a tunnel and keeps timeout tunnel instead.",
)
TIMEOUT_CONNECT: Annotation[int | None] = Annotation(
    key=PREFIX + "lb.timeout-connect",
    parse=parse_connect_timeout,
    default=None,
    allowed="a time: digits then ms, s, m or h; 1ms to 1h",
    doc="How long to wait for a connection to a pod to be accepted; default: the "
    "template's defaults section.",
)

BACKEND_PROTOCOL: Annotation[Protocol | None] = Annotation(
    key=PREFIX + "lb.backend-protocol",
    parse=parse_protocol,
    default=None,
    allowed="h1, h2c, h2, https",
    doc="What the pods speak on ports without spec.ports[].appProtocol: h1 (HTTP/1.1), "
    "h2c (HTTP/2 in clear text, as gRPC servers do), https (HTTP/1.1 over TLS) or h2 "
    "(HTTP/2 over TLS, by ALPN); TLS is verified with --backend-ca. Default: h1.",
)

AUTOSCALE_TARGET_RPS: Annotation[float | None] = Annotation(
    key=PREFIX + "autoscale.target-rps",
    parse=parse_positive_number,
    default=None,
    allowed=f"a number above 0, at most {MAX_AUTOSCALE_TARGET}",
    doc="`service-loadbalancer autoscale` scales the Deployment or StatefulSet behind the "
    "Service so that each pod gets this many requests a second (TCP: connections a second).",
)
AUTOSCALE_TARGET_CONCURRENCY: Annotation[float | None] = Annotation(
    key=PREFIX + "autoscale.target-concurrency",
    parse=parse_positive_number,
    default=None,
    allowed=f"a number above 0, at most {MAX_AUTOSCALE_TARGET}",
    doc="Instead of target-rps: scale so that each pod has this many requests in flight "
    "(or queued for it) in the load balancer.",
)
AUTOSCALE_MIN: Annotation[int] = Annotation(
    key=PREFIX + "autoscale.min",
    parse=parse_replicas,
    default=1,
    allowed=f"1 to {MAX_REPLICAS}",
    doc="With autoscale.target-*, the fewest replicas the autoscaler sets.",
)
AUTOSCALE_MAX: Annotation[int] = Annotation(
    key=PREFIX + "autoscale.max",
    parse=parse_replicas,
    default=10,
    allowed=f"1 to {MAX_REPLICAS}, at least autoscale.min",
    doc="With autoscale.target-*, the most replicas the autoscaler sets.",
)


def parse_affinity(raw: str) -> Affinity:
    try:
        return Affinity(raw.strip().lower())
    except ValueError:
        choices = ", ".join(a.value for a in Affinity)
        raise AnnotationError(f"{quoted(raw)} is not one of {choices}") from None


#: lb.min-local at most: more ready pods than any one Service has.
MAX_MIN_LOCAL = 10_000


def parse_min_local(raw: str) -> int:
    value = raw.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 5) or not (
        1 <= int(value) <= MAX_MIN_LOCAL
    ):
        raise AnnotationError(f"{quoted(raw)} is not a whole number from 1 to {MAX_MIN_LOCAL}")
    return int(value)


GLOBAL: Annotation[bool] = Annotation(
    key=PREFIX + "lb.global",
    parse=parse_bool,
    default=False,
    allowed="true, false",
    doc="Also serve the endpoints of the Service of the same namespace and name in every "
    "--remote-cluster where it is global too (or exported with a ServiceExport). The one "
    "annotation read on remote Services.",
)
AFFINITY: Annotation[Affinity] = Annotation(
    key=PREFIX + "lb.affinity",
    parse=parse_affinity,
    default=Affinity.LOCAL,
    allowed="local, none, remote",
    doc="For a global Service: local sends to local endpoints and keeps the remote ones "
    "as backups (used per request when no local one is); none balances over all; "
    "remote prefers the remote ones (local ones become the backups).",
)
MIN_LOCAL: Annotation[int] = Annotation(
    key=PREFIX + "lb.min-local",
    parse=parse_min_local,
    default=1,
    allowed=f"1 to {MAX_MIN_LOCAL}",
    doc="With lb.affinity local: below this many ready local endpoints (none included), "
    "the remote endpoints take traffic beside them instead of waiting as backups.",
)

#: Every annotation, in the order the README documents them.
REGISTRY: tuple[Annotation[Any], ...] = (
    ALGORITHM,
    HOST,
    ACL_MATCH,
    COOKIE_STICKY,
    SSL_TERM,
    SSL_SECRET,
    SSL_PASSTHROUGH,
    SSL_REDIRECT,
    HSTS,
    TIMEOUT_SERVER,
    TIMEOUT_CONNECT,
    BACKEND_PROTOCOL,
    AUTOSCALE_TARGET_RPS,
    AUTOSCALE_TARGET_CONCURRENCY,
    AUTOSCALE_MIN,
    AUTOSCALE_MAX,
    GLOBAL,
    AFFINITY,
    MIN_LOCAL,
)


def unknown_keys(annotations: Mapping[str, str]) -> list[str]:
    """Keys with our prefix that no declaration knows (probably a typo)."""
    known = {a.key for a in REGISTRY}
    return sorted(k for k in annotations if k.startswith(PREFIX) and k not in known)


def markdown_table() -> str:
    """The README's annotation table, generated from the registry."""
    rows = ["| annotation | values | default | meaning |", "| --- | --- | --- | --- |"]
    for a in REGISTRY:
        default = "-" if a.default is None else str(a.default).lower()
        rows.append(f"| `{a.key}` | {a.allowed} | {default} | {a.doc} |")
    return "\n".join(rows)


# Kubernetes' own annotations on Ingress objects. Not ours (no prefix, not in the table
# above, not validated as ours), but read here all the same, so that every annotation
# string the controller reads is in this module.

#: On an Ingress: the class, as before spec.ingressClassName existed (deprecated, honoured).
LEGACY_INGRESS_CLASS = "kubernetes.io/ingress.class"
#: On an IngressClass: "true" makes it the class of Ingresses that name none.
DEFAULT_INGRESS_CLASS = "ingressclass.kubernetes.io/is-default-class"


def legacy_ingress_class(annotations: Mapping[str, str]) -> str | None:
    value = annotations.get(LEGACY_INGRESS_CLASS)
    return value.strip() if isinstance(value, str) and value.strip() else None


def is_default_ingress_class(annotations: Mapping[str, str]) -> bool:
    """The API server's own test: the value "true" exactly (case-insensitive)."""
    value = annotations.get(DEFAULT_INGRESS_CLASS)
    return isinstance(value, str) and value.strip().lower() == "true"
