"""Rendering: the model to HAProxy config text and map files. Pure, no I/O.

Everything the template needs is computed here, so the Jinja2 template stays a shape
(and a user's replacement template cannot get the logic wrong). Route lookup lives in
two map files rather than one ACL per service, so a request costs the same whatever
the number of services:

- `paths.map`: `<path>/` -> `<backend>|<strip>|s` (longest prefix match with `map_beg`)
- `hosts.map`: `<host><path>/` -> `<backend>|0|s`, looked up first

The third field, `s` (SERVICE_ROUTE), says the request matched a Service route: a
backend applies its Service's lb.sslRedirect and lb.hsts only then, never to requests
that reached it through an Ingress rule (whose values are `<backend>|0|<redirect>`,
see ingress_maps.py), whose host may have no certificate at all.

HTTPS adds `https-paths.map` and `https-hosts.map` (the same format, only the routes of
lb.sslTerm Services), `sni.map` (`<host>` -> `<backend>`, for passthrough) and
`certs.list` (a crt-list: the default certificate first, then one file per Secret, each
with the SNI filters that say which names it is shown for).

Secrets are not rendered: the stats user and password reach HAProxy through its
environment (see `Settings.haproxy_env`), so the text can be printed with --dry. Key
material is not a config file either: it travels in `Rendered.certificates` and is
written by `haproxy/certs.py` into a private directory, never beside the config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import jinja2

from service_loadbalancer.haproxy.ingress_maps import ingress_context, ingress_files, map_text
from service_loadbalancer.model import (
    Backend,
    HttpRoute,
    LoadBalancer,
    Mode,
    Protocol,
    Server,
    Stickiness,
)
from service_loadbalancer.settings import Settings

CONFIG_FILE = "haproxy.cfg"
PATHS_MAP = "paths.map"
HOSTS_MAP = "hosts.map"
ERROR_PAGE = "error-page.html"
RUNTIME_SOCKET = "haproxy.sock"
HTTPS_PATHS_MAP = "https-paths.map"
HTTPS_HOSTS_MAP = "https-hosts.map"
SNI_MAP = "sni.map"
CRT_LIST = "certs.list"
#: Where certificate files go, below the run directory (mode 0700, files 0600).
CERTS_DIR = "certs"
#: The internal socket between the TLS-inspecting and the TLS-terminating frontends.
TLS_SOCKET = "tls.sock"
#: `show servers state`, saved before every reload and loaded by the new worker.
SERVER_STATE_FILE = "server-state"
#: SNI filters per crt-list line: HAProxy 2.6 reads at most 64 kB and 2048 words a line.
CRT_FILTERS_PER_LINE = 100
#: The third field of a Service route's map value (see the module's docstring).
SERVICE_ROUTE = "s"

#: When a request is tried again (HTTP only; TCP retries connection failures alone):
#: a connection that failed before the request was sent, and a connection closed with
#: no byte of response (for idempotent methods only, see IDEMPOTENT_METHODS). Not
#: `response-timeout`: that request reached a pod, which may still be working on it.
RETRY_ON = "conn-failure empty-response"
#: The methods that may be sent again after an empty response (RFC 9110, 9.2.2); the
#: frontends disable layer-7 retries for every other one, so a POST is never sent twice.
IDEMPOTENT_METHODS = "{ method GET HEAD OPTIONS TRACE PUT DELETE }"
#: Passive health, on every server line (so `add server` gets it too): 3 consecutive
#: failed connections (`observe layer4`, `error-limit 3`) mark a server DOWN at once
#: (`on-error mark-down`); a DOWN server is then probed with a TCP connect every 2 s
#: (`downinter`) and is UP again after one success (`rise 1`). A server that is UP is
#: probed once an hour (`inter 1h`), so the active checks cost next to nothing while
#: pods are healthy. `fastinter` is how soon the first probe follows a mark-down.
SERVER_OPTIONS = (
    "check inter 1h fastinter 1s downinter 2s rise 1 fall 1 "
    "observe layer4 error-limit 3 on-error mark-down"
)

#: The `resolvers` section ExternalName servers are resolved with.
RESOLVERS = "slb_dns"
#: Seconds between two resolutions (`timeout resolve`) and how long an answer is kept
#: (`hold valid`): a DNS change reaches traffic within about their sum, well inside 30 s.
RESOLVE_EVERY_S = 5
HOLD_VALID_S = 10


@dataclass(frozen=True, slots=True)
class Rendered:
    """The files of one config: names relative to the config directory -> content."""

    files: Mapping[str, str]
    #: Certificate file name (in the private certs directory) -> PEM with its key.
    certificates: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def config(self) -> str:
        return self.files[CONFIG_FILE]


class TemplateError(ValueError):
    """A (user) template that does not render; the message says where."""


@cache
def builtin_template() -> str:
    return (
        resources.files("service_loadbalancer.haproxy")
        .joinpath("templates/haproxy.cfg.j2")
        .read_text(encoding="utf-8")
    )


@cache
def _compile(source: str) -> jinja2.Template:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=False,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.from_string(source)


def check_template(source: str) -> None:
    """Compile a template, raising TemplateError with the line on a syntax error."""
    try:
        _compile(source)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"template line {err.lineno}: {err.message}") from None


def render(model: LoadBalancer, settings: Settings) -> Rendered:
    """All files of the config for `model`, from the user's template or the built-in one."""
    source = settings.template if settings.template is not None else builtin_template()
    context = template_context(model, settings)
    try:
        text = _compile(source).render(**context)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"template line {err.lineno}: {err.message}") from None
    except jinja2.TemplateError as err:
        raise TemplateError(f"template: {err}") from None
    except Exception as err:  # a user template can fail in any way: never crash the loop
        raise TemplateError(f"template: {type(err).__name__}: {err}") from None
    files = {
        CONFIG_FILE: text,
        PATHS_MAP: map_text(
            (f"{r.path.rstrip('/')}/", _service_value(r.backend, strip=r.strip))
            for r in model.http_routes
            if r.host is None
        ),
        HOSTS_MAP: map_text(
            (f"{r.host}{r.path.rstrip('/')}/", _service_value(r.backend, strip=False))
            for r in model.http_routes
            if r.host is not None
        ),
    }
    if settings.error_page is not None:
        files[ERROR_PAGE] = settings.error_page
    if model.ingress_routes:
        files.update(ingress_files(model))
    if model.https:
        files.update(_https_files(model, settings))
    return Rendered(
        files=MappingProxyType(files),
        certificates=MappingProxyType({c.name: c.pem for c in model.certificates}),
    )


def _service_value(backend: str, *, strip: bool) -> str:
    return f"{backend}|{int(strip)}|{SERVICE_ROUTE}"


def _crt_lines(path: str, sni: tuple[str, ...]) -> list[str]:
    """`<file> [<filter> ...]`, on as many lines as HAProxy's limits on a crt-list line
    (its length, its number of words) need: the positive filters split, the negative
    ones repeated on each."""
    positive = [f for f in sni if not f.startswith("!")]
    negative = [f for f in sni if f.startswith("!")]
    chunks = [
        positive[i : i + CRT_FILTERS_PER_LINE]
        for i in range(0, len(positive), CRT_FILTERS_PER_LINE)
    ]
    return [" ".join((path, *chunk, *negative)) for chunk in chunks or [[]]]


def _https_files(model: LoadBalancer, settings: Settings) -> dict[str, str]:
    routes: tuple[HttpRoute, ...] = model.https_routes
    certs = settings.run_dir / CERTS_DIR
    # The default certificate first: HAProxy serves it when no SNI name matches. Each
    # line: `<file> [<sni filter> ...]` (sni_filters.py says which names are whose).
    crt_list = (
        _crt_lines(str(settings.ssl_cert), model.default_sni)
        if settings.ssl_cert is not None
        else []
    )
    for cert in model.certificates:
        crt_list += _crt_lines(str(certs / cert.name), cert.sni)
    return {
        HTTPS_PATHS_MAP: map_text(
            (f"{r.path.rstrip('/')}/", _service_value(r.backend, strip=r.strip))
            for r in routes
            if r.host is None
        ),
        HTTPS_HOSTS_MAP: map_text(
            (f"{r.host}{r.path.rstrip('/')}/", _service_value(r.backend, strip=False))
            for r in routes
            if r.host is not None
        ),
        SNI_MAP: map_text((t.host, t.backend) for t in model.passthrough),
        CRT_LIST: "".join(line + "\n" for line in crt_list),
    }


def template_context(model: LoadBalancer, settings: Settings) -> dict[str, Any]:
    """The variables a template sees. Documented in the README; keep both in step."""
    return {
        "runtime_socket": str(settings.run_dir / RUNTIME_SOCKET),
        "timeout_tunnel": haproxy_time(settings.timeout_tunnel_ms),
        "hard_stop_after": _time_or_none(settings.hard_stop_after_ms),
        "server_state_file": str(settings.run_dir / SERVER_STATE_FILE),
        "syslog": settings.syslog,
        "stats_auth": settings.stats_auth,
        "stats_bind": bind_spec(
            settings.bind_address if settings.stats_auth else "127.0.0.1", settings.stats_port
        ),
        "http_bind": bind_spec(settings.bind_address, settings.http_port),
        # Clients whose X-Forwarded-* headers are kept: "" (nobody) or CIDRs for `src`.
        "trusted_proxies": " ".join(settings.trusted_proxies),
        "paths_map": PATHS_MAP,
        "hosts_map": HOSTS_MAP,
        "wildcard_hosts": any(r.host and r.host.startswith("*.") for r in model.http_routes),
        # Without a Host route the Host look-up is skipped: one map look-up per request.
        "host_routes": any(r.host for r in model.http_routes),
        "retry_on": RETRY_ON,
        "idempotent_methods": IDEMPOTENT_METHODS,
        "server_options": SERVER_OPTIONS if settings.passive_health else "",
        "default_return_code": settings.default_return_code,
        "error_page": ERROR_PAGE if settings.error_page is not None else None,
        "backends": [_backend_context(b, settings) for b in model.backends],
        "resolvers": _resolvers_context(model, settings),
        "https": _https_context(model, settings),
        "ingress": ingress_context(model, settings),
        "tcp_frontends": [
            {
                "port": f.port,
                "backend": f.backend,
                "bind": bind_spec(settings.bind_address, f.port),
                "allowed_sources": " ".join(f.allowed_sources),
            }
            for f in model.tcp_frontends
        ],
    }


def _https_context(model: LoadBalancer, settings: Settings) -> dict[str, Any] | None:
    """What the HTTPS frontends need, or None when nothing is served over TLS."""
    if not model.https:
        return None
    ca = settings.ssl_ca_cert
    return {
        "bind": bind_spec(settings.bind_address, settings.https_port),
        "socket": str(settings.run_dir / TLS_SOCKET),
        "terminate": model.terminates,
        "passthrough": bool(model.passthrough),
        "wildcard_sni": any(t.host.startswith("*.") for t in model.passthrough),
        "tickets": settings.tls_tickets,
        "crt_list": CRT_LIST,
        "ca_file": str(ca) if ca is not None else None,
        "paths_map": HTTPS_PATHS_MAP,
        "hosts_map": HTTPS_HOSTS_MAP,
        "sni_map": SNI_MAP,
        "port": settings.https_port,
        "redirect_code": settings.ssl_redirect_code,
        "port_suffix": "" if settings.https_port == 443 else f":{settings.https_port}",
    }


def bind_spec(address: str, port: int) -> str:
    """`:80` for every address, `127.0.0.1:80`, or `[::1]:80`."""
    if not address:
        return f":{port}"
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def server_endpoint(server: Server) -> str:
    """`address:port`, bracketed for IPv6 (addresses are normalised by translation)."""
    if ":" in server.address:
        return f"[{server.address}]:{server.port}"
    return f"{server.address}:{server.port}"


def strip_regex(prefixes: tuple[str, ...]) -> str:
    """One anchored regex for all of a backend's prefixes, so a path is stripped once:
    `^/(?:default/web|web)(?:/|$)(.*)` turns /web/a into /a and /web into /."""
    alternatives = "|".join(re.escape(p.lstrip("/")) for p in prefixes)
    return f"^/(?:{alternatives})(?:/|$)(.*)"


def prefix_regex(prefixes: tuple[str, ...]) -> str:
    """The same prefixes as `strip_regex`, capturing the prefix itself for
    X-Forwarded-Prefix: `^(/(?:default/web|web))(?:/|$).*` turns /web/a into /web."""
    alternatives = "|".join(re.escape(p.lstrip("/")) for p in prefixes)
    return f"^(/(?:{alternatives}))(?:/|$).*"


TIME_UNITS_MS = (("h", 3_600_000), ("m", 60_000), ("s", 1000))


def haproxy_time(ms: int) -> str:
    """Milliseconds in HAProxy's time syntax, in the largest exact unit: 2000 -> 2s."""
    for unit, size in TIME_UNITS_MS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _resolvers_context(model: LoadBalancer, settings: Settings) -> dict[str, Any] | None:
    """The `resolvers` section, when some backend is an external name; no nameservers
    means those of /etc/resolv.conf (`parse-resolv-conf`)."""
    if not any(b.external_name for b in model.backends):
        return None
    return {
        "name": RESOLVERS,
        "nameservers": list(settings.dns_servers),
        "resolve_every": f"{RESOLVE_EVERY_S}s",
        "hold_valid": f"{HOLD_VALID_S}s",
    }


def resolve_options(settings: Settings) -> str:
    """Server options of an external name. `init-addr`: the address the previous worker
    had (server-state file), then the system resolver, then none (the server stays in
    maintenance until HAProxy's resolvers answer): a name that does not resolve yet never
    fails the config. With --dns-servers the system resolver is skipped: it would ask
    other servers than the ones named."""
    init = "last,none" if settings.dns_servers else "last,libc,none"
    return f"resolvers {RESOLVERS} resolve-prefer ipv4 init-addr {init}"


def tls_options(backend: Backend, settings: Settings) -> str:
    """Server options of a backend that speaks TLS to its pods, else "". On every server
    line, so `add server` gets them too (HAProxy 2.6 takes ssl, verify, ca-file, sni and
    alpn there). With --backend-ca the pods' certificates must chain to it and name the
    SNI: the backend's own name (an external service's, or lb.host), else the client's
    Host. Without it nothing is verified (translation reports that)."""
    if backend.mode is not Mode.HTTP or not backend.protocol.tls:
        return ""
    words = ["ssl"]
    if settings.backend_ca is not None:
        words += ["verify", "required", "ca-file", str(settings.backend_ca)]
    else:
        words += ["verify", "none"]
    name = backend.tls_server_name
    words += ["sni", f"str({name})" if name else "req.hdr(host),field(1,:)"]
    if backend.protocol is Protocol.H2:
        words += ["alpn", "h2"]
    return " ".join(words)


def _backend_context(backend: Backend, settings: Settings) -> dict[str, Any]:
    v6 = any(":" in s.address for s in backend.servers)
    tls = tls_options(backend, settings)
    return {
        "name": backend.name,
        "mode": backend.mode.value,
        "algorithm": backend.algorithm.value,
        "stickiness": backend.stickiness.value,
        "stickiness_timeout": backend.stickiness_timeout,
        "stick_table_type": "ipv6" if v6 else "ip",
        "strip_regex": strip_regex(backend.strip_prefixes) if backend.strip_prefixes else "",
        "prefix_regex": prefix_regex(backend.strip_prefixes) if backend.strip_prefixes else "",
        "servers": [
            {"name": s.name, "endpoint": server_endpoint(s), "backup": s.backup}
            for s in backend.servers
        ],
        "all_backups": backend.all_backups,
        "cookie": backend.stickiness is Stickiness.COOKIE,
        "ssl_redirect": backend.ssl_redirect,
        # The route-map flag of the Service routes: redirect and HSTS apply to them only.
        "service_route": SERVICE_ROUTE,
        "hsts_max_age": backend.hsts_max_age,
        "timeout_server": _time_or_none(backend.timeout_server_ms),
        "timeout_connect": _time_or_none(backend.timeout_connect_ms),
        "resolve": resolve_options(settings) if backend.external_name else "",
        # HTTP/2 to the pods without TLS (prior knowledge): `proto h2` on every server
        # line, so a server added at run time (`add server`) speaks it too.
        "proto": "h2" if backend.protocol is Protocol.H2C and backend.mode is Mode.HTTP else "",
        # loadBalancerSourceRanges: "" (everyone) or CIDRs for `src`.
        "allowed_sources": " ".join(backend.allowed_sources),
        # TLS to the pods (ssl, verify, sni, alpn), and the CA file to load when the config
        # is read: `add server` can only name a CA file HAProxy has loaded already.
        "tls": tls,
        "tls_ca_file": str(settings.backend_ca) if tls and settings.backend_ca else None,
    }


def _time_or_none(ms: int | None) -> str | None:
    return None if ms is None else haproxy_time(ms)
