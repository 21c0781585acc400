"""The settings from the flags, the environment and the --cfg file: everything that
reads a file (the --cfg file, the template, the error page, the TLS files and the
stats password) to build the one frozen `Settings`.

The --cfg file keeps the keys of the original controller's loadbalancer.json
(`name`, `config`, `template`, `algorithm`, `startSyslog`, `reloadCmd`) so that its
users can bring theirs along, and adds the stats credentials and the run directory.
It is validated with pydantic; every mistake becomes one `SettingsError` line.

Precedence: an explicit flag, then the environment, then the file, then the default.
"""

from __future__ import annotations

import argparse
import json
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service_loadbalancer.flag_values import (
    names_node,
    parse_deny_cidrs,
    parse_dns_servers,
    parse_ingress_class,
    parse_long_timeout,
    parse_namespaces,
    parse_remote_clusters,
    parse_service_ref,
    parse_tcp_services,
    parse_trusted_proxies,
)
from service_loadbalancer.haproxy.render import TemplateError, check_template
from service_loadbalancer.model import Algorithm
from service_loadbalancer.node_addresses import read_node_addresses
from service_loadbalancer.publish.addresses import (
    parse_class,
    parse_election_id,
    parse_publish_addresses,
)
from service_loadbalancer.settings import (
    DEFAULT_RUN_DIR,
    DEFAULT_TIMEOUT_TUNNEL_MS,
    ENV_STATS_PASSWORD,
    ENV_STATS_PASSWORD_FILE,
    ENV_STATS_USER,
    STATS_PASSWORD_RE,
    STATS_USER_RE,
    RemoteCluster,
    Settings,
    SettingsError,
)

MAX_ERROR_PAGE = 8192


class LoadBalancerConfig(BaseModel):
    """The --cfg file (JSON or YAML), the original loadbalancer.json plus our keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Literal["haproxy"] = "haproxy"
    config: Path | None = None
    template: Path | None = None
    algorithm: Algorithm | None = None
    startSyslog: bool = False
    reloadCmd: str | None = None
    statsUser: str | None = Field(default=None)
    statsPassword: str | None = Field(default=None, repr=False)
    statsPasswordFile: Path | None = None
    runDir: Path | None = None
    #: Times as the annotations take them (`90s`, `30m`, `2h`).
    timeoutTunnel: str | None = None
    hardStopAfter: str | None = None

    @field_validator("statsUser")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not STATS_USER_RE.match(value):
            raise ValueError("must be 1-64 characters of letters, digits and . _ -")
        return value


def load_config_file(path: Path) -> LoadBalancerConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError(f"--cfg {path}: cannot read: {err}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        detail = str(err).replace("\n", " ")
        raise SettingsError(f"--cfg {path}: not valid JSON or YAML: {detail}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"--cfg {path}: must be a mapping of keys to values")
    try:
        return LoadBalancerConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise SettingsError(f"--cfg {path}: {where}: {first['msg']}") from None


def stats_credentials(
    *, cfg: LoadBalancerConfig, env: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The stats user and password, from the environment first, then the --cfg file;
    a password may come from a file (a mounted Secret)."""
    user = env.get(ENV_STATS_USER) or cfg.statsUser
    password: str | None = None
    # Each source in turn, the environment first; a password file counts as its source.
    sources: tuple[tuple[str | None, str | Path | None], ...] = (
        (env.get(ENV_STATS_PASSWORD), env.get(ENV_STATS_PASSWORD_FILE)),
        (cfg.statsPassword, cfg.statsPasswordFile),
    )
    for value, path in sources:
        if value:
            password = value
        elif path:
            try:
                password = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as err:
                raise SettingsError(f"stats password file {path}: {err}") from None
        if password is not None:
            break
    if user is not None and not STATS_USER_RE.match(user):
        raise SettingsError("stats user: must be 1-64 characters of letters, digits and . _ -")
    if password is not None and not STATS_PASSWORD_RE.match(password):
        raise SettingsError(
            "stats password: must be 1-128 printable ASCII characters without blanks or quotes"
        )
    if (user is None) != (password is None):
        raise SettingsError("stats: a user needs a password and a password needs a user")
    return user, password


def check_writable(settings: Settings) -> None:
    """`run` writes HAProxy's config, maps, sockets and certificates into the run
    directory (and the config's own directory): one that cannot be written is said at
    start, in one line, not as a traceback at the first write."""
    places = [(settings.run_dir, "--run-dir")]
    if settings.config_path.parent != settings.run_dir:
        places.append((settings.config_path.parent, "the --cfg file's config"))
    for path, what in places:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as err:
            raise SettingsError(
                f"{what} {path}: cannot write there: {err.strerror or err}"
            ) from None


def _paths_ok(path: Path, what: str) -> Path:
    """Paths end up in the HAProxy config unquoted: keep them to a safe character set."""
    text = str(path.absolute())
    if any(c.isspace() or c in "\"'#\\$" for c in text):
        raise SettingsError(f"{what} {text!r}: spaces, quotes, #, $ and \\ are not allowed")
    return Path(text)


def _tls_file(path: Path | None, flag: str, *, key: bool) -> Path | None:
    """Check a PEM file at start (a bad one would make every config fail `haproxy -c`):
    the certificate and its matching key, or CA certificates. The error never quotes it."""
    if path is None:
        return None
    path = _paths_ok(path, flag)
    try:
        if key:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(path)
        else:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except (ssl.SSLError, ValueError):  # before OSError: SSLError is one
        what = "a certificate and its key (PEM)" if key else "CA certificates (PEM)"
        raise SettingsError(f"{flag} {path}: does not hold {what}") from None
    except OSError as err:
        raise SettingsError(f"{flag} {path}: {err.strerror or 'cannot read'}") from None
    return path


def _template_path(cfg: LoadBalancerConfig, cfg_path: Path | None) -> Path | None:
    """The template the --cfg file names; a relative path is relative to the file."""
    if cfg.template is None:
        return None
    if cfg.template.is_absolute() or cfg_path is None:
        return cfg.template
    return cfg_path.parent / cfg.template


def settings_inputs(args: argparse.Namespace) -> tuple[Path, ...]:
    """The files `build_settings` reads whose edits may apply live: the --cfg file, the
    template it names (if the file can be read) and the error page."""
    paths: list[Path] = []
    if args.cfg is not None:
        paths.append(args.cfg)
        try:
            template = _template_path(load_config_file(args.cfg), args.cfg)
        except SettingsError:
            template = None
        if template is not None:
            paths.append(template)
    if args.error_page is not None:
        paths.append(args.error_page)
    return tuple(paths)


def build_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """The flags `cli.build_parser` parsed, the environment and the --cfg file (with the
    files they name, read once here) as one frozen `Settings`; `SettingsError` if not."""
    cfg = load_config_file(args.cfg) if args.cfg else LoadBalancerConfig()
    user, password = stats_credentials(cfg=cfg, env=env)
    run_dir = _paths_ok(args.run_dir or cfg.runDir or DEFAULT_RUN_DIR, "--run-dir")
    # Not given: Settings puts it in the run directory (checked above).
    haproxy_config = _paths_ok(cfg.config, "config") if cfg.config else None
    template = None
    template_path = _template_path(cfg, args.cfg)
    if template_path is not None:
        try:
            template = template_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise SettingsError(f"template {template_path}: {err}") from None
        try:
            check_template(template)
        except TemplateError as err:
            raise SettingsError(f"template {template_path}: {err}") from None
    error_page = None
    if args.error_page is not None:
        try:
            error_page = args.error_page.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise SettingsError(f"--error-page {args.error_page}: {err}") from None
        if len(error_page.encode()) > MAX_ERROR_PAGE:
            # HAProxy must fit the whole answer in one buffer (16 kB with headers).
            raise SettingsError(
                f"--error-page {args.error_page}: larger than {MAX_ERROR_PAGE} bytes"
            )
    target = (
        parse_service_ref(args.target_service, flag="--target-service")
        if args.target_service
        else None
    )
    manifests = args.manifests.absolute() if args.manifests else None
    tunnel = args.timeout_tunnel or cfg.timeoutTunnel
    hard_stop = args.hard_stop_after or cfg.hardStopAfter
    return Settings(
        http_port=args.http_port,
        stats_port=args.stats_port,
        healthz_port=args.healthz_port,
        bind_address=args.bind_address,
        tcp_services=parse_tcp_services(args.tcp_services),
        target_service=target,
        forward_services=args.forward_services,
        balance_algorithm=args.balance_algorithm or cfg.algorithm or Algorithm.ROUNDROBIN,
        default_return_code=args.default_return_code,
        error_page=error_page,
        syslog=args.syslog or cfg.startSyslog,
        namespaces=parse_namespaces(args.namespace),
        manifests=manifests,
        haproxy_bin=args.haproxy_bin,
        template=template,
        haproxy_config=haproxy_config,
        run_dir=run_dir,
        stats_user=user,
        stats_password=password,
        dry=args.dry,
        https_port=args.https_port,
        ssl_cert=_tls_file(args.ssl_cert, "--ssl-cert", key=True),
        ssl_ca_cert=_tls_file(args.ssl_ca_cert, "--ssl-ca-cert", key=False),
        tls_secrets=args.tls_secrets,
        tls_tickets=args.tls_tickets,
        ssl_redirect_code=args.ssl_redirect_code,
        drain_timeout=args.drain_timeout,
        trusted_proxies=parse_trusted_proxies(args.trusted_proxies),
        shutdown_grace=args.shutdown_grace,
        passive_health=args.passive_health,
        allow_external_names=args.allow_external_names,
        allow_cluster_external_names=args.allow_cluster_external_names,
        dns_servers=parse_dns_servers(args.dns_servers),
        load_balancer_class=parse_class(args.load_balancer_class),
        publish_addresses=parse_publish_addresses(args.publish_address),
        election_id=parse_election_id(args.election_id),
        ingress_class=parse_ingress_class(args.ingress_class),
        watch_ingress_without_class=args.watch_ingress_without_class,
        service_routes=args.service_routes,
        ingress_ssl_redirect=args.ingress_ssl_redirect,
        backend_ca=_tls_file(args.backend_ca, "--backend-ca", key=False),
        timeout_tunnel_ms=parse_long_timeout(tunnel, flag="timeout tunnel")
        if tunnel
        else DEFAULT_TIMEOUT_TUNNEL_MS,
        hard_stop_after_ms=parse_long_timeout(hard_stop, flag="hard-stop-after")
        if hard_stop
        else None,
        deny_external_cidrs=parse_deny_cidrs(
            args.deny_external_cidrs,
            read_node_addresses() if names_node(args.deny_external_cidrs) else (),
        ),
        remote_clusters=_remote_clusters(args.remote_cluster),
        remote_stale_after=args.remote_stale_after,
    )


def _remote_clusters(values: list[str]) -> tuple[RemoteCluster, ...]:
    """--remote-cluster, each kubeconfig checked now: a typo is better refused at start
    than retried forever in the background."""
    clusters = parse_remote_clusters(values)
    for cluster in clusters:
        if not cluster.kubeconfig.is_file():
            raise SettingsError(
                f"--remote-cluster {cluster.name}: no kubeconfig file {str(cluster.kubeconfig)!r}"
            )
    return tuple(replace(c, kubeconfig=c.kubeconfig.absolute()) for c in clusters)
