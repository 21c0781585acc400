"""The autoscaler's rounds with the API and the stats pages replaced by plain values:
a problem is an Event once (again only after it went away and came back), a round with
no rates scales nothing, the StatefulSet path, and the DaemonSet tier's recommendation."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest
from objects import deployment, service

from service_loadbalancer.autoscale import autoscaler as module
from service_loadbalancer.autoscale.autoscaler import Autoscaler
from service_loadbalancer.autoscale.cluster import Cluster
from service_loadbalancer.autoscale.discovery import Workload
from service_loadbalancer.autoscale.figures import Sample
from service_loadbalancer.autoscale.metrics import AutoscaleMetrics
from service_loadbalancer.autoscale.options import AutoscaleSettings, TierPolicy
from service_loadbalancer.autoscale.rule import Bounds
from service_loadbalancer.haproxy.stats import ProxyStats
from service_loadbalancer.kube.client import KubeOptions
from service_loadbalancer.kube.objects import RawObject

P = "serviceloadbalancer/autoscale."


class FakeCluster(Cluster):
    def __init__(self, objects: list[RawObject]) -> None:
        self.objects = objects
        self.scales: dict[Workload, int] = {}
        self.writes: list[tuple[Workload, int]] = []
        self.events: list[tuple[str, str, str]] = []

    async def workloads(self, namespace: str) -> list[RawObject]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet")]

    async def hpas(self, namespace: str) -> list[RawObject]:
        return []

    async def replicas(self, workload: Workload) -> int:
        return self.scales.setdefault(workload, 1)

    async def scale(self, workload: Workload, replicas: int) -> None:
        self.scales[workload] = replicas
        self.writes.append((workload, replicas))

    async def event(self, subject: RawObject, *, reason: str, message: str,
                    warning: bool = False) -> None:  # fmt: skip
        self.events.append((subject["metadata"]["name"], reason, message))


def reads(requests: int, at: float) -> dict[str, Sample | str]:
    return {"lb-0": Sample(at, (ProxyStats("http_default_web_80", False, requests, requests,
                                           0, 0),))}  # fmt: skip


def scaler(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch, rates: list[int],
           tier: TierPolicy | None = None) -> Autoscaler:  # fmt: skip
    """Reads of `rates` requests a second, one per round, 10 s apart."""
    clock = itertools.count(0.0, 10.0)
    total = itertools.accumulate(r * 10 for r in [0, *rates])
    times = itertools.count(0.0, 10.0)

    async def fake_read_all(*_: Any, **__: Any) -> Mapping[str, Sample | str]:
        return reads(next(total), next(times))

    monkeypatch.setattr(module, "read_all", fake_read_all)
    settings = AutoscaleSettings(kube=KubeOptions(), stats_urls=("http://lb-0/",),
                                 interval=10, scale_down_window=30, tier=tier)  # fmt: skip

    def services() -> list[RawObject]:  # the watched store, as command.py hands it over
        return [o for o in cluster.objects if o["kind"] == "Service"]

    return Autoscaler(settings=settings, cluster=cluster, session=None,  # type: ignore[arg-type]
                      metrics=AutoscaleMetrics(), clock=lambda: next(clock),
                      services=services)  # fmt: skip


async def test_a_problem_is_one_event_until_it_goes_away(monkeypatch: pytest.MonkeyPatch) -> None:
    svc = service("web", annotations={P + "target-rps": "5"})
    cluster = FakeCluster([svc])  # no workload: a problem
    s = scaler(cluster, monkeypatch, [10, 10, 10, 10])
    for _ in range(3):
        await s.round()
    assert [e[1] for e in cluster.events] == ["NotAutoscaled"]
    assert "no Deployment or StatefulSet" in cluster.events[0][2]
    cluster.objects.append(deployment("web"))
    await s.round()  # gone: scaled instead
    assert cluster.writes == [(Workload("Deployment", "default", "web"), 2)]
    cluster.objects.pop()
    await s.round()  # back: recorded again
    assert [e[1] for e in cluster.events] == ["NotAutoscaled", "Scaled", "NotAutoscaled"]


async def test_no_rates_no_writes_then_a_statefulset(monkeypatch: pytest.MonkeyPatch) -> None:
    svc = service("web", annotations={P + "target-rps": "5", P + "max": "3"})
    cluster = FakeCluster([svc, deployment("db", kind="StatefulSet", labels={"app": "web"})])
    s = scaler(cluster, monkeypatch, [100, 100])
    await s.round()  # the first read: no rate yet
    assert not cluster.writes and s.working is False
    await s.round()
    assert cluster.writes == [(Workload("StatefulSet", "default", "db"), 3)]
    assert "statefulset/default/db from 1 to 3" in cluster.events[0][2]


async def test_daemonset_tier_is_a_recommendation_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tier = TierPolicy(Workload("DaemonSet", "lb", "slb"), "rps", 10.0, Bounds(1, 4))
    cluster = FakeCluster([])
    s = scaler(cluster, monkeypatch, [30, 30, 30], tier=tier)
    for _ in range(4):
        await s.round()
    assert not cluster.writes  # a DaemonSet is never written
    assert [(e[0], e[1]) for e in cluster.events] == [("slb", "ScaleRecommended")]
    assert "label 3 nodes role=loadbalancer" in cluster.events[0][2]


async def test_a_replica_that_does_not_lead_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leadership is asked before each round and again right before each write: lost
    between the two (the API slow to renew the Lease), nothing is written."""
    svc = service("web", annotations={P + "target-rps": "5", P + "max": "3"})
    cluster = FakeCluster([svc, deployment("web")])
    s = scaler(cluster, monkeypatch, [100, 100, 100])
    lead = {"now": False}
    s.may_write = lambda: lead["now"]
    assert not s.lead() and not s.leading
    lead["now"] = True
    assert s.lead()
    await s.round()  # the first read: no rate yet
    lead["now"] = False  # lost while the round reads
    await s.round()
    assert not cluster.writes and not cluster.events
    lead["now"] = True
    await s.round()
    assert cluster.writes == [(Workload("Deployment", "default", "web"), 3)]


async def test_gaining_leadership_starts_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica that led before and leads again counts as a fresh start: rates only from
    reads of its own since, and the current replicas as its first recommendation, so
    the scale-down window holds it back as it holds back a restarted autoscaler."""
    svc = service("web", annotations={P + "target-rps": "5", P + "max": "3"})
    cluster = FakeCluster([svc, deployment("web")])
    s = scaler(cluster, monkeypatch, [100, 0, 0, 0, 0])
    now = [0.0]
    s.clock = lambda: now[0]
    lead = {"now": True}
    s.may_write = lambda: lead["now"]
    web = Workload("Deployment", "default", "web")
    assert s.lead()
    await s.round()
    now[0] += 10
    await s.round()
    assert cluster.writes == [(web, 3)]
    lead["now"] = False  # another replica leads for a while (longer than the window)...
    assert not s.lead()
    now[0] += 100
    lead["now"] = True  # ...and stops: no load any more
    assert s.lead()
    await s.round()  # a first read again: the old one is 100 s old
    now[0] += 10
    await s.round()  # no load, but the window starts now: held at 3
    assert cluster.writes == [(web, 3)]
    now[0] += 25
    await s.round()
    assert cluster.writes == [(web, 3)]
    now[0] += 10  # past the 30 s window
    await s.round()
    assert cluster.writes == [(web, 3), (web, 1)]


async def test_a_loss_between_two_rounds_still_starts_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Leadership lost and gained again between two looks (another replica may have led
    and scaled meanwhile): the election says so, and the next round starts afresh."""
    svc = service("web", annotations={P + "target-rps": "5", P + "max": "3"})
    cluster = FakeCluster([svc, deployment("web")])
    s = scaler(cluster, monkeypatch, [100, 0, 0])
    now = [0.0]
    s.clock = lambda: now[0]
    web = Workload("Deployment", "default", "web")
    assert s.lead()
    await s.round()
    now[0] += 10
    await s.round()
    assert cluster.writes == [(web, 3)]
    s.leadership_changed(False)  # never seen by a round...
    now[0] += 100
    s.leadership_changed(True)
    assert s.lead()
    await s.round()  # ...yet a first read again
    now[0] += 10
    await s.round()  # no load: held at 3 by a window that starts now
    assert cluster.writes == [(web, 3)]
