"""Two `service-loadbalancer autoscale` replicas (subprocesses) against the fake API
server, the real controller and its real HAProxy: the Lease elects one, only it reads
stats and writes (every scale write is its, with its Event, none twice); SIGTERM makes it
release the Lease and the other takes over and goes on scaling."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from autoscale_harness import AutoscaleProcess, Load
from fake_apiserver import FakeAPIServer
from harness import Backends, Controller, running, wait_for
from objects import deployment, service, slices

P = "serviceloadbalancer/autoscale."
DEADLINE = 60.0
LEASE = ("slb-system", "service-loadbalancer-autoscale")


@pytest.fixture
def controller(tmp_path: Path, api: FakeAPIServer) -> Iterator[Controller]:
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    c = Controller(tmp_path, use_manifests=False, extra_args=["--kubeconfig", str(kubeconfig)])
    with running(c):
        yield c


def lease(api: FakeAPIServer) -> dict[str, Any]:
    return (api.get("Lease", *LEASE) or {}).get("spec") or {}


def replicas(api: FakeAPIServer) -> int:
    obj = api.get("Deployment", "default", "web")
    assert obj is not None
    return int(obj["spec"]["replicas"])


def scaled(api: FakeAPIServer) -> list[tuple[str, int, int]]:
    """(reporting replica, from, to) of every Scaled Event on web, oldest first."""
    found = []
    for event in api.events.values():
        if event["reason"] == "Scaled" and event["involvedObject"]["name"] == "web":
            m = re.search(r"from (\d+) to (\d+)", event["message"])
            assert m, event["message"]
            found.append((event["source"]["host"], int(m[1]), int(m[2])))
    return found


async def stopped(scaler: AutoscaleProcess) -> int | None:
    """SIGTERM, waited for in a thread: this loop serves the API the release goes to."""
    return await asyncio.to_thread(scaler.stop)


async def healthz(scaler: AutoscaleProcess) -> tuple[int, str]:
    url = f"http://127.0.0.1:{scaler.healthz_port}/healthz"
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def _true(value: bool) -> bool:
    return value


async def test_one_replica_writes_and_the_other_takes_over_on_sigterm(
    tmp_path: Path, api: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    endpoint = await backends.http("web", "127.0.19.1")
    await api.create(service("web", 80, annotations={P + "target-rps": "5", P + "max": "3"}))
    for obj in slices("web", [endpoint]):
        await api.create(obj)
    await api.create(deployment("web", replicas=1))
    await controller.wait_healthy()
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")

    def replica(name: str) -> AutoscaleProcess:
        workdir = tmp_path / name
        workdir.mkdir()
        process = AutoscaleProcess(workdir, [
            "--kubeconfig", str(kubeconfig),
            "--stats-url", f"http://127.0.0.1:{controller.stats_port}/",
            "--interval", "0.5", "--scale-down-stabilization", "2",
        ])  # fmt: skip
        process.env = {"POD_NAME": name, "POD_NAMESPACE": LEASE[0]}
        return process

    first, second = replica("scaler-a"), replica("scaler-b")
    load = Load(f"http://127.0.0.1:{controller.http_port}/web", rate=40)
    try:
        first.start()
        await wait_for(lambda: _true(lease(api).get("holderIdentity") == "scaler-a"),
                       within=DEADLINE, what=f"scaler-a leads; log:\n{first.log()}")  # fmt: skip
        second.start()

        async def standing_by() -> bool:
            return "slb_leader 0.0" in await second.metrics() and await healthz(second) == (
                200,
                "standby: another replica leads\n",
            )

        await wait_for(standing_by, within=DEADLINE, what=f"scaler-b up; log:\n{second.log()}")
        load.start()

        async def at(wanted: int, scaler: AutoscaleProcess) -> None:
            async def check() -> bool:
                return replicas(api) == wanted

            what = f"web at {wanted} replicas; log:\n{scaler.log()}"
            await wait_for(check, within=DEADLINE, what=what)

        await at(3, first)
        assert "slb_leader 1.0" in await first.metrics()
        follower = await second.metrics()
        assert "slb_leader 0.0" in follower
        # The follower read no stats (no round at all) and wrote nothing.
        assert "slb_autoscale_rounds_total{" not in follower
        assert "slb_autoscale_scale_writes_total{" not in follower
        assert "scaled " not in second.log()
        assert lease(api)["holderIdentity"] == "scaler-a"

        # SIGTERM: a clean stop that hands the Lease over; the other goes on scaling.
        assert await stopped(first) == 0, first.log()
        assert "released (HTTP 200)" in first.log()

        async def took_over() -> bool:
            return (
                lease(api).get("holderIdentity") == "scaler-b"
                and "slb_leader 1.0" in await second.metrics()
            )

        await wait_for(took_over, within=DEADLINE, what=f"scaler-b leads; log:\n{second.log()}")
        assert lease(api)["leaseTransitions"] == 1
        await load.stop()
        await at(1, second)
        assert await stopped(second) == 0, second.log()
    finally:
        await load.stop()
        first.stop()
        second.stop()
    assert "leading: autoscaling from fresh figures" in second.log()
    # Every scale write was the leader's of the moment, with its Event, and none twice:
    # each change starts where the previous one ended.
    changes = scaled(api)
    writes = [r for r in api.requests if r.startswith("PATCH") and "/deployments/web/scale" in r]
    assert len(writes) == len(changes), (writes, changes)
    assert changes[0][:2] == ("scaler-a", 1) and changes[-1][0::2] == ("scaler-b", 1)
    for (_, _, before), (_, start, _) in itertools.pairwise(changes):
        assert start == before, changes
    ups = [c for c in changes if c[2] > c[1]]
    assert ups and all(host == "scaler-a" for host, _, _ in ups), changes
    # Released on the way out by the last one too.
    assert lease(api)["holderIdentity"] == ""
