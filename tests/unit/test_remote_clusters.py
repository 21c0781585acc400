"""--remote-cluster and --remote-stale-after as flags, and a remote cluster's state and
stale expiry (remote_clusters.py) driven by a stand-in source and a clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest
from objects import endpoint_slice, service

from service_loadbalancer.cli import build_parser, main
from service_loadbalancer.config import build_settings
from service_loadbalancer.flag_values import parse_remote_clusters
from service_loadbalancer.kube.watch import classify
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.remote_clusters import RemoteClusterSource, health_detail
from service_loadbalancer.settings import RemoteCluster, SettingsError
from service_loadbalancer.sources.kube import KubeSource
from service_loadbalancer.store import Store

# --- flags -------------------------------------------------------------------------------


def test_remote_clusters_are_parsed_with_optional_contexts(tmp_path: Path) -> None:
    east, west = tmp_path / "east.yaml", tmp_path / "west@home.yaml"
    east.write_text("{}", encoding="utf-8")
    west.write_text("{}", encoding="utf-8")
    argv = ["--remote-cluster", f"east={east}@ctx-1", "--remote-cluster", f"west={west}@"]
    argv += ["--remote-stale-after", "60"]
    settings = build_settings(build_parser().parse_args(argv), {})
    assert settings.remote_clusters == (
        RemoteCluster("east", east, "ctx-1"),
        RemoteCluster("west", west, None),
    )
    assert settings.remote_stale_after == 60.0
    defaults = build_settings(build_parser().parse_args([]), {})
    assert defaults.remote_clusters == ()
    assert defaults.remote_stale_after == 300.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["east"], "is not NAME=KUBECONFIG[@CONTEXT]"),
        (["east="], "is not NAME=KUBECONFIG[@CONTEXT]"),
        (["East=/k"], "'East' is not a cluster name (a DNS label)"),
        (["e_1=/k"], "is not a cluster name"),
        (["=/k"], "is not a cluster name"),
        (["east=/a", "east=/b"], "'east' is given twice"),
    ],
)
def test_bad_remote_clusters_are_refused(values: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        parse_remote_clusters(values)
    assert message in str(refused.value)


def test_a_missing_kubeconfig_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["render", "--remote-cluster", f"east={tmp_path}/none.yaml"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--remote-cluster east: no kubeconfig file" in err


@pytest.mark.parametrize("value", ["0", "-5", "nan", "86401", "soon"])
def test_bad_stale_after_is_exit_2(value: str) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--remote-stale-after", value])
    assert exited.value.code == 2


# --- state and stale expiry -----------------------------------------------------------------


class StandIn:
    """What RemoteClusterSource asks of its KubeSource: run, failing_since, listed."""

    def __init__(self) -> None:
        self.failing: float | None = None
        self.refused: float | None = None
        self.refused_kinds: list[str] = []
        self.forbidden: list[str] = []
        self.listed = True
        self.runs = 0

    def failing_since(self) -> float | None:
        return self.failing

    def refused_since(self, kinds: list[str]) -> float | None:
        self.refused_kinds = list(kinds)
        return self.refused

    def problems(self) -> list[str]:
        return self.forbidden

    async def run(self) -> None:
        self.runs += 1
        await asyncio.Event().wait()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def remote(clock: Clock, metrics: Metrics) -> RemoteClusterSource:
    cluster = RemoteCluster("east", Path("/k"))
    source = RemoteClusterSource(cluster, stale_after=1.0, metrics=metrics, clock=clock)
    source.store.replace_many(
        {
            "Service": [service("web")],
            "EndpointSlice": [endpoint_slice("web", "10.9.0.1")],
        }
    )
    source._kinds = ["Service", "EndpointSlice"]
    return source


def gauge(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"cluster": "east"})


async def test_endpoints_are_kept_while_fresh_then_removed_and_the_source_starts_over() -> None:
    clock, metrics = Clock(), Metrics()
    cluster = remote(clock, metrics)
    local = Store(())
    local.add_remote("east", cluster.store)
    stand_in = StandIn()
    cluster._source = cast(KubeSource, stand_in)
    following = asyncio.create_task(cluster._follow(cast(KubeSource, stand_in)))
    await asyncio.sleep(0.2)
    assert cluster.state() == "ok"
    assert gauge(metrics, "slb_remote_cluster_up") == 1

    stand_in.failing = clock.now
    clock.now += 0.5
    await asyncio.sleep(0.2)
    assert not following.done()
    assert len(cluster.store.snapshot().objects) == 2  # kept
    assert cluster.state().startswith("unreachable for 0 s: keeping its last endpoints for 1 s")
    assert gauge(metrics, "slb_remote_cluster_up") == 0
    assert gauge(metrics, "slb_remote_cluster_unreachable_seconds") == 0.5

    version = local.version
    clock.now += 0.6
    await asyncio.wait_for(following, 5)  # expired: the caller starts a fresh source
    assert cluster.store.snapshot().objects == {}
    changes = local.changes_since(version)
    assert changes is not None and changes.endpoints == {("default", "web")}
    assert cluster.expired
    assert "its endpoints were removed (back with the next successful list)" in cluster.state()
    assert gauge(metrics, "slb_remote_cluster_endpoints_removed") == 1

    # The fresh source lists successfully: no longer expired.
    fresh = StandIn()
    cluster._source = cast(KubeSource, fresh)
    following = asyncio.create_task(cluster._follow(cast(KubeSource, fresh)))
    await asyncio.sleep(0.2)
    assert not cluster.expired
    assert cluster.state() == "ok"
    assert gauge(metrics, "slb_remote_cluster_endpoints_removed") == 0
    assert health_detail([cluster]) == "\nremote cluster east: ok"
    following.cancel()
    with pytest.raises(asyncio.CancelledError):
        await following


async def test_a_cluster_that_never_answered_is_connecting() -> None:
    clock, metrics = Clock(), Metrics()
    cluster = remote(clock, metrics)
    assert cluster.state() == "connecting"
    stand_in = StandIn()
    stand_in.listed = False
    cluster._source = cast(KubeSource, stand_in)
    assert cluster.state() == "connecting"


async def test_a_cluster_refusing_us_wholly_goes_stale_and_says_why() -> None:
    """A revoked token (401) or a 403 on every request for its EndpointSlices: its
    endpoints cannot be refreshed, so they expire like an unreachable cluster's, reported
    as unauthorized (not as unreachable)."""
    clock, metrics = Clock(), Metrics()
    cluster = remote(clock, metrics)
    stand_in = StandIn()
    cluster._source = cast(KubeSource, stand_in)
    following = asyncio.create_task(cluster._follow(cast(KubeSource, stand_in)))
    await asyncio.sleep(0.2)
    assert cluster.state() == "ok"
    assert stand_in.refused_kinds == ["EndpointSlice"]

    stand_in.refused = clock.now
    stand_in.forbidden = ["endpointslices in all namespaces: 401 Unauthorized"]
    clock.now += 0.5
    await asyncio.sleep(0.2)
    assert not following.done()
    assert cluster.state() == (
        "unauthorized for 0 s (endpointslices in all namespaces: 401 Unauthorized): "
        "keeping its last endpoints for 1 s (--remote-stale-after)"
    )
    assert gauge(metrics, "slb_remote_cluster_up") == 0
    assert gauge(metrics, "slb_remote_cluster_unreachable_seconds") == 0  # it answers

    clock.now += 0.6
    await asyncio.wait_for(following, 5)
    assert cluster.store.snapshot().objects == {}
    assert cluster.expired
    assert cluster.state().endswith(
        "its endpoints were removed (back with the next successful list)"
    )
    # A fresh source refused again stays expired (not "reachable again").
    fresh = StandIn()
    fresh.refused, fresh.forbidden = clock.now, stand_in.forbidden
    cluster._source = cast(KubeSource, fresh)
    following = asyncio.create_task(cluster._follow(cast(KubeSource, fresh)))
    await asyncio.sleep(0.2)
    assert cluster.expired and not following.done()
    following.cancel()
    with pytest.raises(asyncio.CancelledError):
        await following


def refusals(*answers: tuple[str, int]) -> float | None:
    """KubeSource.refused_since for EndpointSlices after each (kind, HTTP code) answer."""
    source = KubeSource(
        api=cast(Any, None), kinds=["Service", "EndpointSlice", "ServiceExport"], store=Store(())
    )
    units = {unit.resource.kind: unit for unit in source._units}
    for kind, code in answers:
        source._failed(units[kind], classify(code), "list")
    return source.refused_since(["EndpointSlice"])


@pytest.mark.parametrize(
    ("answers", "refused"),
    [
        pytest.param([], False, id="all-allowed"),
        pytest.param([("ServiceExport", 403)], False, id="403-on-another-kind-only"),
        pytest.param([("Service", 403), ("ServiceExport", 403)], False, id="endpoints-allowed"),
        pytest.param([("EndpointSlice", 403)], True, id="403-on-the-endpoints"),
        pytest.param([("ServiceExport", 401)], True, id="401-anywhere"),
        pytest.param([("EndpointSlice", 503)], False, id="an-outage-is-failing-since"),
    ],
)
def test_what_counts_as_refused_wholly(answers: list[tuple[str, int]], refused: bool) -> None:
    assert (refusals(*answers) is not None) is refused
