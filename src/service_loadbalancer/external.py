"""ExternalName Services: which names may be served, and their one server.

Pure. An ExternalName Service is served only with `--allow-external-names`: whoever may
create a Service could otherwise point the load balancer at any address the node reaches,
its own loopback and the cluster's internal services included (CVE-2021-25740). Even
then, a name that is an IP literal, `localhost`, or (without
`--allow-cluster-external-names`) a cluster-internal name is refused with a problem. The
name is resolved by HAProxy at run time (render.py's `resolvers` section), so a DNS
change is followed without a sync. What it resolves to is judged then, by
haproxy/guard.py with `denied_by`: an address in `--deny-external-cidrs` (by default
loopback, link-local and the node's own) takes the server out of service.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from service_loadbalancer.kube.names import DNS1123_SUBDOMAIN
from service_loadbalancer.model import Server
from service_loadbalancer.settings import Settings

#: Suffixes of names that resolve inside the cluster (the default cluster domain, and
#: `<svc>.<ns>.svc` as a search domain would complete it).
CLUSTER_SUFFIXES = (".svc", ".cluster.local")


def external_name(raw: object, settings: Settings) -> tuple[str | None, str]:
    """(the normalised name, "") or (None, why it is refused)."""
    if not settings.allow_external_names:
        return None, (
            "type ExternalName is not served (--allow-external-names is off, CVE-2021-25740)"
        )
    if not isinstance(raw, str) or not raw:
        return None, "type ExternalName without spec.externalName; not served"
    name = raw.lower().removesuffix(".")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return None, f"externalName {raw!r} is an IP address, not a name; not served"
    if not DNS1123_SUBDOMAIN.matches(name):
        return None, f"externalName {raw!r} is not a DNS name; not served"
    if name == "localhost" or name.endswith(".localhost"):
        return None, f"externalName {raw!r} is the node itself; not served"
    internal = "." not in name or name.endswith(CLUSTER_SUFFIXES)
    if internal and not settings.allow_cluster_external_names:
        return None, (
            f"externalName {raw!r} is cluster-internal; not served (--allow-cluster-external-names)"
        )
    return name, ""


def external_server(name: str, number: int, target: int | str | None) -> Server:
    """The one server: the name, on a numeric targetPort if there is one, else the port."""
    port = target if isinstance(target, int) and 1 <= target <= 65535 else number
    return Server(name=f"ext_{port}", address=name, port=port)


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def denied_by(address: str, cidrs: tuple[str, ...]) -> str | None:
    """The first of `cidrs` (normalised, as Settings holds them) that holds `address`,
    else None; None too for what is not an address. An IPv4-mapped IPv6 address
    (::ffff:127.0.0.1) is judged as the IPv4 address it reaches."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network in _networks(cidrs):
        if ip.version == network.version and ip in network:
            return str(network)
    return None
