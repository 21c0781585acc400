"""The pure parsers of flag values (and of the same values in the --cfg file).

Each takes the text a user wrote and returns the normalised value `Settings` holds, or
raises `SettingsError` in one line that names the flag and the wrong item. config.py
calls them while it builds `Settings`; cli.py and the autoscale command share the port
check. Nothing here reads a file or the environment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path

from service_loadbalancer.annotations import AnnotationError, parse_time
from service_loadbalancer.kube.names import DNS1123_LABEL, DNS1123_SUBDOMAIN
from service_loadbalancer.settings import (
    DENY_WORDS,
    NODE_WORD,
    RemoteCluster,
    ServiceRef,
    SettingsError,
    TcpService,
)

#: Bounds of --timeout-tunnel and --hard-stop-after: a week, far below HAProxy's own
#: limit (about 24 days).
MAX_LONG_TIMEOUT_MS = 7 * 24 * 3_600_000


def parse_long_timeout(text: str, *, flag: str) -> int:
    """A time as the annotations take it (`90s`, `30m`, `2h`), 1 s to a week; in ms."""
    try:
        ms = parse_time(text, most=2**31 - 1, most_text="24 days")
    except AnnotationError as err:
        raise SettingsError(f"{flag}: {err}") from None
    if not 1000 <= ms <= MAX_LONG_TIMEOUT_MS:
        raise SettingsError(f"{flag}: {text.strip()!r} is not between 1s and 168h")
    return ms


def names_node(text: str) -> bool:
    """Whether --deny-external-cidrs names `node`, read the way parse_deny_cidrs reads it
    (items stripped): `loopback, node` must not drop the node's addresses, which would fail
    open."""
    return NODE_WORD in (i.strip() for i in text.split(","))


def parse_deny_cidrs(text: str, node: Iterable[str] = ()) -> tuple[str, ...]:
    """`loopback,link-local,node,10.0.0.0/8`: CIDRs and words, normalised, without
    duplicates; `node` adds each of `node` (the node's addresses) as one host. An empty
    value denies nothing."""
    networks: list[str] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        if item in DENY_WORDS or item == NODE_WORD:
            cidrs = DENY_WORDS.get(item) or tuple(node)
        else:
            cidrs = (item,)
        for cidr in cidrs:
            words = ", ".join([*DENY_WORDS, NODE_WORD])
            network = _network(cidr, "--deny-external-cidrs", item, f" nor one of {words}")
            if network not in networks:
                networks.append(network)
    return tuple(networks)


def _network(cidr: str, flag: str, item: str, alternatives: str = "") -> str:
    """`cidr` normalised (a bare address is one host), or one SettingsError naming `item`.
    Host bits set (`10.0.0.1/8`) is an error: probably a typo, and a wider network than
    meant is the costly mistake. No zone index (fe80::1%eth0) in a config."""
    try:
        if not cidr.isascii() or "%" in cidr:
            raise ValueError(cidr)
        return str(ipaddress.ip_network(cidr, strict=True))
    except ValueError as err:
        detail = " (host bits set)" if "host bits" in str(err) else ""
        raise SettingsError(f"{flag}: {item!r} is not a CIDR{detail}{alternatives}") from None


def parse_service_ref(text: str, *, flag: str) -> ServiceRef:
    parts = text.split("/")
    if len(parts) > 2 or not all(DNS1123_LABEL.matches(p) for p in parts):
        raise SettingsError(f"{flag}: {text!r} is not a service name or namespace/name")
    if len(parts) == 2:
        return ServiceRef(name=parts[1], namespace=parts[0])
    return ServiceRef(name=parts[0])


def port_number(text: str) -> int:
    """A port, 1-65535; ValueError says why not. The one port check, for flags and
    list entries alike."""
    # int() also takes "8_0" and non-ASCII digits; a port is plain ASCII digits.
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a port number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{port} is not a port number (1-65535)")
    return port


def parse_port(text: str, *, flag: str) -> int:
    try:
        return port_number(text)
    except ValueError as err:
        raise SettingsError(f"{flag}: {err}") from None


def parse_tcp_services(text: str) -> tuple[TcpService, ...]:
    """`mysql:3306,nginxsvc:443,db/pg:5432` as in the original controller."""
    result: list[TcpService] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        name, sep, port = item.rpartition(":")
        if not sep or not name:
            raise SettingsError(f"--tcp-services: {item!r} is not name:port")
        result.append(
            TcpService(
                service=parse_service_ref(name, flag="--tcp-services"),
                port=parse_port(port, flag="--tcp-services"),
            )
        )
    return tuple(result)


def parse_ingress_class(text: str) -> str:
    """An IngressClass name: a DNS-1123 subdomain, as the API server requires."""
    value = text.strip()
    if not DNS1123_SUBDOMAIN.matches(value):
        raise SettingsError(f"--ingress-class: {text!r} is not an IngressClass name")
    return value


def parse_namespaces(text: str) -> tuple[str, ...]:
    names = tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))
    for name in names:
        if not DNS1123_LABEL.matches(name):
            raise SettingsError(f"--namespace: {name!r} is not a namespace name")
    return names


def parse_trusted_proxies(text: str) -> tuple[str, ...]:
    """`10.0.0.0/8,2001:db8::/32,192.0.2.7`: networks in CIDR form (a bare address is
    one host), normalised, without duplicates."""
    networks: list[str] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        network = _network(item, "--trusted-proxies", item)
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def parse_dns_servers(text: str) -> tuple[str, ...]:
    """`10.0.0.10:53,[2001:db8::1]:53,127.0.0.53`: IP addresses with an optional port
    (53), as `ip:port` for HAProxy's `nameserver` lines. Addresses only: a name would
    need a resolver to find the resolver."""
    servers: list[str] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        host, port = item, "53"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ("53" if not rest else "x")
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            if not host.isascii() or "%" in host:
                raise ValueError(host)
            ip = ipaddress.ip_address(host)
            number = port_number(port)
        except ValueError:
            raise SettingsError(f"--dns-servers: {item!r} is not an address[:port]") from None
        spec = f"[{ip}]:{number}" if ip.version == 6 else f"{ip}:{number}"
        if spec not in servers:
            servers.append(spec)
    return tuple(servers)


def parse_remote_clusters(values: Sequence[str]) -> tuple[RemoteCluster, ...]:
    """`--remote-cluster NAME=KUBECONFIG[@CONTEXT]`, repeated. NAME is a DNS label (it
    goes into server names), unique. (config.py checks that the kubeconfig exists.)"""
    clusters: list[RemoteCluster] = []
    for value in values:
        name, sep, rest = value.partition("=")
        path, _, context = rest.rpartition("@") if "@" in rest else (rest, "", "")
        if not sep or not path:
            raise SettingsError(f"--remote-cluster: {value!r} is not NAME=KUBECONFIG[@CONTEXT]")
        if not DNS1123_LABEL.matches(name):
            raise SettingsError(f"--remote-cluster: {name!r} is not a cluster name (a DNS label)")
        if any(c.name == name for c in clusters):
            raise SettingsError(f"--remote-cluster: {name!r} is given twice")
        clusters.append(RemoteCluster(name, Path(path), context or None))
    return tuple(clusters)
