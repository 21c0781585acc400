"""Wiring of the status publisher in a cluster: where the addresses come from, who may
write, and the tasks the controller supervises. Kept out of controller.py, which only
asks for the tasks."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from service_loadbalancer.election import Timings
from service_loadbalancer.leases import LeaseElector
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.publish.addresses import Address
from service_loadbalancer.publish.publisher import Publisher, WorkloadAddresses, fixed_addresses
from service_loadbalancer.publish.writer import StatusWriter
from service_loadbalancer.settings import Settings

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

    from service_loadbalancer.model import LoadBalancer
    from service_loadbalancer.reconciler import Reconciler
    from service_loadbalancer.store import Store

_LOG = logging.getLogger("service_loadbalancer.publish")

Task = tuple[str, Callable[[], Coroutine[Any, Any, None]]]


def identity(env: Mapping[str, str]) -> str:
    """Who we are in the Lease: the pod's name (downward API), else the host name."""
    return env.get("POD_NAME") or socket.gethostname()


def publishing_tasks(
    *,
    api: ApiClient,
    settings: Settings,
    reconciler: Reconciler,
    store: Store,
    metrics: Metrics,
    env: Mapping[str, str],
    timings: Timings | None = None,
) -> list[Task]:
    """The tasks that keep status written: the election, the publisher and (without
    --publish-address) the watch of our pods and nodes; none when there is no way to
    know our addresses."""
    tasks: list[Task] = []
    pod_name, pod_namespace = env.get("POD_NAME", ""), env.get("POD_NAMESPACE", "")
    addresses: Callable[[], tuple[Address, ...] | None]
    workload: WorkloadAddresses | None = None
    if settings.publish_addresses:
        addresses = fixed_addresses(settings)
    elif pod_name and pod_namespace:
        workload = WorkloadAddresses(api, pod_name=pod_name, pod_namespace=pod_namespace)
        addresses = workload
        tasks.append(("addresses", workload.run))
    else:
        _LOG.warning(
            "no --publish-address and no POD_NAME/POD_NAMESPACE (downward API): the status "
            "of load balancers is not written"
        )
        return []
    elector = LeaseElector(
        api=api,
        namespace=pod_namespace or "default",
        name=settings.election_id,
        identity=identity(env),
        timings=timings,
    )
    metrics.leader.set_function(lambda: float(elector.is_leader()))
    is_leader = elector.is_leader
    writer = StatusWriter(
        api=api,
        may_write=is_leader,
        on_result=lambda result: metrics.status_writes.labels(result=result).inc(),
    )

    def model() -> LoadBalancer | None:
        running = reconciler.running
        return running.model if running is not None else None

    publisher = Publisher(
        writer=writer,
        model=model,
        lookup=store.get,
        addresses=addresses,
        is_leader=is_leader,
    )
    reconciler.add_commit_listener(publisher.wake)
    if workload is not None:
        for watched in workload.stores():
            watched.add_listener(publisher.wake)
    elector.on_change(lambda leader: publisher.wake() if leader else None)
    tasks.append(("leader-election", elector.run))
    tasks.append(("status-publisher", publisher.run))
    return tasks
