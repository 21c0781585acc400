"""The status loop: what the running model says is published (or to clear), at the
addresses we are reachable at, written by the leader only.

It runs in every replica (so a new leader is ready at once) and wakes on what can change
the answer: a sync of the reconciler (Services came, went or changed), our pods and
their nodes (addresses), leadership, and every RESYNC seconds for anything missed. Each
pass compares the wanted status with the store's copy of each object (O(load
balancers), never the cluster) and writes only the differences. A write that failed is
tried again RETRY seconds later.

Addresses come from `--publish-address`, or from a small watch of the pods in our own
namespace and of the nodes (a `KubeSource` each, with stores of their own: pod churn
elsewhere never wakes the reconciler), read only when no address is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.kube.watch import resource_version
from service_loadbalancer.publish.addresses import Address, published, workload_addresses
from service_loadbalancer.publish.desired import (
    current_entries,
    desired_status,
    entries_for,
    needs_write,
)
from service_loadbalancer.publish.writer import StatusWriter
from service_loadbalancer.settings import Settings
from service_loadbalancer.sources.kube import KubeSource
from service_loadbalancer.store import Store
from service_loadbalancer.waits import wait_event

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

    from service_loadbalancer.model import LoadBalancer

_LOG = logging.getLogger(__name__)

RESYNC: Final = 30.0
RETRY: Final = 1.0


class WorkloadAddresses:
    """The nodes running a ready pod of our workload, followed through two watches."""

    def __init__(self, api: ApiClient, *, pod_name: str, pod_namespace: str) -> None:
        self.pods = KubeSource(
            api=api, kinds=["Pod"], namespaces=[pod_namespace], name="source:pods"
        )
        self.nodes = KubeSource(api=api, kinds=["Node"], name="source:nodes")
        self._pod_name = pod_name
        self._pod_namespace = pod_namespace
        self._last: tuple[Address, ...] | None = None
        #: The stores' versions `_last` was computed at: a pass with neither store
        #: changed (a reconciler commit, the resync) copies and scans nothing.
        self._versions: tuple[int, int] | None = None

    def stores(self) -> tuple[Store, Store]:
        return self.pods.store, self.nodes.store

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.pods.run(), name="source:pods")
            group.create_task(self.nodes.run(), name="source:nodes")

    def __call__(self) -> tuple[Address, ...] | None:
        if not (self.pods.store.ready and self.nodes.store.ready):
            return None
        versions = (self.pods.store.version, self.nodes.store.version)
        if versions == self._versions:
            return self._last
        self._versions = versions
        nodes = {
            str(_meta(n).get("name") or ""): n for n in self.nodes.store.snapshot().of_kind("Node")
        }
        found = workload_addresses(
            pods=self.pods.store.snapshot().of_kind("Pod"),
            nodes=nodes,
            pod_name=self._pod_name,
            pod_namespace=self._pod_namespace,
        )
        if found != self._last:
            shown = ", ".join(a.value for a in found) if found else "none"
            if found is None:
                shown = f"unknown (pod {self._pod_namespace}/{self._pod_name} not seen yet)"
            _LOG.info("load-balancer addresses (nodes running our ready pods): %s", shown)
            self._last = found
        return found


def fixed_addresses(settings: Settings) -> Callable[[], tuple[Address, ...] | None]:
    addresses = published(settings.publish_addresses)
    return lambda: addresses


class Publisher:
    """Keeps the status of the load balancers equal to what is wanted (leader only)."""

    def __init__(
        self,
        *,
        writer: StatusWriter,
        model: Callable[[], LoadBalancer | None],
        lookup: Callable[[ObjectKey], RawObject | None],
        addresses: Callable[[], tuple[Address, ...] | None],
        is_leader: Callable[[], bool],
        resync: float = RESYNC,
        retry: float = RETRY,
    ) -> None:
        self._writer = writer
        self._model = model
        self._lookup = lookup
        self._addresses = addresses
        self._is_leader = is_leader
        self._resync = resync
        self._retry = retry
        self._wake = asyncio.Event()
        #: key -> (the entries written, the resourceVersion of the copy they replaced):
        #: until the store shows a newer copy, the write is not repeated.
        self._sent: dict[ObjectKey, tuple[object, str]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            await wait_event(self._wake, self._resync)
            self._wake.clear()
            if not await self.publish_once():
                await asyncio.sleep(self._retry)
                self._wake.set()

    async def publish_once(self) -> bool:
        """One pass; False if a write failed (to be tried again)."""
        model = self._model()
        if model is None or not self._is_leader():
            return True
        addresses = self._addresses()
        # An Ingress that is no longer ours loses the status only if it is ours to take
        # back: the entries we would write now (another controller's are left alone).
        ours = entries_for("Ingress", addresses) if addresses else None
        wanted = desired_status(
            publish=(*model.load_balancers, *model.ingresses),
            clear=(
                *model.unpublished,
                *(
                    key
                    for key in model.unclaimed_ingresses
                    if ours and current_entries(self._lookup(key)) == ours
                ),
            ),
            addresses=addresses,
        )
        ok = True
        for key in sorted(wanted):
            entries = wanted[key]
            obj = self._lookup(key)
            if not needs_write(obj, entries) or obj is None:
                self._sent.pop(key, None)
                continue
            version = resource_version(obj)
            if self._sent.get(key) == (entries, version):
                continue  # written; the store has not seen it yet
            result = await self._writer.write(key, obj, entries)
            if result == "written":
                self._sent[key] = (entries, version)
            elif result == "failed":
                ok = False
            elif result == "not-leader":
                return True
        self._forget(wanted)
        return ok

    def _forget(self, wanted: Iterable[ObjectKey]) -> None:
        keep = set(wanted)
        for key in [k for k in self._sent if k not in keep]:
            del self._sent[key]


def _meta(obj: RawObject) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}
