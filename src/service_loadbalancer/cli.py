"""The command line: `run` (the default), `render` (same as --dry), `check`, and
`autoscale` (its flags are in autoscale/options.py).

Flags keep the names of the original controller (--cfg, --dry, --tcp-services,
--target-service, --forward-services, --http-port, --stats-port, --syslog,
--error-page, --default-return-code, --balance-algorithm) so its users can move over
unchanged; Go-style booleans (`--dry=true`) are accepted too. A wrong flag or config
is one line on stderr and exit code 2, never a traceback. The parsed flags become
`Settings` in config.py, which reads the files they name. What both commands share
(that parser, the flag types, the cluster-access flags) is in cli_args.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from service_loadbalancer import __version__, controller
from service_loadbalancer.cli_args import (
    EXIT_USAGE,
    Parser,
    bool_flag,
    kube_flags,
    number_flag,
    port_flag,
    start_logging,
    status_flags,
)
from service_loadbalancer.config import build_settings, check_writable
from service_loadbalancer.kube.client import DEFAULT_KINDS, ConfigError, KubeOptions
from service_loadbalancer.livecfg import LiveConfig
from service_loadbalancer.model import Algorithm
from service_loadbalancer.oneshot import check_once, render_once
from service_loadbalancer.settings import DEFAULT_DENY_EXTERNAL, SettingsError

COMMANDS = ("run", "render", "check", "autoscale")
log = logging.getLogger("service_loadbalancer")

_seconds = number_flag(0, 3600, unit="seconds")
_stale_seconds = number_flag(1, 86400, unit="seconds")


def _status_code(text: str) -> int:
    try:
        code = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an HTTP status code") from None
    if not 200 <= code <= 599:
        raise argparse.ArgumentTypeError(f"{code} is not an HTTP status code HAProxy can return")
    return code


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="service-loadbalancer",
        description="Expose Kubernetes Services through HAProxy on bare metal. "
        "Commands: run (default), render (print the config, like --dry), check, "
        "autoscale (see autoscale --help).",
    )
    flag = p.add_argument
    flag("--version", action="version", version=f"%(prog)s {__version__}")
    flag("--cfg", type=Path, help="load-balancer config file (JSON or YAML)")
    flag(
        "--dry",
        type=bool_flag,
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
        type=bool_flag,
        nargs="?",
        const=True,
        default=False,
        help="forward to the ClusterIP instead of the endpoints",
    )
    flag("--namespace", default="", help="namespaces to serve, comma separated (default: all)")
    flag("--http-port", type=port_flag, default=80, help="port of the HTTP frontend (80)")
    flag("--stats-port", type=port_flag, default=1936, help="port of the stats page (1936)")
    status_flags(p, bind_help="address HAProxy and the status server listen on (default: all)")
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
        type=bool_flag,
        nargs="?",
        const=True,
        default=False,
        help="HAProxy logs requests to the controller's stdout",
    )
    flag("--https-port", type=port_flag, default=443, help="port of the HTTPS frontend (443)")
    flag("--ssl-cert", type=Path, help="default certificate: PEM with the certificate and key")
    flag("--ssl-ca-cert", type=Path, help="PEM of CAs that client certificates must chain to")
    flag(
        "--tls-secrets",
        type=bool_flag,
        nargs="?",
        const=True,
        default=False,
        help="read the TLS Secrets that lb.ssl-secret annotations name",
    )
    flag(
        "--tls-tickets",
        type=bool_flag,
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
    flag(
        "--deny-external-cidrs",
        default=DEFAULT_DENY_EXTERNAL,
        help="CIDRs (and the words loopback, link-local, node) an ExternalName may not "
        f"resolve into; empty denies none ({DEFAULT_DENY_EXTERNAL})",
    )
    flag(
        "--backend-ca",
        type=Path,
        help="PEM of CAs that pods' certificates must chain to, when TLS is spoken to them "
        "(default: not verified, and reported)",
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
        help="seconds a removed endpoint keeps its connections before they are cut, "
        "and HAProxy its requests in flight at shutdown (30)",
    )
    flag(
        "--shutdown-grace",
        type=_seconds,
        default=5.0,
        help="seconds between SIGTERM (/healthz turns 503) and stopping HAProxy (5)",
    )
    flag(
        "--trusted-proxies",
        default="",
        help="CIDRs (comma separated) whose X-Forwarded-* headers are kept (default: none)",
    )
    flag(
        "--passive-health",
        type=bool_flag,
        nargs="?",
        const=True,
        default=True,
        help="take pods that fail connections out of rotation (a check per server: "
        "one reserved file descriptor each)",
    )
    flag(
        "--allow-external-names",
        type=bool_flag,
        nargs="?",
        const=True,
        default=False,
        help="serve ExternalName Services, resolved by HAProxy (off: CVE-2021-25740)",
    )
    flag(
        "--allow-cluster-external-names",
        type=bool_flag,
        nargs="?",
        const=True,
        default=False,
        help="let an ExternalName point to a cluster-internal name (*.svc, *.cluster.local)",
    )
    flag(
        "--dns-servers",
        default="",
        help="ip[:port] (comma separated) that resolve ExternalNames "
        "(default: the nameservers of /etc/resolv.conf)",
    )
    flag(
        "--load-balancer-class",
        default=None,
        help="serve type=LoadBalancer Services of this spec.loadBalancerClass "
        "(default: those without a class)",
    )
    flag(
        "--publish-address",
        default="",
        help="addresses (IPs or host names, comma separated) written to the status of the "
        "load balancers (default: the nodes running our pods)",
    )
    flag(
        "--election-id",
        default="service-loadbalancer-leader",
        help="name of the Lease that elects the one replica writing status "
        "(service-loadbalancer-leader)",
    )
    flag(
        "--timeout-tunnel",
        default=None,
        help="how long an idle WebSocket or other tunnel is kept: 90s, 30m, 2h (1h; "
        "--cfg timeoutTunnel)",
    )
    flag(
        "--hard-stop-after",
        default=None,
        help="how long an old HAProxy worker keeps its connections after a reload "
        "(default: until they end; --cfg hardStopAfter)",
    )
    kube_flags(p)
    _remote_flags(p)
    _ingress_flags(p)
    return p


def _ingress_flags(p: argparse.ArgumentParser) -> None:
    """Ingress (networking.k8s.io/v1) beside the original's Service routes."""
    flag = p.add_argument
    flag(
        "--ingress-class",
        default="service-loadbalancer",
        help="the IngressClass served (service-loadbalancer)",
    )
    flag(
        "--watch-ingress-without-class",
        type=bool_flag,
        nargs="?",
        const=True,
        default=False,
        help="also serve Ingresses that name no class",
    )
    flag(
        "--service-routes",
        type=bool_flag,
        nargs="?",
        const=True,
        default=True,
        help="serve the Service routes (/svc, /ns/svc, lb.host, lb.aclMatch) (true)",
    )
    flag(
        "--ingress-ssl-redirect",
        type=bool_flag,
        nargs="?",
        const=True,
        default=True,
        help="redirect plain HTTP to HTTPS for the hosts in an Ingress's spec.tls (true)",
    )


def _remote_flags(p: argparse.ArgumentParser) -> None:
    """Other clusters (lb.global Services' endpoints): `run` only, never `autoscale`."""
    flag = p.add_argument
    flag(
        "--remote-cluster",
        action="append",
        default=[],
        metavar="NAME=KUBECONFIG[@CONTEXT]",
        help="another cluster whose lb.global Services' endpoints are served too "
        "(repeatable; read with that kubeconfig's own, least-privilege credentials)",
    )
    flag(
        "--remote-stale-after",
        type=_stale_seconds,
        default=300.0,
        help="seconds an unreachable remote cluster's endpoints are kept (300)",
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


def _split_command(argv: Sequence[str]) -> tuple[str, list[str]]:
    if argv and argv[0] in COMMANDS:
        return argv[0], list(argv[1:])
    return "run", list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    command, rest = _split_command(list(sys.argv[1:] if argv is None else argv))
    if command == "autoscale":  # its own flags (autoscale/options.py)
        from service_loadbalancer.autoscale.command import main as autoscale  # noqa: PLC0415

        return autoscale(rest)
    parser = build_parser()
    args = parser.parse_args(rest)
    start_logging(args.log_level)
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
        live = LiveConfig.from_args(args, os.environ, settings) if args.cfg else None
        try:
            check_writable(settings)
        except SettingsError as err:
            parser.error(str(err))
        return asyncio.run(controller.run(settings, kube, live))
    except ConfigError as err:
        sys.stderr.write(f"service-loadbalancer: {err}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
