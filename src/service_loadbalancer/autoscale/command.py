"""`service-loadbalancer autoscale`: parse the flags, connect, serve /healthz and
/metrics, campaign for the Lease, and run the rounds (while leading) until SIGTERM.

Several replicas may run: the controller's Lease election (leases.py) elects the one
that reads stats and writes; the others wait, ready to take over. On SIGTERM the rounds
stop first, then the Lease is released, so that another replica takes over at its next
try. `--dry-run` writes nothing, the Lease included: it takes no part in the election
and prints what it would do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

import aiohttp

from service_loadbalancer.autoscale.autoscaler import Autoscaler
from service_loadbalancer.autoscale.cluster import Cluster
from service_loadbalancer.autoscale.metrics import AutoscaleMetrics
from service_loadbalancer.autoscale.options import (
    AutoscaleSettings,
    build_autoscale_parser,
    build_autoscale_settings,
)
from service_loadbalancer.cli_args import EXIT_USAGE, start_logging
from service_loadbalancer.kube.client import ConfigError, connect
from service_loadbalancer.kube.objects import RawObject
from service_loadbalancer.leases import LeaseElector
from service_loadbalancer.settings import SettingsError
from service_loadbalancer.sources.kube import KubeSource
from service_loadbalancer.status import HealthCheck, start_status_server

log = logging.getLogger("service_loadbalancer.autoscale")


def main(argv: Sequence[str]) -> int:
    parser = build_autoscale_parser()
    args = parser.parse_args(list(argv))
    start_logging(args.log_level)
    try:
        settings = build_autoscale_settings(args, os.environ)
    except SettingsError as err:
        parser.error(str(err))
    try:
        return asyncio.run(run(settings))
    except ConfigError as err:
        # connect()'s message speaks of `run`'s --manifests; keep only the library's reason.
        text = str(err)
        reason = text[text.find("(") + 1 : -1] if text.endswith(")") else text
        sys.stderr.write(
            "service-loadbalancer autoscale: needs a Kubernetes configuration (--kubeconfig, "
            f"or a pod's service account): {reason}\n"
        )
        return EXIT_USAGE


def _health(scaler: Autoscaler) -> HealthCheck:
    async def health() -> tuple[bool, str]:
        if scaler.working:
            return True, "ok"
        if not scaler.leading:
            return True, "standby: another replica leads"
        return False, "no complete round yet"

    return health


async def run(settings: AutoscaleSettings) -> int:
    api = await connect(
        kubeconfig=settings.kube.kubeconfig,
        context=settings.kube.context,
        in_cluster=settings.kube.in_cluster,
        watches=1,
    )
    metrics = AutoscaleMetrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Services are watched (a list each round would read every Service of the cluster
    # every --interval); the few workloads and HPAs are listed when needed.
    source = KubeSource(api=api, kinds=["Service"], name="source:services")

    def services() -> list[RawObject] | None:
        store = source.store
        return store.snapshot().of_kind("Service") if store.ready else None

    async with api, aiohttp.ClientSession() as session:
        scaler = Autoscaler(
            settings=settings,
            cluster=Cluster(api, host=settings.identity),
            session=session,
            metrics=metrics,
            services=services,
        )
        elector: LeaseElector | None = None
        if not settings.dry_run:
            elector = LeaseElector(
                api=api,
                namespace=settings.lease_namespace,
                name=settings.election_id,
                identity=settings.identity,
                on_change=scaler.leadership_changed,
            )
            is_leader = scaler.may_write = elector.is_leader
            metrics.leader.set_function(lambda: float(is_leader()))
        runner = await start_status_server(
            host=settings.bind_address,
            port=settings.healthz_port,
            health=_health(scaler),
            registry=metrics.registry,
        )
        log.info(
            "autoscaling every %g s (scale-down window %g s)%s; /metrics on :%d",
            settings.interval,
            settings.scale_down_window,
            ", dry run (no Lease taken)" if elector is None else
            f" while leading: Lease {settings.lease_namespace}/{settings.election_id} "
            f"as {settings.identity}",
            settings.healthz_port,
        )  # fmt: skip
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(source.run(), name=source.name),
                    group.create_task(scaler.run(), name="autoscale"),
                ]
                electing = None
                if elector is not None:
                    electing = group.create_task(elector.run(), name="leader-election")
                await stop.wait()
                # No more rounds (nor writes) before the Lease is handed over.
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
                if electing is not None:
                    electing.cancel()  # releases the Lease
        finally:
            await runner.cleanup()
    log.info("stopped")
    return 0
