"""Translation: a snapshot of Kubernetes objects to the load-balancer model, plus problems.

Pure: no I/O, no clock, no logging. The same snapshot and settings always give the same
model, which lets the reconciler skip work when nothing that matters changed.

The routing rules are those of the original service-loadbalancer, widened to many
namespaces:

- every TCP port of every Service is HTTP unless `--tcp-services` names it; it is served
  at `/<name>` (port 80) or `/<name>:<port>`, and at `/<namespace>/<name>[:<port>]`; the
  prefix is stripped before the request reaches the pod;
- the short form belongs to the only Service of that name, or to the one in `default`
  when names collide; every collision is reported;
- a port named in `--tcp-services` gets a TCP listener on the same port number;
- servers are the ready endpoints (EndpointSlices when the Service has any, else the
  core/v1 Endpoints), or the ClusterIP with `--forward-services`;
- HTTPS (lb.sslTerm, lb.sslPassthrough, lb.sslRedirect, lb.hsts) is decided per Service:
  a missing or bad certificate takes away that Service's HTTPS only, never its HTTP.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from service_loadbalancer import annotations as ann
from service_loadbalancer.certificates import CertificateError, certificate_from_secret
from service_loadbalancer.kube.names import DNS1123_LABEL
from service_loadbalancer.kube.objects import SERVICE_NAME_LABEL, ObjectKey, RawObject, key_of
from service_loadbalancer.model import (
    Algorithm,
    Backend,
    Certificate,
    HttpRoute,
    LoadBalancer,
    Mode,
    Problem,
    Server,
    Stickiness,
    TcpFrontend,
    TlsPassthrough,
    Translation,
)
from service_loadbalancer.settings import Settings, TcpService
from service_loadbalancer.store import Snapshot

API_SERVER = ("default", "kubernetes")
DEFAULT_AFFINITY_TIMEOUT = 10800
TCP_FLAG = ObjectKey("Flag", "", "--tcp-services")


@dataclass(frozen=True, slots=True)
class _Options:
    """What one Service's annotations and spec ask for, validated."""

    algorithm: Algorithm
    host: str | None
    acl_match: str | None
    stickiness_http: Stickiness
    stickiness_tcp: Stickiness
    stickiness_timeout: int
    ssl_term: bool = False
    ssl_secret: str | None = None
    passthrough: bool = False
    ssl_redirect: bool = False
    hsts: int | None = None


@dataclass(slots=True)
class _Port:
    """One usable port of one Service, before routes are decided."""

    key: ObjectKey
    name: str
    number: int
    target: int | str | None
    mode: Mode
    options: _Options
    servers: tuple[Server, ...]
    backend: str = ""
    #: Named in --tcp-services (a TCP listener of its own); a passthrough port is TCP
    #: without one.
    listener: bool = False
    passthrough: bool = False

    @property
    def sort_key(self) -> tuple[str, str, int]:
        return (self.key.namespace, self.key.name, self.number)


@dataclass(slots=True)
class _Result:
    """What one translation run collects: the inputs it indexes and the problems it finds."""

    settings: Settings
    slices: Mapping[tuple[str, str], list[RawObject]] = field(default_factory=dict)
    endpoints: Mapping[tuple[str, str], RawObject] = field(default_factory=dict)
    tcp_claims: dict[TcpService, list[_Port]] = field(default_factory=lambda: defaultdict(list))
    secrets: Mapping[tuple[str, str], RawObject] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, subject: ObjectKey, reason: str) -> None:
        self.problems.append(Problem(subject, reason))


def translate(snapshot: Snapshot, settings: Settings) -> Translation:
    """Turn every Service of the snapshot into backends, routes and TCP listeners."""
    out = _Result(
        settings=settings,
        slices=_index_slices(snapshot.of_kind("EndpointSlice")),
        endpoints={(key_of(e).namespace, key_of(e).name): e for e in snapshot.of_kind("Endpoints")},
        problems=list(snapshot.source_problems),
        secrets={(key_of(s).namespace, key_of(s).name): s for s in snapshot.of_kind("Secret")}
        if settings.tls_secrets
        else {},
    )
    ports: list[_Port] = []
    for svc in snapshot.of_kind("Service"):
        key = key_of(svc)
        if _selected(key, settings):
            ports.extend(_service_ports(svc, key, out))

    _resolve_tcp_names(out.tcp_claims, settings, out)
    routes = _http_routes([p for p in ports if p.mode is Mode.HTTP], out)
    certificates, terminated = _certificates(ports, out)
    https_routes = [r for r in routes if r.backend in terminated]
    passthrough = _passthrough([p for p in ports if p.passthrough], out)
    https = bool(https_routes or passthrough)
    secure = terminated | _passed_services(passthrough, ports)
    backends = [_backend(p, https=p.backend in secure) for p in ports]
    frontends = _tcp_frontends([p for p in ports if p.listener], settings, out, https=https)
    strips: dict[str, list[str]] = defaultdict(list)
    for route in routes:
        if route.strip:
            strips[route.backend].append(route.path)
    backends = [
        _with_strips(b, strips.get(b.name, [])) for b in sorted(backends, key=lambda b: b.name)
    ]
    model = LoadBalancer(
        backends=tuple(backends),
        http_routes=tuple(sorted(routes, key=lambda r: (r.host or "", r.path))),
        tcp_frontends=tuple(sorted(frontends)),
        https_routes=tuple(sorted(https_routes, key=lambda r: (r.host or "", r.path))),
        certificates=tuple(sorted(certificates)),
        passthrough=tuple(sorted(passthrough)),
    )
    return Translation(model=model, problems=tuple(sorted(set(out.problems))))


def _selected(key: ObjectKey, settings: Settings) -> bool:
    if settings.namespaces and key.namespace not in settings.namespaces:
        return False
    target = settings.target_service
    return target is None or target.matches(key.namespace, key.name)


def _service_ports(svc: RawObject, key: ObjectKey, out: _Result) -> list[_Port]:
    settings = out.settings
    # The API server enforces these, but a manifest file or a hostile object may not:
    # names end up in paths, map keys and backend names.
    if not DNS1123_LABEL.matches(key.name) or not DNS1123_LABEL.matches(key.namespace):
        out.problem(key, "name and namespace must be DNS labels (a-z, 0-9, -; 63 at most)")
        return []
    spec = svc.get("spec")
    if not isinstance(spec, dict):
        out.problem(key, "has no spec")
        return []
    if spec.get("type") == "ExternalName":
        out.problem(key, "type ExternalName is not served (no endpoints to balance over)")
        return []
    tcp_entries = [t for t in settings.tcp_services if t.service.matches(key.namespace, key.name)]
    api_server = (key.namespace, key.name) == API_SERVER
    if api_server and not tcp_entries:
        return []
    annotations = (svc.get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, dict):
        out.problem(key, "metadata.annotations is not a mapping")
        return []
    options = _options(spec, {str(k): str(v) for k, v in annotations.items()}, key, settings, out)
    if options is None:
        return []
    raw_ports = spec.get("ports")
    if not isinstance(raw_ports, list) or not raw_ports:
        out.problem(key, "has no ports")
        return []

    result: list[_Port] = []
    for raw in raw_ports:
        if not isinstance(raw, dict):
            out.problem(key, "spec.ports has an entry that is not a mapping")
            continue
        if str(raw.get("protocol") or "TCP") != "TCP":
            continue  # UDP and SCTP cannot go through HAProxy
        number = raw.get("port")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            out.problem(key, f"port {number!r} is not a port number")
            continue
        name = raw.get("name") or ""
        target = raw.get("targetPort")
        if not isinstance(target, int | str) or isinstance(target, bool):
            target = None
        tcp = [t for t in tcp_entries if t.port == number]
        if api_server and not tcp:
            continue  # the API server only ever through the TCP ports named for it
        mode = Mode.TCP if tcp else Mode.HTTP
        port = _Port(key, str(name), number, target, mode, options, servers=(), listener=bool(tcp))
        port.servers = _servers(svc, port, out)
        port.backend = f"{mode.value}_{key.namespace}_{key.name}_{number}"
        for entry in tcp:
            out.tcp_claims[entry].append(port)
        result.append(port)
    if options.passthrough and result:
        chosen = [p for p in result if p.number == 443] or (result if len(result) == 1 else [])
        if not chosen:
            out.problem(key, "lb.sslPassthrough needs a port 443 or a single port; not passed")
        for port in chosen:
            port.passthrough = True
            port.mode = Mode.TCP
            port.backend = f"tcp_{key.namespace}_{key.name}_{port.number}"
    return result


def _options(
    spec: Mapping[str, Any],
    annotations: dict[str, str],
    key: ObjectKey,
    settings: Settings,
    out: _Result,
) -> _Options | None:
    for unknown in ann.unknown_keys(annotations):
        out.problem(key, f"unknown annotation {unknown!r} is ignored")
    try:
        algorithm = ann.ALGORITHM.get(annotations) or settings.balance_algorithm
        host = ann.HOST.get(annotations)
        acl_match = ann.ACL_MATCH.get(annotations)
        cookie = ann.COOKIE_STICKY.get(annotations)
        ssl_term = ann.SSL_TERM.get(annotations)
        ssl_secret = ann.SSL_SECRET.get(annotations)
        passthrough = ann.SSL_PASSTHROUGH.get(annotations)
        ssl_redirect = ann.SSL_REDIRECT.get(annotations)
        hsts = ann.HSTS.get(annotations)
    except ann.AnnotationError as err:
        out.problem(key, f"not served: {err}")
        return None
    conflict = _tls_conflict(ssl_term, passthrough, ssl_redirect, host)
    if conflict:
        out.problem(key, f"not served: {conflict}")
        return None
    if not ssl_term and (ssl_secret is not None or hsts is not None):
        out.problem(
            key, f"{ann.SSL_SECRET.key} and {ann.HSTS.key} need {ann.SSL_TERM.key}; ignored"
        )
        ssl_secret, hsts = None, None
    client_ip = spec.get("sessionAffinity") == "ClientIP"
    if cookie and not client_ip:
        out.problem(key, f"{ann.COOKIE_STICKY.key} needs spec.sessionAffinity: ClientIP; ignored")
    timeout = DEFAULT_AFFINITY_TIMEOUT
    config = spec.get("sessionAffinityConfig") or {}
    client_cfg = config.get("clientIP") if isinstance(config, dict) else None
    if isinstance(client_cfg, dict):
        raw_timeout = client_cfg.get("timeoutSeconds")
        if isinstance(raw_timeout, int) and 0 < raw_timeout <= 86400:
            timeout = raw_timeout
        elif raw_timeout is not None:
            out.problem(key, f"sessionAffinityConfig timeout {raw_timeout!r} ignored (1-86400)")
    sticky_tcp = Stickiness.SOURCE_IP if client_ip else Stickiness.NONE
    sticky_http = Stickiness.COOKIE if client_ip and cookie else sticky_tcp
    return _Options(
        algorithm,
        host,
        acl_match,
        sticky_http,
        sticky_tcp,
        timeout,
        ssl_term=ssl_term,
        ssl_secret=ssl_secret,
        passthrough=passthrough,
        ssl_redirect=ssl_redirect,
        hsts=hsts,
    )


def _tls_conflict(term: bool, passthrough: bool, redirect: bool, host: str | None) -> str:
    """Combinations that cannot mean anything: the whole Service is skipped, since
    serving half of what was asked (plain HTTP for a "TLS only" Service) is worse."""
    if term and passthrough:
        return f"{ann.SSL_TERM.key} and {ann.SSL_PASSTHROUGH.key} exclude each other"
    if passthrough and host is None:
        return f"{ann.SSL_PASSTHROUGH.key} needs {ann.HOST.key} (the SNI name to route by)"
    if redirect and not (term or passthrough):
        return f"{ann.SSL_REDIRECT.key} needs {ann.SSL_TERM.key} or {ann.SSL_PASSTHROUGH.key}"
    return ""


def _certificates(ports: list[_Port], out: _Result) -> tuple[list[Certificate], set[str]]:
    """The certificates of the sslTerm Services, and the backends served over HTTPS.

    Only Secrets named by an annotation are looked at (and only with --tls-secrets); a
    Service whose certificate is missing or bad loses HTTPS, not HTTP."""
    settings = out.settings
    certificates: dict[str, Certificate] = {}
    served: set[str] = set()
    failed: set[ObjectKey] = set()
    for port in sorted(ports, key=lambda p: p.sort_key):
        opts = port.options
        if not opts.ssl_term or port.mode is not Mode.HTTP or port.key in failed:
            continue
        if opts.ssl_secret is None:
            if settings.ssl_cert is None:
                out.problem(port.key, "HTTPS not served: no lb.ssl-secret and no --ssl-cert")
                failed.add(port.key)
                continue
        else:
            cert = _secret_certificate(port.key, opts.ssl_secret, out)
            if cert is None:
                failed.add(port.key)
                continue
            certificates[cert.name] = cert
        served.add(port.backend)
    return list(certificates.values()), served


def _secret_certificate(key: ObjectKey, name: str, out: _Result) -> Certificate | None:
    subject = ObjectKey("Secret", key.namespace, name)
    if not out.settings.tls_secrets:
        out.problem(key, f"HTTPS not served: Secret {name!r} named but --tls-secrets is off")
        return None
    secret = out.secrets.get((key.namespace, name))
    if secret is None:
        out.problem(key, f"HTTPS not served: Secret {key.namespace}/{name} not found")
        return None
    try:
        return certificate_from_secret(secret)
    except CertificateError as err:
        out.problem(subject, f"{err}; HTTPS of Service {key.namespace}/{key.name} not served")
        return None


def _passthrough(ports: list[_Port], out: _Result) -> list[TlsPassthrough]:
    """One SNI name, one Service: the first by namespace/name/port wins."""
    taken: dict[str, _Port] = {}
    result: list[TlsPassthrough] = []
    for port in sorted(ports, key=lambda p: p.sort_key):
        host = port.options.host
        assert host is not None  # _tls_conflict made sure
        owner = taken.get(host)
        if owner is not None:
            out.problem(
                port.key,
                f"SNI name {host} is already passed to {owner.key.namespace}/{owner.key.name}; "
                "not passed",
            )
            continue
        taken[host] = port
        result.append(TlsPassthrough(host=host, backend=port.backend))
    return result


def _passed_services(passthrough: list[TlsPassthrough], ports: list[_Port]) -> set[str]:
    """The Services (backend names of their ports) that pass TLS through."""
    passed = {t.backend for t in passthrough}
    services = {p.key for p in ports if p.backend in passed}
    return {p.backend for p in ports if p.key in services}


def _servers(svc: RawObject, port: _Port, out: _Result) -> tuple[Server, ...]:
    key = port.key
    spec = svc.get("spec") or {}
    cluster_ip = spec.get("clusterIP")
    addresses: list[tuple[str, object]]
    if out.settings.forward_services and cluster_ip not in (None, "", "None"):
        addresses = [(str(cluster_ip), port.number)]
        subject = key
    else:
        service_slices = out.slices.get((key.namespace, key.name))
        if service_slices:
            addresses = list(_slice_addresses(service_slices, port.name, port.target))
            subject = ObjectKey("EndpointSlice", key.namespace, key.name)
        elif (core := out.endpoints.get((key.namespace, key.name))) is not None:
            addresses = list(_endpoints_addresses(core, port.name, port.target))
            subject = ObjectKey("Endpoints", key.namespace, key.name)
        else:
            return ()
    servers: dict[str, Server] = {}
    for address, number in addresses:
        ip, error = _parse_ip(address)
        if error:
            out.problem(subject, f"address {address!r} {error}; skipped")
            continue
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            out.problem(subject, f"port {number!r} of {address} is not a port number; skipped")
            continue
        name = f"s_{ip.replace('.', '_').replace(':', '_')}_{number}"
        servers[name] = Server(name=name, address=ip, port=number)
    return tuple(sorted(servers.values()))


@lru_cache(maxsize=1 << 18)
def _parse_ip(address: str) -> tuple[str, str]:
    """(normalised address, "") or ("", what is wrong). Cached: every sync sees the
    same addresses again, and parsing them dominated translation time."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "", "is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        # A zone ("fe80::1%eth0") is free text: it would reach the config verbatim.
        return "", "has an IPv6 zone"
    return str(ip), ""


def _find_port(
    ep_ports: Iterable[object], port_name: str, target: int | str | None
) -> Mapping[str, Any] | None:
    """The endpoint port that serves a Service port: the one of the same name (the API
    names endpoint ports after Service ports), else, for a numeric targetPort, the one
    of that number where a name is missing on one side (hand-written Endpoints)."""
    ports = [p for p in ep_ports if isinstance(p, dict)]
    for p in ports:
        if (p.get("name") or "") == port_name:
            return p
    if isinstance(target, int):
        for p in ports:
            if (not p.get("name") or not port_name) and p.get("port") == target:
                return p
    return None


def _slice_addresses(
    service_slices: Iterable[RawObject], port_name: str, target: int | str | None
) -> Iterable[tuple[str, object]]:
    for sl in service_slices:
        if sl.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        port = _find_port(sl.get("ports") or [], port_name, target)
        if port is None:
            continue
        for ep in sl.get("endpoints") or []:
            if not isinstance(ep, dict):
                continue
            conditions = ep.get("conditions") or {}
            # The API: a nil `ready` means unknown and is to be taken as ready.
            if isinstance(conditions, dict) and conditions.get("ready") is False:
                continue
            addresses = ep.get("addresses") or []
            # "Consumers ... may choose to only use the first element" (EndpointSlice API).
            if addresses:
                yield str(addresses[0]), port.get("port")


def _endpoints_addresses(
    core: RawObject, port_name: str, target: int | str | None
) -> Iterable[tuple[str, object]]:
    for subset in core.get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        port = _find_port(subset.get("ports") or [], port_name, target)
        if port is None:
            continue
        for address in subset.get("addresses") or []:
            if isinstance(address, dict) and "ip" in address:
                yield str(address["ip"]), port.get("port")


def _index_slices(all_slices: Iterable[RawObject]) -> dict[tuple[str, str], list[RawObject]]:
    index: dict[tuple[str, str], list[RawObject]] = defaultdict(list)
    for sl in all_slices:
        labels = (sl.get("metadata") or {}).get("labels") or {}
        service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
        if service:
            index[(key_of(sl).namespace, str(service))].append(sl)
    return index


def _resolve_tcp_names(
    claims: dict[TcpService, list[_Port]], settings: Settings, out: _Result
) -> None:
    """A `--tcp-services` entry without a namespace may match Services in several
    namespaces: the one in `default` wins, else the first; the rest go back to HTTP."""
    for entry in settings.tcp_services:
        ports = claims.get(entry, [])
        if not ports:
            out.problem(TCP_FLAG, f"no Service port matches {entry.service}:{entry.port}")
            continue
        if len(ports) == 1:
            continue
        winner = min(ports, key=lambda p: (p.key.namespace != "default", p.sort_key))
        for loser in ports:
            if loser is not winner:
                out.problem(
                    loser.key,
                    f"--tcp-services {entry.service}:{entry.port} also matches "
                    f"{winner.key.namespace}/{winner.key.name}, which gets it; "
                    "this port is served as HTTP",
                )
                loser.listener = False
                if not loser.passthrough:
                    loser.mode = Mode.HTTP
                    loser.backend = loser.backend.replace("tcp_", "http_", 1)


def _backend(port: _Port, *, https: bool) -> Backend:
    """`https`: the Service is reachable over HTTPS, so redirect and HSTS make sense."""
    http = port.mode is Mode.HTTP
    return Backend(
        name=port.backend,
        mode=port.mode,
        service=port.key,
        port=port.number,
        algorithm=port.options.algorithm,
        servers=port.servers,
        stickiness=port.options.stickiness_http if http else port.options.stickiness_tcp,
        stickiness_timeout=port.options.stickiness_timeout,
        ssl_redirect=http and https and port.options.ssl_redirect,
        hsts_max_age=port.options.hsts if http and https else None,
    )


def _with_strips(backend: Backend, prefixes: list[str]) -> Backend:
    if not prefixes:
        return backend
    # Longest first, so a regex alternation tries the most specific prefix first.
    ordered = tuple(sorted(set(prefixes), key=lambda p: (-len(p), p)))
    return Backend(
        name=backend.name,
        mode=backend.mode,
        service=backend.service,
        port=backend.port,
        algorithm=backend.algorithm,
        servers=backend.servers,
        stickiness=backend.stickiness,
        stickiness_timeout=backend.stickiness_timeout,
        strip_prefixes=ordered,
        ssl_redirect=backend.ssl_redirect,
        hsts_max_age=backend.hsts_max_age,
    )


def _suffix(port: _Port) -> str:
    return "" if port.number == 80 else f":{port.number}"


def _http_routes(ports: list[_Port], out: _Result) -> list[HttpRoute]:
    """Routes for every HTTP port; on a clash the first by namespace/name/port wins."""
    ports = sorted(ports, key=lambda p: p.sort_key)
    short_owner = _short_name_owners(ports, out)
    wanted: list[tuple[_Port, HttpRoute]] = []
    for port in ports:
        opts = port.options
        if opts.acl_match is not None:
            wanted.append((port, HttpRoute(path=opts.acl_match, backend=port.backend)))
        else:
            long_path = f"/{port.key.namespace}/{port.key.name}{_suffix(port)}"
            wanted.append((port, HttpRoute(path=long_path, backend=port.backend, strip=True)))
            if short_owner.get(port.key.name) == port.key.namespace:
                short = f"/{port.key.name}{_suffix(port)}"
                wanted.append((port, HttpRoute(path=short, backend=port.backend, strip=True)))
        if opts.host is not None:
            path = opts.acl_match or "/"
            wanted.append((port, HttpRoute(path=path, backend=port.backend, host=opts.host)))

    taken: dict[tuple[str | None, str], _Port] = {}
    routes: list[HttpRoute] = []
    for port, route in wanted:
        slot = (route.host, route.path)
        owner = taken.get(slot)
        if owner is None:
            taken[slot] = port
            routes.append(route)
        elif owner is not port:
            where = f"{route.host}{route.path}" if route.host else route.path
            out.problem(
                port.key,
                f"route {where} (port {port.number}) is already taken by "
                f"{owner.key.namespace}/{owner.key.name} port {owner.number}; skipped",
            )
    return routes


def _short_name_owners(ports: list[_Port], out: _Result) -> dict[str, str]:
    """Which namespace owns `/<name>` for each Service name that wants it."""
    namespaces: dict[str, set[str]] = defaultdict(set)
    for port in ports:
        if port.options.acl_match is None:
            namespaces[port.key.name].add(port.key.namespace)
    owners: dict[str, str] = {}
    for name, found in namespaces.items():
        if len(found) == 1:
            owners[name] = next(iter(found))
            continue
        owner = "default" if "default" in found else None
        if owner is not None:
            owners[name] = owner
        for namespace in sorted(found - {owner} if owner else found):
            held = f"default/{name}" if owner else "nobody (no Service of that name in default)"
            out.problem(
                ObjectKey("Service", namespace, name),
                f"short path /{name} is held by {held}; this Service is served "
                f"at /{namespace}/{name} only",
            )
    return owners


def _tcp_frontends(
    ports: list[_Port], settings: Settings, out: _Result, *, https: bool
) -> list[TcpFrontend]:
    reserved = {
        settings.http_port: "--http-port",
        settings.stats_port: "--stats-port",
        settings.healthz_port: "--healthz-port",
    }
    if https:  # only then: the original's users serve their own TLS on 443 with TCP
        reserved[settings.https_port] = "--https-port"
    taken: dict[int, _Port] = {}
    frontends: list[TcpFrontend] = []
    for port in sorted(ports, key=lambda p: p.sort_key):
        if port.number in reserved:
            out.problem(
                port.key,
                f"TCP port {port.number} is the {reserved[port.number]}; not served",
            )
            continue
        owner = taken.get(port.number)
        if owner is not None:
            out.problem(
                port.key,
                f"TCP port {port.number} is already served for "
                f"{owner.key.namespace}/{owner.key.name}; not served",
            )
            continue
        taken[port.number] = port
        frontends.append(TcpFrontend(port=port.number, backend=port.backend))
    return frontends
