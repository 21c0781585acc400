"""Settings: one frozen object, and the pure parsers of the values it holds.

`config.py` builds it from the flags, the environment and the --cfg file; this module
reads nothing and imports neither pydantic nor yaml, so the pure core (translate,
render, plan) that takes a `Settings` stays free of them. Every mistake is one
`SettingsError` line.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from service_loadbalancer.annotations import AnnotationError, parse_time
from service_loadbalancer.kube.names import DNS1123_LABEL, DNS1123_SUBDOMAIN
from service_loadbalancer.model import Algorithm

# `\Z`, not `$`: `$` also matches before a trailing newline, which would let
# "web\n" through into the config.
STATS_USER_RE = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
#: The password reaches HAProxy through its environment, never the config text, but
#: HAProxy still parses it: keep it to printable ASCII without blanks or quotes.
STATS_PASSWORD_RE = re.compile(r"[!#-&(-~]{1,128}\Z")

DEFAULT_RUN_DIR = Path("/var/run/service-loadbalancer")
#: The config's name in the run directory, unless the --cfg file puts it elsewhere.
CONFIG_NAME = "haproxy.cfg"

#: `timeout tunnel` unless --timeout-tunnel or the --cfg file's timeoutTunnel says.
DEFAULT_TIMEOUT_TUNNEL_MS = 3_600_000

ENV_STATS_USER = "SLB_STATS_USER"
ENV_STATS_PASSWORD = "SLB_STATS_PASSWORD"
ENV_STATS_PASSWORD_FILE = "SLB_STATS_PASSWORD_FILE"


#: The words --deny-external-cidrs takes besides CIDRs. `loopback` includes the
#: unspecified addresses: a connection to 0.0.0.0 or :: reaches the node itself.
DENY_WORDS: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"),
    "link-local": ("169.254.0.0/16", "fe80::/10"),
}
#: `node` stands for the node's own addresses (read at start, node_addresses.py).
NODE_WORD = "node"
DEFAULT_DENY_EXTERNAL = "loopback,link-local,node"
#: What `Settings` denies unless told otherwise (the flag's default, less `node`).
DEFAULT_DENY_CIDRS = DENY_WORDS["loopback"] + DENY_WORDS["link-local"]


class SettingsError(ValueError):
    """A flag, variable or config file value that cannot be used; one line, no traceback."""


@dataclass(frozen=True, slots=True, order=True)
class ServiceRef:
    """A Service named on the command line: `name` or `namespace/name`."""

    name: str
    namespace: str | None = None

    def matches(self, namespace: str, name: str) -> bool:
        return self.name == name and self.namespace in (None, namespace)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True, order=True)
class TcpService:
    """A `--tcp-services` entry: this Service port is served as TCP on the same port."""

    service: ServiceRef
    port: int


@dataclass(frozen=True, slots=True)
class RemoteCluster:
    """A `--remote-cluster NAME=KUBECONFIG[@CONTEXT]`: another cluster whose global
    Services' endpoints are served too (global_services.py)."""

    name: str
    kubeconfig: Path
    context: str | None = None

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Settings:
    http_port: int = 80
    stats_port: int = 1936
    healthz_port: int = 8081
    #: Address HAProxy and the status server bind to; "" means every address.
    bind_address: str = ""
    tcp_services: tuple[TcpService, ...] = ()
    target_service: ServiceRef | None = None
    forward_services: bool = False
    balance_algorithm: Algorithm = Algorithm.ROUNDROBIN
    default_return_code: int = 404
    #: The content of --error-page, read once at start.
    error_page: str | None = None
    syslog: bool = False
    #: Namespaces to serve; empty means all.
    namespaces: tuple[str, ...] = ()
    manifests: Path | None = None
    haproxy_bin: str = "haproxy"
    #: A user's Jinja2 template replacing the built-in one (its text).
    template: str | None = None
    #: Where the HAProxy config goes (its map files beside it), if not `config_path`'s
    #: default; the --cfg file's `config` key.
    haproxy_config: Path | None = None
    run_dir: Path = DEFAULT_RUN_DIR
    stats_user: str | None = None
    stats_password: str | None = field(default=None, repr=False)
    dry: bool = False
    #: Port of the HTTPS frontend (termination and SNI passthrough share it).
    https_port: int = 443
    #: The default certificate (PEM with its key), checked at start; referenced, not copied.
    ssl_cert: Path | None = None
    #: CA certificates that client certificates must chain to (verify required).
    ssl_ca_cert: Path | None = None
    #: Whether Secrets named by lb.ssl-secret may be read (and their keys written to disk).
    tls_secrets: bool = False
    #: TLS session tickets on terminated connections (off: forward secrecy, no key to rotate).
    tls_tickets: bool = False
    #: Status of the redirect to HTTPS (lb.sslRedirect).
    ssl_redirect_code: int = 308
    #: Longest wait, in seconds, for a removed endpoint's connections to end before
    #: they are cut and the server deleted.
    drain_timeout: float = 30.0
    #: Networks (normalised CIDRs) whose clients' X-Forwarded-* headers are kept
    #: (--trusted-proxies); everyone else's are replaced.
    trusted_proxies: tuple[str, ...] = ()
    #: Seconds between SIGTERM (/healthz turns 503) and the soft stop of HAProxy, for
    #: the readiness probe to take the node out while it still serves.
    shutdown_grace: float = 5.0
    #: Passive health on every server (render.SERVER_OPTIONS): off leaves the retries
    #: but no `check`, for a `nofile` limit below the number of endpoints.
    passive_health: bool = True
    #: Serve ExternalName Services (--allow-external-names). Off by default: a user who
    #: may create Services could point one anywhere the node reaches (CVE-2021-25740).
    allow_external_names: bool = False
    #: Also let an ExternalName point to a cluster-internal name (*.svc, *.cluster.local).
    allow_cluster_external_names: bool = False
    #: DNS servers (`host:port`) HAProxy resolves ExternalNames with; empty: the
    #: nameservers of /etc/resolv.conf.
    dns_servers: tuple[str, ...] = ()
    #: Services of type LoadBalancer served (--load-balancer-class): None, those without
    #: spec.loadBalancerClass; else exactly those of this class.
    load_balancer_class: str | None = None
    #: --publish-address: the addresses (IPs, or host names) written to the status of the
    #: load balancers; empty: the nodes that run our pods.
    publish_addresses: tuple[str, ...] = ()
    #: The Lease that elects the one replica writing status (--election-id).
    election_id: str = "service-loadbalancer-leader"
    #: The IngressClass whose Ingresses we serve (--ingress-class); see ingress_class.py.
    ingress_class: str = "service-loadbalancer"
    #: Also serve Ingresses that name no class at all (--watch-ingress-without-class).
    watch_ingress_without_class: bool = False
    #: The original's Service routes (/svc, /ns/svc, lb.host, lb.aclMatch); off for
    #: clusters that route with Ingress only (--service-routes=false).
    service_routes: bool = True
    #: Plain HTTP to a host listed in an Ingress's spec.tls is redirected to HTTPS.
    ingress_ssl_redirect: bool = True
    #: CA certificates that pods' certificates must chain to when the load balancer
    #: speaks TLS to them (appProtocol https, lb.backend-protocol https or h2); None:
    #: not verified (and reported).
    backend_ca: Path | None = None
    #: `timeout tunnel`, in milliseconds: how long an upgraded connection (WebSocket) or
    #: a CONNECT tunnel may stay idle before it is cut.
    timeout_tunnel_ms: int = DEFAULT_TIMEOUT_TUNNEL_MS
    #: `hard-stop-after`, in milliseconds: how long an old worker may keep its
    #: connections after a reload (or a soft stop); None: until they end.
    hard_stop_after_ms: int | None = None
    #: Networks (normalised CIDRs) an ExternalName may not resolve into: its server is
    #: put in maintenance, and the Service reported, while it does.
    deny_external_cidrs: tuple[str, ...] = DEFAULT_DENY_CIDRS
    #: Other clusters whose endpoints global Services also use (--remote-cluster).
    remote_clusters: tuple[RemoteCluster, ...] = ()
    #: How long an unreachable remote cluster's endpoints are kept (--remote-stale-after).
    remote_stale_after: float = 300.0

    @property
    def config_path(self) -> Path:
        """The HAProxy config: `haproxy_config` if given, else `<run_dir>/haproxy.cfg`.
        Derived, not stored, so a copy with another run_dir (`dataclasses.replace`)
        keeps the two together."""
        return self.haproxy_config or self.run_dir / CONFIG_NAME

    @property
    def stats_auth(self) -> bool:
        return self.stats_user is not None and self.stats_password is not None

    def haproxy_env(self) -> dict[str, str]:
        """Environment for every haproxy invocation: secrets travel here, not in the
        config text, so a printed or leaked config holds no password."""
        if self.stats_user is None or self.stats_password is None:
            return {}
        return {ENV_STATS_USER: self.stats_user, ENV_STATS_PASSWORD: self.stats_password}


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
            try:
                if not cidr.isascii() or "%" in cidr:
                    raise ValueError(cidr)
                network = ipaddress.ip_network(cidr, strict=True)
            except ValueError as err:
                detail = " (host bits set)" if "host bits" in str(err) else ""
                words = ", ".join([*DENY_WORDS, NODE_WORD])
                raise SettingsError(
                    f"--deny-external-cidrs: {item!r} is not a CIDR{detail} nor one of {words}"
                ) from None
            if str(network) not in networks:
                networks.append(str(network))
    return tuple(networks)


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
    one host), normalised, without duplicates. Host bits set (`10.0.0.1/8`) is an error:
    probably a typo, and trusting a wider network than meant is the costly mistake."""
    networks: list[str] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        try:
            if not item.isascii() or "%" in item:  # no zone index (fe80::1%eth0) in a config
                raise ValueError(item)
            network = ipaddress.ip_network(item, strict=True)
        except ValueError as err:
            detail = " (host bits set)" if "host bits" in str(err) else ""
            raise SettingsError(f"--trusted-proxies: {item!r} is not a CIDR{detail}") from None
        if str(network) not in networks:
            networks.append(str(network))
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
            number = int(port)
            if not port.isdigit() or not 1 <= number <= 65535:
                raise ValueError(port)
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


# ---------------------------------------------------------------------------- live edits

#: The fields a --cfg edit applies without a restart: they only change what is
#: translated and rendered, so a full sync (and a reload when the text changes) applies
#: them. Every other field needs a restart: ports and the bind address are flags; the
#: run directory and the config path are where the running HAProxy's sockets and files
#: are; the stats credentials reach the HAProxy master through its environment, which a
#: reload keeps. A new field needs a restart until it is added here.
LIVE_FIELDS: frozenset[str] = frozenset(
    {
        "balance_algorithm",
        "syslog",
        "template",
        "error_page",
        "timeout_tunnel_ms",
        "hard_stop_after_ms",
    }
)

#: How a field is named to the user: its --cfg key, else its flag.
FIELD_KEYS: dict[str, str] = {
    "balance_algorithm": "algorithm",
    "syslog": "startSyslog",
    "template": "template",
    "error_page": "--error-page (its content)",
    "haproxy_config": "config",
    "run_dir": "runDir",
    "stats_user": "statsUser",
    "stats_password": "statsPassword",
    "timeout_tunnel_ms": "timeoutTunnel",
    "hard_stop_after_ms": "hardStopAfter",
}


def field_key(name: str) -> str:
    return FIELD_KEYS.get(name, "--" + name.replace("_", "-"))


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """A rebuilt `Settings` compared with the running and the starting ones."""

    #: What to run: the new values of the live fields, the starting values of the rest.
    settings: Settings
    #: Keys (as the user names them) whose new values apply now.
    live: tuple[str, ...]
    #: Keys whose new values differ from those the controller started with, and which
    #: only a restart applies.
    restart: tuple[str, ...]


def diff_settings(*, started: Settings, running: Settings, new: Settings) -> SettingsChange:
    """Split a rebuilt `new` into what applies live (against `running`) and what needs a
    restart (against `started`, so a restart-only edit stays reported until a restart).
    Pure."""
    names = [f.name for f in fields(Settings)]
    live = tuple(
        field_key(n) for n in names if n in LIVE_FIELDS and getattr(running, n) != getattr(new, n)
    )
    restart = tuple(
        field_key(n)
        for n in names
        if n not in LIVE_FIELDS and getattr(started, n) != getattr(new, n)
    )
    settings = replace(started, **{n: getattr(new, n) for n in LIVE_FIELDS})
    return SettingsChange(settings=settings, live=live, restart=restart)
