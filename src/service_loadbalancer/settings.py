"""Settings: one frozen object, and the small value types it holds.

`config.py` builds it from the flags, the environment and the --cfg file, with the
parsers of flag_values.py; which fields a --cfg edit changes live is settings_diff.py's.
This module reads nothing and imports neither pydantic nor yaml, so the pure core
(translate, render, plan) that takes a `Settings` stays free of them. Every mistake is
one `SettingsError` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

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
