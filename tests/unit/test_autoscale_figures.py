"""Stats parsing (HAProxy 2.6.12's own `;csv`, captured from a real stats page) and the
rates between two reads: summed over replicas, a counter that goes down is a restart,
an unreadable replica is skipped and makes the round incomplete (never zero load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service_loadbalancer.autoscale.figures import Load, Sample, combine, replica_loads
from service_loadbalancer.haproxy.stats import (
    ProxyStats,
    StatsFormatError,
    parse_stats_csv,
)
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import Mode, backend_name, service_of_backend

CSV = (Path(__file__).parent / "haproxy_stats_2.6.csv").read_text(encoding="utf-8")
WEB = ObjectKey("Service", "default", "web")
DB = ObjectKey("Service", "shop", "db")


def test_parse_real_stats_page() -> None:
    rows = parse_stats_csv(CSV)
    assert rows == [
        ProxyStats("http", True, requests=3, sessions=3, current=0, queued=0),
        ProxyStats(
            "http_default_web_80", False, requests=3, sessions=3, current=0, queued=0, age=0
        ),
        # TCP: no req_tot, so connections count as the requests.
        ProxyStats("tcp_shop_db_5432", False, requests=0, sessions=0, current=0, queued=0, age=0),
    ]


@pytest.mark.parametrize("text", ["", "<html>401 Unauthorized</html>", "pxname,svname\n"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(StatsFormatError):
        parse_stats_csv(text)


@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("http_default_web_80", WEB),
        ("tcp_shop_db_5432", DB),
        ("h2c_a-b_c-d_8080", ObjectKey("Service", "a-b", "c-d")),
        ("default_backend", None),
        ("stats", None),
    ],
)
def test_backend_names_back_to_services(name: str, service: ObjectKey | None) -> None:
    assert service_of_backend(name) == service


def test_the_names_translate_gives_read_back() -> None:
    """One format, written by backend_name and read by service_of_backend."""
    for mode in Mode:
        assert service_of_backend(backend_name(mode, WEB, 8080)) == WEB
    assert backend_name(Mode.TCP, DB, 5432) == "tcp_shop_db_5432"


def sample(at: float, web: int, db: int = 0, *, in_flight: int = 0, queued: int = 0) -> Sample:
    return Sample(
        at,
        (
            ProxyStats("http", True, web, web, in_flight, 0),
            ProxyStats("http_default_web_80", False, web, web, in_flight, queued),
            ProxyStats("tcp_shop_db_5432", False, db, db, 0, 0),
        ),
    )


def test_rates_between_two_reads() -> None:
    services, tier, whole = replica_loads(sample(10, 100, 5), sample(20, 300, 25, in_flight=4))
    assert services == {WEB: Load(20.0, 4, 0), DB: Load(2.0, 0, 0)}
    assert tier == Load(22.0, 4, 0)  # every backend's rate, the frontends' connections
    assert whole


def test_the_tier_counts_relayed_https_once() -> None:
    def relayed(at: float, n: int) -> Sample:
        return Sample(at, (
            ProxyStats("https", True, n, n, 2, 0),  # TCP: reads the SNI, relays
            ProxyStats("https_terminate", False, n, n, 2, 0),  # the relay
            ProxyStats("https_terminated", True, n, n, 2, 0),  # the same connections
            ProxyStats("http_default_web_80", False, n, n, 2, 0),
        ))  # fmt: skip

    _, tier, _ = replica_loads(relayed(0, 0), relayed(10, 100))
    assert tier == Load(10.0, 2, 0)


def test_summed_over_replicas() -> None:
    before = {"a": sample(0, 0), "b": sample(0, 1000)}
    figures, keep = combine(before, {"a": sample(10, 100, queued=2), "b": sample(10, 1300)})
    assert figures.services[WEB] == Load(40.0, 0, 2)
    assert figures.complete and figures.replicas == 2
    assert keep["b"] == sample(10, 1300)


def test_a_counter_that_goes_down_is_a_restart_not_negative_traffic() -> None:
    figures, _ = combine({"a": sample(0, 5000)}, {"a": sample(10, 50)})
    assert figures.services[WEB].rate == 5.0  # what the new process counted since it began
    assert not figures.complete
    assert "restarted or reloaded" in figures.notes[0]


def test_an_unreadable_replica_is_skipped_not_zero_and_keeps_its_last_read() -> None:
    before = {"a": sample(0, 0), "b": sample(0, 0)}
    figures, keep = combine(before, {"a": sample(10, 100), "b": "HTTP 503"})
    assert figures.services[WEB].rate == 10.0
    assert not figures.complete and figures.notes == ("b: HTTP 503",)
    assert keep["b"] == before["b"]
    # The next good read of b gives its rate over the whole 20 s.
    figures, _ = combine(keep, {"a": sample(20, 200), "b": sample(20, 400)})
    assert figures.services[WEB].rate == 10.0 + 20.0 and figures.complete


def test_the_first_read_is_no_rate_and_a_gone_replica_is_dropped() -> None:
    figures, keep = combine({"gone": sample(0, 0)}, {"new": sample(10, 100)})
    assert figures.replicas == 0 and not figures.complete
    assert figures.services == {}
    assert set(keep) == {"new"}


def test_a_new_backend_counts_from_zero() -> None:
    old = Sample(0, (ProxyStats("http", True, 0, 0, 0, 0),))
    figures, _ = combine({"a": old}, {"a": sample(10, 30)})
    assert figures.services[WEB].rate == 3.0 and figures.complete


def test_a_process_younger_than_the_last_read_is_a_reload_even_if_it_counted_more() -> None:
    """Reloaded between two reads 10 s apart, the new process already counted 1,200
    requests, more than the old one's 1,000: not an increase of 200 but 1,200 since it
    started (its backends are 4 s old), and the round is incomplete (no scale-down)."""

    def aged(at: float, n: int, age: int) -> Sample:
        return Sample(at, (ProxyStats("http_default_web_80", False, n, n, 0, 0, age=age),))

    services, _, whole = replica_loads(aged(0, 1000, 600), aged(10, 1200, 4))
    assert services[WEB].rate == 120.0 and not whole
    services, _, whole = replica_loads(aged(0, 1000, 600), aged(10, 1200, 610))
    assert services[WEB].rate == 20.0 and whole
