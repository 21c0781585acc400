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
  a missing or bad certificate takes away that Service's HTTPS only, never its HTTP;
- a Service of type LoadBalancer of our class also gets a TCP listener on each of its
  ports (the oldest wins a contested port), guarded by its loadBalancerSourceRanges, and
  the model lists which of them get status and which carry status to clear
  (loadbalancers.py).

The steps live next door, each named for what it decides: endpoints.py (servers),
routes.py (paths, hosts, TCP listeners), https.py (certificates, passthrough); the
values they share are in translation_run.py. This module reads the Services and puts
the model together.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from service_loadbalancer import annotations as ann
from service_loadbalancer.endpoints import index_slices, servers, target_port
from service_loadbalancer.external import external_name, external_server
from service_loadbalancer.global_services import (
    ClusterIndex,
    global_options,
    index_cluster,
    remote_servers,
    unused_options,
    with_affinity,
)
from service_loadbalancer.https import (
    passed_services,
    tls_conflict,
    tls_passthrough,
    tls_termination,
)
from service_loadbalancer.ingress import translate_ingresses
from service_loadbalancer.kube.names import DNS1123_LABEL
from service_loadbalancer.kube.objects import ObjectKey, RawObject, key_of
from service_loadbalancer.loadbalancers import (
    has_our_status,
    lb_listeners,
    lb_spec,
    published,
    to_clear,
)
from service_loadbalancer.model import (
    Backend,
    LoadBalancer,
    Mode,
    Protocol,
    Stickiness,
    Translation,
    backend_name,
    terminates_https,
)
from service_loadbalancer.publish.desired import unclaimed
from service_loadbalancer.routes import http_routes, resolve_tcp_names, tcp_frontends
from service_loadbalancer.settings import Settings
from service_loadbalancer.sni_filters import sni_filters
from service_loadbalancer.store import Snapshot
from service_loadbalancer.translation_run import ServiceOptions, ServicePort, TranslationRun

API_SERVER = ("default", "kubernetes")
#: spec.ports[].appProtocol values and what they mean to the pods: HTTP/2 in clear text
#: (the Kubernetes standard name, gRPC's, the bare IANA name), TLS (the IANA service
#: name `https`, its Kubernetes form, and WebSocket over TLS), HTTP/2 over TLS (the IANA
#: ALPN name `h2`). Any other value, kubernetes.io/ws included, is HTTP/1.1.
APP_PROTOCOLS: dict[str, Protocol] = {
    "kubernetes.io/h2c": Protocol.H2C,
    "grpc": Protocol.H2C,
    "h2c": Protocol.H2C,
    "https": Protocol.HTTPS,
    "kubernetes.io/https": Protocol.HTTPS,
    "kubernetes.io/wss": Protocol.HTTPS,
    "h2": Protocol.H2,
}
DEFAULT_AFFINITY_TIMEOUT = 10800


def translate(snapshot: Snapshot, settings: Settings) -> Translation:
    """Turn every Service of the snapshot into backends, routes and TCP listeners."""
    out = TranslationRun(
        settings=settings,
        slices=index_slices(snapshot.of_kind("EndpointSlice")),
        endpoints={(key_of(e).namespace, key_of(e).name): e for e in snapshot.of_kind("Endpoints")},
        problems=list(snapshot.source_problems),
        secrets={(key_of(s).namespace, key_of(s).name): s for s in snapshot.of_kind("Secret")}
        if settings.tls_secrets
        else {},
    )
    # Remote clusters (--remote-cluster) only ever add endpoints to global Services: their
    # objects are indexed when the first global Service asks, not on every sync.
    clusters = functools.cache(
        lambda: {name: index_cluster(v.objects.values()) for name, v in snapshot.remote.items()}
    )
    ports: list[ServicePort] = []
    unpublished: list[ObjectKey] = []
    for svc in snapshot.of_kind("Service"):
        key = key_of(svc)
        if _selected(key, settings):
            ports.extend(_service_ports(svc, key, out, clusters))
            if key not in out.load_balancers and to_clear(svc, svc.get("spec"), settings):
                unpublished.append(key)

    resolve_tcp_names(out.tcp_claims, settings, out)
    ports.extend(lb_listeners(ports, settings))
    # --service-routes=false: the Services are still backends (of Ingresses, and TCP
    # listeners), but get no route of their own.
    http_ports = [p for p in ports if p.mode is Mode.HTTP] if settings.service_routes else []
    routes = http_routes(http_ports, out)
    certificates, terminated = tls_termination(ports, out)
    https_routes = [r for r in routes if r.backend in terminated]
    passthrough = tls_passthrough([p for p in ports if p.passthrough], out)
    ingresses = snapshot.of_kind("Ingress")
    ingress = translate_ingresses(ingresses, snapshot.of_kind("IngressClass"), ports, out)
    certificates, default_sni = sni_filters(certificates, ingress.certificates, ingress.tls_owners)
    https = bool(passthrough) or terminates_https(https_routes, ingress.routes)
    # Redirect and HSTS only where this Service's own routes really have HTTPS: a
    # terminated Service without routes (--service-routes=false) has nowhere to send to.
    secure = {r.backend for r in https_routes} | passed_services(passthrough, ports)
    backends = [_backend(p, https=p.backend in secure) for p in ports]
    frontends = tcp_frontends([p for p in ports if p.listener], settings, out, https=https)
    routed = {
        settings.http_port: {r.backend for r in routes},
        settings.https_port: {r.backend for r in https_routes} | {t.backend for t in passthrough},
    }
    lbs = published(ports, frontends, routed, out)
    # (Those of the Service loop above carry our status already: to_clear checked.)
    unpublished.extend(k for k in out.load_balancers if k not in lbs and _has_status(snapshot, k))
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
        default_sni=default_sni if settings.ssl_cert is not None else (),
        passthrough=tuple(sorted(passthrough)),
        load_balancers=lbs,
        unpublished=tuple(sorted(unpublished)),
        ingress_routes=tuple(sorted(ingress.routes)),
        ingress_default=ingress.default_backend,
        ingresses=tuple(sorted(ingress.served)),
        unclaimed_ingresses=unclaimed(ingresses, ingress.served),
    )
    return Translation(
        model=model,
        problems=tuple(sorted(set(out.problems))),
    )


def _has_status(snapshot: Snapshot, key: ObjectKey) -> bool:
    svc = snapshot.objects.get(key)
    return svc is not None and has_our_status(svc)


def _selected(key: ObjectKey, settings: Settings) -> bool:
    if settings.namespaces and key.namespace not in settings.namespaces:
        return False
    target = settings.target_service
    return target is None or target.matches(key.namespace, key.name)


def _service_ports(
    svc: RawObject,
    key: ObjectKey,
    out: TranslationRun,
    clusters: Callable[[], Mapping[str, ClusterIndex]],
) -> list[ServicePort]:
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
    external: str | None = None
    if spec.get("type") == "ExternalName":
        external, refused = external_name(spec.get("externalName"), settings)
        if external is None:
            out.problem(key, refused)
            return []
    tcp_entries = [t for t in settings.tcp_services if t.service.matches(key.namespace, key.name)]
    api_server = (key.namespace, key.name) == API_SERVER
    if api_server and not tcp_entries:
        return []
    raw_annotations = (svc.get("metadata") or {}).get("annotations") or {}
    if not isinstance(raw_annotations, dict):
        out.problem(key, "metadata.annotations is not a mapping")
        return []
    annotations = {str(k): str(v) for k, v in raw_annotations.items()}
    options = _options(spec, annotations, key, settings, out)
    if options is None:
        return []
    try:
        multi = global_options(annotations)
    except ann.AnnotationError as err:
        out.problem(key, f"not served: {err}")
        return []
    if (unused := unused_options(annotations, multi)) is not None:
        out.problem(key, unused)
    lb = lb_spec(svc, spec, settings)
    if isinstance(lb, str):
        out.problem(key, lb)
        return []
    if lb is not None:
        out.load_balancers.add(key)
    raw_ports = spec.get("ports")
    if not isinstance(raw_ports, list) or not raw_ports:
        out.problem(key, "has no ports")
        return []

    result: list[ServicePort] = []
    for raw in raw_ports:
        if not isinstance(raw, dict):
            out.problem(key, "spec.ports has an entry that is not a mapping")
            continue
        protocol = str(raw.get("protocol") or "TCP")
        if protocol != "TCP":
            if lb is not None:  # a load balancer that serves only part of what is asked
                out.problem(key, f"port {raw.get('port')}/{protocol}: only TCP is supported")
                out.unsupported.add(key)
            continue  # UDP and SCTP cannot go through HAProxy
        number = raw.get("port")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            out.problem(key, f"port {number!r} is not a port number")
            continue
        name = raw.get("name") or ""
        target = target_port(raw.get("targetPort"))
        tcp = [t for t in tcp_entries if t.port == number]
        if api_server and not tcp:
            continue  # the API server only ever through the TCP ports named for it
        mode = Mode.TCP if tcp else Mode.HTTP
        port = ServicePort(
            key, str(name), number, target, mode, options, servers=(), listener=bool(tcp)
        )
        port.protocol = _protocol(raw.get("appProtocol"), options)
        port.lb = lb
        if external is not None:
            port.external_name = external
            port.servers = (external_server(external, number, target),)
        else:
            port.servers = servers(svc, port, out)
            if multi.is_global:
                remote = remote_servers(clusters(), key, port.name, number, out)
                port.servers = with_affinity(port.servers, remote, multi)
                port.all_backups = multi.backups
        port.backend = backend_name(mode, key, number)
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
            port.backend = backend_name(Mode.TCP, key, port.number)
    unverified = [p.number for p in result if p.mode is Mode.HTTP and p.protocol.tls]
    if unverified and settings.backend_ca is None:
        # Served all the same (a warning, not a refusal): pods' certificates are often
        # self-signed, and encryption without verification still beats clear text.
        listed = ", ".join(str(n) for n in unverified)
        out.problem(key, f"TLS to the pods of port {listed} is not verified (no --backend-ca)")
    return result


def _options(
    spec: Mapping[str, Any],
    annotations: dict[str, str],
    key: ObjectKey,
    settings: Settings,
    out: TranslationRun,
) -> ServiceOptions | None:
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
        timeout_server = ann.TIMEOUT_SERVER.get(annotations)
        timeout_connect = ann.TIMEOUT_CONNECT.get(annotations)
        protocol = ann.BACKEND_PROTOCOL.get(annotations)
    except ann.AnnotationError as err:
        out.problem(key, f"not served: {err}")
        return None
    conflict = tls_conflict(ssl_term, passthrough, ssl_redirect, host)
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
    return ServiceOptions(
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
        timeout_server_ms=timeout_server,
        timeout_connect_ms=timeout_connect,
        protocol=protocol,
    )


def _protocol(app_protocol: object, options: ServiceOptions) -> Protocol:
    """The port's appProtocol decides when it has one; else lb.backend-protocol."""
    if isinstance(app_protocol, str) and app_protocol:
        return APP_PROTOCOLS.get(app_protocol.lower(), Protocol.H1)
    return options.protocol or Protocol.H1


def _tls_server_name(port: ServicePort) -> str | None:
    """The name a TLS backend asks its pods for and verifies: an external service's own
    name, else the Service's lb.host (not a wildcard), else None (the client's Host)."""
    if port.external_name is not None:
        return port.external_name
    host = port.options.host
    return host if host is not None and not host.startswith("*.") else None


def _backend(port: ServicePort, *, https: bool) -> Backend:
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
        timeout_server_ms=port.options.timeout_server_ms,
        timeout_connect_ms=port.options.timeout_connect_ms,
        external_name=port.external_name,
        protocol=port.protocol if http else Protocol.H1,
        allowed_sources=port.sources,
        tls_server_name=_tls_server_name(port) if http and port.protocol.tls else None,
        all_backups=port.all_backups,
    )


def _with_strips(backend: Backend, prefixes: list[str]) -> Backend:
    if not prefixes:
        return backend
    # Longest first, so a regex alternation tries the most specific prefix first.
    ordered = tuple(sorted(set(prefixes), key=lambda p: (-len(p), p)))
    return replace(backend, strip_prefixes=ordered)
