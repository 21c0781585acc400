"""Reading HAProxy 2.6's messages about server health (captured from a real worker)."""

from __future__ import annotations

from pathlib import Path

from service_loadbalancer.haproxy.health import HealthWatcher, backend_empty, server_down
from service_loadbalancer.haproxy.runtime import RuntimeApi
from service_loadbalancer.metrics import Metrics

DOWN_OBSERVED = (
    "[WARNING]  (3148) : Server http_default_app_80/s_127_0_60_3_33689 is DOWN, reason: "
    'Health analyze, info: "Detected 3 consecutive errors, last one was: L4 unsuccessful '
    'connection". 2 active and 0 backup servers left. 1 sessions active, 0 requeued, 0 '
    "remaining in queue."
)
DOWN_CHECKED = (
    "[WARNING]  (3345) : Server b/s_1 is DOWN, reason: Layer4 connection problem, info: "
    '"Connection refused", check duration: 0ms. 1 active and 0 backup servers left.'
)
EMPTY = "[ALERT]    (3345) : backend 'http_default_app_80' has no server available!"
OTHERS = [
    "[WARNING]  (3345) : Server b/s_1 is UP, changed from CLI. 1 active and 0 backup servers.",
    "[WARNING]  (24772) : Server b/c was DOWN and now enters maintenance.",
    "[WARNING]  (24772) : Server b/c is going DOWN for maintenance.",
    "[NOTICE]   (1682) : Loading success.",
]


def test_server_down() -> None:
    assert server_down(DOWN_OBSERVED) == ("http_default_app_80", "s_127_0_60_3_33689")
    assert server_down(DOWN_CHECKED) == ("b", "s_1")
    assert [server_down(line) for line in [EMPTY, *OTHERS]] == [None] * 5


def test_backend_empty() -> None:
    assert backend_empty(EMPTY) == "http_default_app_80"
    assert [backend_empty(line) for line in [DOWN_OBSERVED, *OTHERS]] == [None] * 5


async def test_watcher_counts_ejections_per_backend(tmp_path: Path) -> None:
    metrics = Metrics()
    watcher = HealthWatcher(runtime=RuntimeApi(socket_path=tmp_path / "none"), metrics=metrics)
    for line in [DOWN_OBSERVED, DOWN_CHECKED, DOWN_CHECKED, *OTHERS]:
        watcher.on_line(line)
    value = metrics.registry.get_sample_value
    assert value("slb_server_ejections_total", {"backend": "b"}) == 2
    assert value("slb_server_ejections_total", {"backend": "http_default_app_80"}) == 1
