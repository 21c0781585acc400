"""The `autoscale` command's flags and its one frozen settings object.

The cluster-access flags are the `run` command's own (--kubeconfig, --context,
--use-kubernetes-cluster-service), and the stats credentials come from the same
environment variables as the controller's (SLB_STATS_USER, SLB_STATS_PASSWORD or
SLB_STATS_PASSWORD_FILE), so one Secret serves both. The Lease that elects the one
replica that writes is the controller's kind of election (leases.py): its own name
(--election-id), in POD_NAMESPACE, held as POD_NAME, by the controller's rules. A wrong
flag is one line on stderr and exit code 2, as for every command.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from service_loadbalancer.autoscale.discovery import Workload, parse_workload
from service_loadbalancer.autoscale.rule import Bounds
from service_loadbalancer.cli_args import (
    Parser,
    bool_flag,
    kube_flags,
    number_flag,
    port_flag,
    status_flags,
)
from service_loadbalancer.config import LoadBalancerConfig, stats_credentials
from service_loadbalancer.kube.client import KubeOptions
from service_loadbalancer.publish.addresses import parse_election_id
from service_loadbalancer.publish.tasks import identity
from service_loadbalancer.settings import SettingsError


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """How the load-balancer tier itself is scaled (--lb-*)."""

    workload: Workload
    #: "rps" (requests a second per replica) or "connections" (open per replica).
    metric: str
    target: float
    bounds: Bounds


@dataclass(frozen=True, slots=True)
class AutoscaleSettings:
    kube: KubeOptions
    stats_urls: tuple[str, ...] = ()
    lb_selector: str = "app=service-loadbalancer"
    stats_port: int = 1936
    interval: float = 15.0
    scale_down_window: float = 300.0
    dry_run: bool = False
    tier: TierPolicy | None = None
    healthz_port: int = 8081
    bind_address: str = ""
    stats_user: str | None = None
    stats_password: str | None = field(default=None, repr=False)
    #: The Lease that elects the one replica that reads stats and writes (--election-id),
    #: in `lease_namespace` (POD_NAMESPACE, else default), held as `identity` (POD_NAME,
    #: else the host name): the controller's rules.
    election_id: str = "service-loadbalancer-autoscale"
    lease_namespace: str = "default"
    identity: str = "autoscale"


_interval = number_flag(0.1, 3600, unit="seconds")
_window = number_flag(0, 3600, unit="seconds")
_target = number_flag(0, 1e6, above=True)


def _replicas(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of replicas (1 to 1000)")
    return int(text)


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


def _workload(text: str) -> Workload:
    try:
        return parse_workload(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_autoscale_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="service-loadbalancer autoscale",
        description="Scale the workloads of annotated Services (and the load-balancer tier) "
        "from the load balancer's own stats, by the HorizontalPodAutoscaler's rule.",
    )
    flag = p.add_argument
    flag(
        "--stats-url",
        action="append",
        type=_url,
        default=[],
        help="a load-balancer replica's stats page (repeatable; default: the ready pods "
        "that --lb-selector finds)",
    )
    flag("--lb-selector", default="app=service-loadbalancer", help="labels of the LB pods")
    flag("--stats-port", type=port_flag, default=1936, help="port of the stats page (1936)")
    flag("--interval", type=_interval, default=15.0, help="seconds between rounds (15)")
    flag(
        "--scale-down-stabilization",
        type=_window,
        default=300.0,
        help="seconds of recommendations a scale-down waits for (300)",
    )
    flag(
        "--dry-run",
        type=bool_flag,
        nargs="?",
        const=True,
        default=False,
        help="print the decisions, write nothing",
    )
    flag(
        "--lb-workload",
        type=_workload,
        default=None,
        help="the load balancer's own workload: NAMESPACE/deployment/NAME "
        "(or NAMESPACE/daemonset/NAME: report only)",
    )
    flag("--lb-target-rps", type=_target, default=None, help="requests a second per LB replica")
    flag(
        "--lb-target-connections",
        type=_target,
        default=None,
        help="open connections per LB replica (instead of --lb-target-rps)",
    )
    flag("--lb-min", type=_replicas, default=1, help="fewest LB replicas (1)")
    flag("--lb-max", type=_replicas, default=10, help="most LB replicas (10)")
    flag(
        "--election-id",
        default="service-loadbalancer-autoscale",
        help="name of the Lease that elects the one replica that scales "
        "(service-loadbalancer-autoscale)",
    )
    status_flags(p, bind_help="address the status server listens on (all)")
    kube_flags(p)
    return p


def build_autoscale_settings(args: argparse.Namespace, env: Mapping[str, str]) -> AutoscaleSettings:
    """Raises SettingsError (one line for the user) on flags that do not go together."""
    tier: TierPolicy | None = None
    rps, connections = args.lb_target_rps, args.lb_target_connections
    if args.lb_workload is not None:
        if (rps is None) == (connections is None):
            raise SettingsError(
                "--lb-workload needs one of --lb-target-rps, --lb-target-connections"
            )
        if args.lb_min > args.lb_max:
            raise SettingsError(f"--lb-min ({args.lb_min}) is above --lb-max ({args.lb_max})")
        if args.lb_workload.kind == "StatefulSet":
            raise SettingsError("--lb-workload: a load balancer is a Deployment or a DaemonSet")
        metric, target = ("rps", rps) if rps is not None else ("connections", connections)
        tier = TierPolicy(args.lb_workload, metric, target, Bounds(args.lb_min, args.lb_max))
    elif rps is not None or connections is not None:
        raise SettingsError("--lb-target-rps and --lb-target-connections need --lb-workload")
    if "=" not in args.lb_selector and not args.stats_url:
        raise SettingsError(f"--lb-selector {args.lb_selector!r} is not key=value[,key=value]")
    user, password = stats_credentials(cfg=LoadBalancerConfig(), env=env)
    kubeconfig: Path | None = args.kubeconfig
    return AutoscaleSettings(
        kube=KubeOptions(
            kubeconfig=kubeconfig,
            context=args.context,
            in_cluster=args.use_kubernetes_cluster_service,
        ),
        stats_urls=tuple(args.stats_url),
        lb_selector=args.lb_selector,
        stats_port=args.stats_port,
        interval=args.interval,
        scale_down_window=args.scale_down_stabilization,
        dry_run=args.dry_run,
        tier=tier,
        healthz_port=args.healthz_port,
        bind_address=args.bind_address,
        stats_user=user,
        stats_password=password,
        election_id=parse_election_id(args.election_id),
        lease_namespace=env.get("POD_NAMESPACE") or "default",
        identity=identity(env),
    )
