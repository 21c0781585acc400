"""The per-Service load gauges of the controller's /metrics: the first scrape has no rate
yet (but the gauges), the next ones the rate since the previous read, and a Service that
went away leaves the metrics."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from service_loadbalancer.autoscale.figures import Load, Sample
from service_loadbalancer.haproxy.stats import ProxyStats, parse_stats_csv
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.service_load import ServiceLoad, in_flight_only

CSV = (Path(__file__).parent / "haproxy_stats_2.6.csv").read_text(encoding="utf-8")
WEB = ObjectKey("Service", "default", "web")


def test_first_read_gives_the_gauges_only() -> None:
    loads = in_flight_only(Sample(0.0, tuple(parse_stats_csv(CSV))))
    assert loads == {WEB: Load(0.0, 0, 0), ObjectKey("Service", "shop", "db"): Load()}
    sample = Sample(0.0, (ProxyStats("http_default_web_80", False, 9, 9, 3, 2),))
    assert in_flight_only(sample) == {WEB: Load(0.0, 3, 2)}


def test_publish_replaces_the_label_sets() -> None:
    metrics = Metrics()
    load = ServiceLoad(runtime=None, metrics=metrics)  # type: ignore[arg-type]
    load.publish({WEB: Load(12.5, 3, 1)}, with_rate=True)
    text = generate_latest(metrics.registry).decode()
    assert 'slb_service_requests_per_second{namespace="default",service="web"} 12.5' in text
    assert 'slb_service_requests_in_flight{namespace="default",service="web"} 3.0' in text
    assert 'slb_service_requests_queued{namespace="default",service="web"} 1.0' in text
    load.publish({}, with_rate=True)
    assert 'service="web"' not in generate_latest(metrics.registry).decode()
