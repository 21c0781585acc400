"""The command line: `run` (the default), `render` (same as --dry) and `check`.

Flags keep the names of the original controller (--cfg, --dry, --tcp-services,
--target-service, --forward-services, --http-port, --stats-port, --syslog,
--error-page, --default-return-code, --balance-algorithm) so its users can move over
unchanged; Go-style booleans (`--dry=true`) are accepted too. A wrong flag or config
is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import ssl
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from service_loadbalancer import __version__, controller
from service_loadbalancer.haproxy.render import TemplateError, check_template
from service_loadbalancer.model import Algorithm
from service_loadbalancer.oneshot import check_once, render_once
from service_loadbalancer.settings import (
    LoadBalancerConfig,
    Settings,
    SettingsError,
    load_config_file,
    parse_namespaces,
    parse_service_ref,
    parse_tcp_services,
    port_number,
    stats_credentials,
)
from service_loadbalancer.sources.kube import DEFAULT_KINDS, ConfigError, KubeOptions

COMMANDS = ("run", "render", "check")
EXIT_USAGE = 2
MAX_ERROR_PAGE = 8192
log = logging.getLogger("service_loadbalancer")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message}\n")
        sys.exit(EXIT_USAGE)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean")


def _port(text: str) -> int:
    try:
        return port_number(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _status_code(text: str) -> int:
    try:
        code = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an HTTP status code") from None
    if not 200 <= code <= 599:
        raise argparse.ArgumentTypeError(f"{code} is not an HTTP status code HAProxy can return")
    return code


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 3600 seconds")
    return value


def _address(text: str) -> str:
    if text in ("", "*"):
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="service-loadbalancer",
        description="Expose Kubernetes Services through HAProxy on bare metal. "
        "Commands: run (default), render (print the config, like --dry), check.",
    )
    flag = p.add_argument
    flag("--version", action="version", version=f"%(prog)s {__version__}")
    flag("--cfg", type=Path, help="load-balancer config file (JSON or YAML)")
    flag(
        "--dry",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="render the config once to stdout and exit",
    )
    flag("--manifests", type=Path, help="directory of Kubernetes manifests to serve (watched)")
    flag(
        "--tcp-services",
        default="",
        help="Service ports served as TCP on their own port: name:port,ns/name:port",
    )
    flag("--target-service", default=None, help="serve only this Service (name or ns/name)")
    flag(
        "--forward-services",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="forward to the ClusterIP instead of the endpoints",
    )
    flag("--namespace", default="", help="namespaces to serve, comma separated (default: all)")
    flag("--http-port", type=_port, default=80, help="port of the HTTP frontend (80)")
    flag("--stats-port", type=_port, default=1936, help="port of the stats page (1936)")
    flag("--healthz-port", type=_port, default=8081, help="port of /healthz and /metrics (8081)")
    flag(
        "--bind-address",
        type=_address,
        default="",
        help="address HAProxy and the status server listen on (default: all)",
    )
    flag(
        "--balance-algorithm",
        type=Algorithm,
        choices=list(Algorithm),
        default=None,
        help="default algorithm: roundrobin, leastconn, first, source (roundrobin)",
    )
    flag(
        "--default-return-code",
        type=_status_code,
        default=404,
        help="status answered to requests no route matches (404)",
    )
    flag("--error-page", type=Path, help="HTML page sent with the default return code")
    flag(
        "--syslog",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="HAProxy logs requests to the controller's stdout",
    )
    flag("--https-port", type=_port, default=443, help="port of the HTTPS frontend (443)")
    flag("--ssl-cert", type=Path, help="default certificate: PEM with the certificate and key")
    flag("--ssl-ca-cert", type=Path, help="PEM of CAs that client certificates must chain to")
    flag(
        "--tls-secrets",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="read the TLS Secrets that lb.ssl-secret annotations name",
    )
    flag(
        "--tls-tickets",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="allow TLS session tickets on terminated connections",
    )
    flag(
        "--ssl-redirect-code",
        type=int,
        choices=[301, 302, 303, 307, 308],
        default=308,
        help="status of the lb.sslRedirect redirect to HTTPS (308)",
    )
    flag("--haproxy-bin", default="haproxy", help="the haproxy executable (haproxy)")
    flag(
        "--run-dir",
        type=Path,
        default=None,
        help="where sockets, the pid file and (unless --cfg says) the config go "
        "(/var/run/service-loadbalancer)",
    )
    flag(
        "--drain-timeout",
        type=_seconds,
        default=30.0,
        help="seconds a removed endpoint keeps its connections before they are cut (30)",
    )
    flag("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    _kube_flags(p)
    return p


def _kube_flags(p: argparse.ArgumentParser) -> None:
    """The Kubernetes API source's flags (used when --manifests is not given)."""
    flag = p.add_argument
    flag(
        "--kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)",
    )
    flag("--context", default=None, help="kubeconfig context (default: its current context)")
    flag(
        "--use-kubernetes-cluster-service",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        help="inside a pod, use its service account (true)",
    )


def kube_options(args: argparse.Namespace) -> KubeOptions:
    # Secrets are read (and RBAC for them needed) only when --tls-secrets asks for them.
    kinds = (*DEFAULT_KINDS, "Secret") if args.tls_secrets else DEFAULT_KINDS
    return KubeOptions(
        kubeconfig=args.kubeconfig,
        context=args.context,
        in_cluster=args.use_kubernetes_cluster_service,
        kinds=kinds,
    )


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


def build_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    cfg = load_config_file(args.cfg) if args.cfg else LoadBalancerConfig()
    user, password = stats_credentials(cfg=cfg, env=env)
    run_dir = _paths_ok(
        args.run_dir or cfg.runDir or Path("/var/run/service-loadbalancer"), "--run-dir"
    )
    config_path = _paths_ok(cfg.config or run_dir / "haproxy.cfg", "config")
    template = None
    if cfg.template is not None:
        template_path = (
            cfg.template
            if cfg.template.is_absolute() or args.cfg is None
            else (args.cfg.parent / cfg.template)
        )
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
        config_path=config_path,
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
    )


def _split_command(argv: Sequence[str]) -> tuple[str, list[str]]:
    if argv and argv[0] in COMMANDS:
        return argv[0], list(argv[1:])
    return "run", list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    command, rest = _split_command(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(rest)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = build_settings(args, os.environ)
    except SettingsError as err:
        parser.error(str(err))
    kube = kube_options(args)
    try:
        if command == "render" or settings.dry:
            return render_once(settings, kube)
        if command == "check":
            return asyncio.run(check_once(settings, kube))
        return asyncio.run(controller.run(settings, kube))
    except ConfigError as err:
        sys.stderr.write(f"service-loadbalancer: {err}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
