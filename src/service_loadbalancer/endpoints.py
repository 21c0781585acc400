"""The servers of a Service port: its ready endpoints, or its ClusterIP.

Pure. With `--forward-services`, the Service's ClusterIP (when it has one);
otherwise its EndpointSlices when it has any, else its core/v1 Endpoints. Addresses are
input that ends up in server lines: anything but a plain IP address and a port number is
skipped with a problem.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from service_loadbalancer.kube.objects import SERVICE_NAME_LABEL, ObjectKey, RawObject, key_of
from service_loadbalancer.model import Server
from service_loadbalancer.translation_run import ServicePort, TranslationRun


def servers(svc: RawObject, port: ServicePort, out: TranslationRun) -> tuple[Server, ...]:
    key = port.key
    spec = svc.get("spec") or {}
    cluster_ip = spec.get("clusterIP")
    if out.settings.forward_services and cluster_ip not in (None, "", "None"):
        return make_servers([(str(cluster_ip), port.number)], key, out)
    found = ready_addresses(
        out.slices.get((key.namespace, key.name)),
        out.endpoints.get((key.namespace, key.name)),
        key,
        port.name,
        port.target,
    )
    return () if found is None else make_servers(*found, out)


def ready_addresses(
    service_slices: Iterable[RawObject] | None,
    core: RawObject | None,
    key: ObjectKey,
    port_name: str,
    target: int | str | None,
) -> tuple[list[tuple[str, object]], ObjectKey] | None:
    """The ready (address, port) pairs of a Service port, from its EndpointSlices when
    it has any, else from its core/v1 Endpoints, and the object they come from (for
    problems); None when it has neither."""
    if service_slices:
        addresses = list(_slice_addresses(service_slices, port_name, target))
        return addresses, ObjectKey("EndpointSlice", key.namespace, key.name)
    if core is not None:
        addresses = list(_endpoints_addresses(core, port_name, target))
        return addresses, ObjectKey("Endpoints", key.namespace, key.name)
    return None


def make_servers(
    addresses: Iterable[tuple[str, object]],
    subject: ObjectKey,
    out: TranslationRun,
    *,
    prefix: str = "s",
    cluster: str = "",
    why: str = "",
) -> tuple[Server, ...]:
    """Servers for (address, port) pairs, named `<prefix>_<address>_<port>`; anything but
    an IP address and a port number is skipped with a problem about `subject` (`why`
    before the reason: which cluster it came from)."""
    servers: dict[str, Server] = {}
    for address, number in addresses:
        ip, error = _parse_ip(address)
        if error:
            out.problem(subject, f"{why}address {address!r} {error}; skipped")
            continue
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            out.problem(subject, f"{why}port {number!r} of {address} is not a port number; skipped")
            continue
        name = f"{prefix}_{ip.replace('.', '_').replace(':', '_')}_{number}"
        servers[name] = Server(name=name, address=ip, port=number, cluster=cluster)
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


def index_slices(all_slices: Iterable[RawObject]) -> dict[tuple[str, str], list[RawObject]]:
    index: dict[tuple[str, str], list[RawObject]] = defaultdict(list)
    for sl in all_slices:
        labels = (sl.get("metadata") or {}).get("labels") or {}
        service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
        if service:
            index[(key_of(sl).namespace, str(service))].append(sl)
    return index
