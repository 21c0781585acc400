"""From the stats of every load-balancer replica, read twice, to the load of each Service
and of the whole tier. Pure: samples in, figures out.

- **Rates come from counters between two reads** of the same replica, then are summed
  over replicas (each replica sees only its share of the traffic).
- **A counter that goes down is a restart** (HAProxy's counters start from zero in a new
  process, and a reload starts one), never negative traffic: what the new process counted
  since it started is what is known, and the round is marked incomplete. So is a read
  from a process younger than the time since the last read (no backend's `lastchg`, set
  at the process's start, is older): a reload whose new process already counted more than
  the old one had would otherwise pass for a small increase.
- **A replica that cannot be read is skipped** for the round and the round is marked
  incomplete; its last good read stays, so the next good one gives its rate over the
  longer time. It is never counted as zero load: incomplete figures are a lower bound,
  which the rule (rule.py) may use to scale up but never down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service_loadbalancer.haproxy.stats import (
    RELAY_BACKENDS,
    RELAYED_FRONTENDS,
    ProxyStats,
)
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import service_of_backend


@dataclass(frozen=True, slots=True)
class Sample:
    """One read of one replica's stats page, at `at` (monotonic seconds)."""

    at: float
    proxies: tuple[ProxyStats, ...]


@dataclass(frozen=True, slots=True)
class Load:
    """Requests (or, on TCP, connections) a second, in flight now, and queued now."""

    rate: float = 0.0
    in_flight: int = 0
    queued: int = 0

    def __add__(self, other: Load) -> Load:
        return Load(
            self.rate + other.rate, self.in_flight + other.in_flight, self.queued + other.queued
        )

    @property
    def concurrency(self) -> int:
        """In flight plus queued: the requests that want a pod now."""
        return self.in_flight + self.queued


@dataclass(frozen=True, slots=True)
class Figures:
    services: Mapping[ObjectKey, Load]
    #: The tier, over every replica: requests (TCP: connections) a second over all
    #: backends, client connections open (in_flight), requests queued.
    tier: Load
    #: Replicas whose figures are in this round.
    replicas: int
    #: False when some replica was unread, read for the first time, or had restarted.
    complete: bool
    notes: tuple[str, ...] = field(default=())


def _counter_delta(now: int, before: int | None) -> tuple[int, bool]:
    """The increase, and whether it is whole (False: the counter restarted)."""
    if before is None:
        return now, True  # a proxy that appeared (new Service): counted since it did
    if now < before:
        return now, False
    return now - before, True


def replica_loads(previous: Sample, current: Sample) -> tuple[dict[ObjectKey, Load], Load, bool]:
    """The per-Service loads and the tier's load of one replica between two reads, and
    whether no counter restarted in between."""
    elapsed = current.at - previous.at
    if elapsed <= 0:
        return {}, Load(), False
    before: dict[tuple[str, bool], int] = {
        (p.name, p.frontend): p.requests for p in previous.proxies
    }
    whole = True
    oldest = max((p.age for p in current.proxies if p.age is not None), default=None)
    if oldest is not None and oldest + 1 < elapsed:
        before, whole = {}, False  # a newer process: all it counted is since it started
    services: dict[ObjectKey, Load] = {}
    tier = Load()
    for proxy in current.proxies:
        if proxy.frontend:
            # The tier's open connections: every client connection, counted once.
            if proxy.name not in RELAYED_FRONTENDS:
                tier = tier + Load(0.0, proxy.current, 0)
            continue
        delta, ok = _counter_delta(proxy.requests, before.get((proxy.name, False)))
        whole = whole and ok
        load = Load(delta / elapsed, proxy.current, proxy.queued)
        if proxy.name not in RELAY_BACKENDS:
            # The tier's rate: every request (or TCP connection) where it ends, once,
            # including those no route matched (default_backend): they are load too.
            tier = tier + Load(load.rate, 0, load.queued)
        if (service := service_of_backend(proxy.name)) is not None:
            services[service] = services.get(service, Load()) + load
    return services, tier, whole


def combine(
    previous: Mapping[str, Sample], current: Mapping[str, Sample | str]
) -> tuple[Figures, dict[str, Sample]]:
    """The figures of one round, and the samples to keep for the next one.

    `previous`: replica -> its last good read; `current`: replica -> this round's read,
    or why it could not be read. Replicas absent from `current` are gone (dropped)."""
    keep: dict[str, Sample] = {}
    services: dict[ObjectKey, Load] = {}
    tier = Load()
    notes: list[str] = []
    read = 0
    for replica, result in sorted(current.items()):
        before = previous.get(replica)
        if isinstance(result, str):
            notes.append(f"{replica}: {result}")
            if before is not None:
                keep[replica] = before
            continue
        keep[replica] = result
        if before is None:
            notes.append(f"{replica}: first read (a rate needs two)")
            continue
        loads, frontends, whole = replica_loads(before, result)
        if not whole:
            notes.append(f"{replica}: HAProxy restarted or reloaded (its counters began again)")
        read += 1
        tier = tier + frontends
        for key, load in loads.items():
            services[key] = services.get(key, Load()) + load
    figures = Figures(services, tier, read, complete=not notes and read > 0, notes=tuple(notes))
    return figures, keep
