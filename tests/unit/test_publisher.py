"""The status publisher's pass (publish/publisher.py) with a recording writer: only the
leader writes, only differences are written, a write is not repeated while the store
has not seen it, clears are written even without addresses."""

from __future__ import annotations

from typing import Any

from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import LoadBalancer
from service_loadbalancer.publish.addresses import Address, published
from service_loadbalancer.publish.desired import Entries
from service_loadbalancer.publish.publisher import Publisher
from service_loadbalancer.publish.writer import StatusWriter

DB = ObjectKey("Service", "default", "db")
OLD = ObjectKey("Service", "default", "old")
ENTRY = {"ip": "192.0.2.1", "ipMode": "Proxy"}


class Recorder(StatusWriter):
    def __init__(self, result: str = "written") -> None:
        self.calls: list[tuple[ObjectKey, Entries | None]] = []
        self.result = result

    async def write(self, key: ObjectKey, obj: RawObject | None, wanted: Entries | None) -> str:
        self.calls.append((key, wanted))
        return self.result


def svc(version: str, ingress: list[dict[str, Any]] | None = None) -> RawObject:
    status = {"loadBalancer": {"ingress": ingress}} if ingress else {}
    return {"metadata": {"resourceVersion": version}, "status": status}


def publisher(
    writer: Recorder,
    objects: dict[ObjectKey, RawObject],
    *,
    leader: bool = True,
    addresses: tuple[Address, ...] | None = published(("192.0.2.1",)),
) -> Publisher:
    model = LoadBalancer(load_balancers=(DB,), unpublished=(OLD,))
    return Publisher(
        writer=writer,
        model=lambda: model,
        lookup=objects.get,
        addresses=lambda: addresses,
        is_leader=lambda: leader,
    )


async def test_the_leader_writes_the_differences_once() -> None:
    objects = {DB: svc("1"), OLD: svc("2", [ENTRY])}
    writer = Recorder()
    p = publisher(writer, objects)
    assert await p.publish_once()
    assert writer.calls == [(DB, (ENTRY,)), (OLD, None)]
    assert await p.publish_once()  # the store has not seen the writes yet
    assert len(writer.calls) == 2
    objects[DB], objects[OLD] = svc("3", [ENTRY]), svc("4")  # now it has
    assert await p.publish_once()
    assert len(writer.calls) == 2
    objects[DB] = svc("5")  # someone emptied it: written again
    assert await p.publish_once()
    assert writer.calls[-1] == (DB, (ENTRY,))


async def test_a_follower_writes_nothing() -> None:
    writer = Recorder()
    p = publisher(writer, {DB: svc("1"), OLD: svc("2", [ENTRY])}, leader=False)
    assert await p.publish_once()
    assert writer.calls == []


async def test_unknown_addresses_still_clear() -> None:
    writer = Recorder()
    p = publisher(writer, {DB: svc("1"), OLD: svc("2", [ENTRY])}, addresses=None)
    assert await p.publish_once()
    assert writer.calls == [(OLD, None)]


async def test_a_failed_write_is_reported_for_a_retry() -> None:
    writer = Recorder(result="failed")
    p = publisher(writer, {DB: svc("1"), OLD: svc("2")})
    assert not await p.publish_once()
    assert not await p.publish_once()  # not remembered as written: tried again
    assert len(writer.calls) == 2


WEB = ObjectKey("Ingress", "shop", "web")
GONE = ObjectKey("Ingress", "shop", "gone")
OTHERS = ObjectKey("Ingress", "shop", "others")
INGRESS_ENTRY = {"ip": "192.0.2.1"}  # an Ingress's entries carry no ipMode


async def test_ingresses_get_status_and_lose_only_ours() -> None:
    """The Ingresses we serve get our addresses; of those no longer ours, only the ones
    whose status is what we would write are cleared (another controller's stay)."""
    objects = {
        WEB: svc("1"),
        GONE: svc("2", [INGRESS_ENTRY]),
        OTHERS: svc("3", [{"ip": "198.51.100.7"}]),
    }
    model = LoadBalancer(ingresses=(WEB,), unclaimed_ingresses=(GONE, OTHERS))
    writer = Recorder()
    p = Publisher(
        writer=writer,
        model=lambda: model,
        lookup=objects.get,
        addresses=lambda: published(("192.0.2.1",)),
        is_leader=lambda: True,
    )
    assert await p.publish_once()
    assert sorted(writer.calls) == [(GONE, None), (WEB, (INGRESS_ENTRY,))]
