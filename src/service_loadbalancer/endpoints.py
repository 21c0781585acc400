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

from service_loadbalancer.kube.objects import (
    SERVICE_NAME_LABEL,
    ObjectKey,
    RawObject,
    a_type,
    key_of,
)
from service_loadbalancer.model import Server
from service_loadbalancer.translation_run import ServicePort, TranslationRun


def servers(svc: RawObject, port: ServicePort, out: TranslationRun) -> tuple[Server, ...]:
    key = port.key
    spec = svc.get("spec")
    cluster_ip = spec.get("clusterIP") if isinstance(spec, dict) else None
    if out.settings.forward_services and cluster_ip not in (None, "", "None"):
        return make_servers([(str(cluster_ip), port.number)], key, out)
    found = ready_addresses(
        out.slices.get((key.namespace, key.name)),
        out.endpoints.get((key.namespace, key.name)),
        key,
        port.name,
        port.target,
    )
    if found is None:
        return ()
    addresses, subject, malformed = found
    return make_servers(addresses, subject, out, malformed=malformed)


#: (address, port) pairs, the object they come from, and what was malformed in it.
Ready = tuple[list[tuple[str, object]], ObjectKey, list[str]]


def ready_addresses(
    service_slices: Iterable[RawObject] | None,
    core: RawObject | None,
    key: ObjectKey,
    port_name: str,
    target: int | str | None,
) -> Ready | None:
    """The ready (address, port) pairs of a Service port, from its EndpointSlices when
    it has any, else from its core/v1 Endpoints, the object they come from (for
    problems) and the malformed parts read as missing (a list or mapping of the wrong
    type: an exception here would end the controller); None when it has neither."""
    malformed: list[str] = []
    if service_slices:
        addresses = list(_slice_addresses(service_slices, port_name, target, malformed))
        return addresses, ObjectKey("EndpointSlice", key.namespace, key.name), malformed
    if core is not None:
        addresses = list(_endpoints_addresses(core, port_name, target, malformed))
        return addresses, ObjectKey("Endpoints", key.namespace, key.name), malformed
    return None


def target_port(raw: object) -> int | str | None:
    """A Service port's targetPort as the endpoints are matched by: a number or a name,
    None when absent or of another type."""
    if not isinstance(raw, int | str) or isinstance(raw, bool):
        return None
    return raw


def make_servers(
    addresses: Iterable[tuple[str, object]],
    subject: ObjectKey,
    out: TranslationRun,
    *,
    cluster: str = "",
    malformed: Iterable[str] = (),
) -> tuple[Server, ...]:
    """Servers for (address, port) pairs, named `s_<address>_<port>` (`r_<cluster>_...`
    for a remote `cluster`); anything but an IP address and a port number is skipped with
    a problem about `subject` (saying the cluster), as is each `malformed` part."""
    prefix, why = (f"r_{cluster}", f"cluster {cluster}: ") if cluster else ("s", "")
    for reason in sorted(set(malformed)):
        out.problem(subject, f"{why}{reason}")
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
    ep_ports: list[dict[str, Any]], port_name: str, target: int | str | None
) -> Mapping[str, Any] | None:
    """The endpoint port that serves a Service port: the one of the same name (the API
    names endpoint ports after Service ports), else, for a numeric targetPort, the one
    of that number where a name is missing on one side (hand-written Endpoints)."""
    for p in ep_ports:
        if (p.get("name") or "") == port_name:
            return p
    if isinstance(target, int):
        for p in ep_ports:
            if (not p.get("name") or not port_name) and p.get("port") == target:
                return p
    return None


def _items(
    obj: Mapping[str, Any], field: str, where: str, malformed: list[str]
) -> list[dict[str, Any]]:
    """obj[field] as a list of mappings: a missing field is empty; a field that is not a
    list, or an entry that is not a mapping, is read as missing and said in `malformed`
    (naming `where` it is)."""
    value = obj.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        malformed.append(f"{where}: {field} is {a_type(value)}, not a list; read as none")
        return []
    if not all(isinstance(item, dict) for item in value):
        malformed.append(f"{where}: an entry of {field} is not a mapping; skipped")
    return [item for item in value if isinstance(item, dict)]


def _slice_addresses(
    service_slices: Iterable[RawObject],
    port_name: str,
    target: int | str | None,
    malformed: list[str],
) -> Iterable[tuple[str, object]]:
    for sl in service_slices:
        if sl.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        where = f"EndpointSlice {_name(sl)!r}"
        port = _find_port(_items(sl, "ports", where, malformed), port_name, target)
        if port is None:
            continue
        for ep in _items(sl, "endpoints", where, malformed):
            conditions = ep.get("conditions")
            if conditions is not None and not isinstance(conditions, dict):
                malformed.append(f"{where}: conditions is {a_type(conditions)}, not a mapping")
            # The API: a nil `ready` means unknown and is to be taken as ready.
            if isinstance(conditions, dict) and conditions.get("ready") is False:
                continue
            addresses = ep.get("addresses")
            if addresses is not None and not isinstance(addresses, list):
                malformed.append(
                    f"{where}: addresses of an endpoint is {a_type(addresses)}, not a list; skipped"
                )
                continue
            # "Consumers ... may choose to only use the first element" (EndpointSlice API).
            if addresses:
                yield str(addresses[0]), port.get("port")


def _endpoints_addresses(
    core: RawObject, port_name: str, target: int | str | None, malformed: list[str]
) -> Iterable[tuple[str, object]]:
    where = f"Endpoints {_name(core)!r}"
    for subset in _items(core, "subsets", where, malformed):
        port = _find_port(_items(subset, "ports", where, malformed), port_name, target)
        if port is None:
            continue
        for address in _items(subset, "addresses", where, malformed):
            if "ip" in address:
                yield str(address["ip"]), port.get("port")


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def index_slices(all_slices: Iterable[RawObject]) -> dict[tuple[str, str], list[RawObject]]:
    index: dict[tuple[str, str], list[RawObject]] = defaultdict(list)
    for sl in all_slices:
        meta = sl.get("metadata")
        labels = meta.get("labels") if isinstance(meta, dict) else None
        service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
        if service:
            index[(key_of(sl).namespace, str(service))].append(sl)
    return index
