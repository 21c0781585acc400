"""Who gets which path, host and TCP port: HTTP routes, `--tcp-services` claims, TCP listeners.

Pure. Every clash is settled by a fixed rule (the first by namespace/name/port, or the
Service in `default` for a short path and for a `--tcp-services` entry without a
namespace), and every loser becomes a problem that names it and says who won.
"""

from __future__ import annotations

from collections import defaultdict

from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import HttpRoute, Mode, TcpFrontend
from service_loadbalancer.settings import Settings, TcpService
from service_loadbalancer.translation_run import ServicePort, TranslationRun

TCP_FLAG = ObjectKey("Flag", "", "--tcp-services")


def resolve_tcp_names(
    claims: dict[TcpService, list[ServicePort]], settings: Settings, out: TranslationRun
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


def _suffix(port: ServicePort) -> str:
    return "" if port.number == 80 else f":{port.number}"


def http_routes(ports: list[ServicePort], out: TranslationRun) -> list[HttpRoute]:
    """Routes for every HTTP port; on a clash the first by namespace/name/port wins."""
    ports = sorted(ports, key=lambda p: p.sort_key)
    short_owner = _short_name_owners(ports, out)
    wanted: list[tuple[ServicePort, HttpRoute]] = []
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

    taken: dict[tuple[str | None, str], ServicePort] = {}
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


def _short_name_owners(ports: list[ServicePort], out: TranslationRun) -> dict[str, str]:
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


def tcp_frontends(
    ports: list[ServicePort], settings: Settings, out: TranslationRun, *, https: bool
) -> list[TcpFrontend]:
    reserved = {
        settings.http_port: "--http-port",
        settings.stats_port: "--stats-port",
        settings.healthz_port: "--healthz-port",
    }
    if https:  # only then: the original's users serve their own TLS on 443 with TCP
        reserved[settings.https_port] = "--https-port"
    taken: dict[int, ServicePort] = {}
    frontends: list[TcpFrontend] = []
    for port in sorted(ports, key=lambda p: p.claim_key):
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
                f"{owner.key.namespace}/{owner.key.name}{_older(owner, port)}; not served",
            )
            continue
        taken[port.number] = port
        frontends.append(
            TcpFrontend(port=port.number, backend=port.backend, allowed_sources=port.sources)
        )
    return frontends


def _older(owner: ServicePort, port: ServicePort) -> str:
    if owner.lb is None or port.lb is None:
        return ""
    return (
        " (created earlier)"
        if owner.lb.created != port.lb.created
        else " (same age, first by name)"
    )
