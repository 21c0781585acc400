"""Per-Service load on the controller's /metrics, for autoscalers that are not ours
(KEDA's `prometheus` trigger, an HPA through prometheus-adapter): request rate, requests
in flight and requests queued, labelled namespace and service.

Off the hot path: nothing is read while no one scrapes. A scrape of /metrics first reads
HAProxy's `show stat` (frontends and backends only) over the Runtime API, at most once a
second however often it is scraped, and the rate is the counters' increase since the
previous read, so with Prometheus scraping every 30 s it is the rate over those 30 s. A
counter that went down (HAProxy reloaded) counts from zero, as figures.py does for the
autoscale command, whose parsing this reuses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from service_loadbalancer.autoscale.figures import Load, Sample, replica_loads
from service_loadbalancer.haproxy.runtime import RuntimeApi, RuntimeApiError
from service_loadbalancer.haproxy.stats import StatsFormatError, parse_stats_csv
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.model import service_of_backend

log = logging.getLogger("service_loadbalancer.service_load")
#: `show stat <proxy> <type> <server>`: every proxy, frontends (1) and backends (2), no servers.
SHOW_STAT = "show stat -1 3 -1"
MIN_INTERVAL = 1.0


def in_flight_only(sample: Sample) -> dict[ObjectKey, Load]:
    """Without an earlier read there is no rate yet, but the gauges are known."""
    loads: dict[ObjectKey, Load] = {}
    for proxy in sample.proxies:
        if not proxy.frontend and (key := service_of_backend(proxy.name)) is not None:
            loads[key] = loads.get(key, Load()) + Load(0.0, proxy.current, proxy.queued)
    return loads


class ServiceLoad:
    """Refreshes the slb_service_* gauges of `metrics` when /metrics is scraped."""

    def __init__(
        self, *, runtime: RuntimeApi, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._runtime = runtime
        self._metrics = metrics
        self._clock = clock
        self._previous: Sample | None = None

    async def refresh(self) -> None:
        now = self._clock()
        if self._previous is not None and now - self._previous.at < MIN_INTERVAL:
            return
        try:
            (text,) = await self._runtime.execute([SHOW_STAT], timeout=2.0)
            current = Sample(now, tuple(parse_stats_csv(text)))
        except (RuntimeApiError, StatsFormatError) as err:
            log.debug("no per-Service load this scrape: %s", err)
            return
        if self._previous is None:
            loads, with_rate = in_flight_only(current), False
        else:
            loads, _, _ = replica_loads(self._previous, current)
            with_rate = True
        self._previous = current
        self.publish(loads, with_rate=with_rate)

    def publish(self, loads: dict[ObjectKey, Load], *, with_rate: bool) -> None:
        m = self._metrics
        for gauge in (m.service_rate, m.service_in_flight, m.service_queued):
            gauge.clear()  # Services that went away go with them
        for key, load in loads.items():
            labels = {"namespace": key.namespace, "service": key.name}
            if with_rate:
                m.service_rate.labels(**labels).set(load.rate)
            m.service_in_flight.labels(**labels).set(load.in_flight)
            m.service_queued.labels(**labels).set(load.queued)
