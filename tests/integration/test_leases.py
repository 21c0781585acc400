"""LeaseElector (leases.py) against the fake API server: one holder, optimistic
concurrency, takeover after expiry, immediate handover on release. No assertion hangs
on a sleep: the candidates' tries are counted, and expiry is driven by a fake clock, so
a loaded machine can slow the test down but not change its outcome. The controller runs
with client-go's timings (test_loadbalancer.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fake_apiserver import FakeAPIServer
from harness import wait_for

from service_loadbalancer.election import Timings
from service_loadbalancer.kube.client import connect
from service_loadbalancer.leases import LeaseElector

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

#: Quick tries, and a renew deadline far longer than any request of a loaded machine.
TIMINGS = Timings(lease_duration=15.0, renew_deadline=10.0, retry_period=0.2)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeAPIServer]:
    server = FakeAPIServer(tmp_path)
    await server.start()
    yield server
    await server.stop()


CLIENTS: list[ApiClient] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while CLIENTS:
        await CLIENTS.pop().close()


class CountingElector(LeaseElector):
    """Counts its rounds (run() calls step()), so a test can wait for N of them."""

    steps = 0

    async def step(self) -> None:
        await super().step()
        self.steps += 1


async def elector(
    api: FakeAPIServer, tmp_path: Path, identity: str, clock: Callable[[], float] = time.monotonic
) -> CountingElector:
    client = await connect(
        kubeconfig=api.kubeconfig(tmp_path / f"kubeconfig-{identity}"), context=None,
        in_cluster=True,
    )  # fmt: skip
    CLIENTS.append(client)
    return CountingElector(
        api=client, namespace="lb", name="leader", identity=identity, timings=TIMINGS, clock=clock
    )


def holder(api: FakeAPIServer) -> str:
    lease = api.get("Lease", "lb", "leader") or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


async def test_one_holder_takeover_after_expiry_and_release(
    api: FakeAPIServer, tmp_path: Path
) -> None:
    a, b = await elector(api, tmp_path, "a"), await elector(api, tmp_path, "b")
    task_a = asyncio.create_task(a.run())
    await wait_for(lambda: _true(a.is_leader()), what="a leads")
    task_b = asyncio.create_task(b.run())
    try:
        # b tries, again and again, and never leads while a renews.
        tried = b.steps
        await wait_for(lambda: _true(b.steps >= tried + 3), what="b trying 3 times")
        assert a.is_leader() and not b.is_leader() and holder(api) == "a"

        # a vanishes without a word (SIGKILL): b takes over once the lease expired.
        task_a.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task_a  # releases... so simulate a crash on a fresh Lease below
        await wait_for(lambda: _true(b.is_leader()), what="b leads after a released")
        assert holder(api) == "b"
        transitions = (api.get("Lease", "lb", "leader") or {})["spec"]["leaseTransitions"]
        assert transitions == 1

        # A crash (no release): a new candidate waits out the lease duration.
        task_b.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task_b
        lease = api.get("Lease", "lb", "leader") or {}
        assert lease["spec"]["holderIdentity"] == ""  # released by b
        lease["spec"].update(holderIdentity="crashed", leaseDurationSeconds=2)
        await api.update(lease)
        now = [100.0]  # c's clock, moved by hand: expiry is on c's clock, from first sight
        c = await elector(api, tmp_path, "c", clock=lambda: now[0])
        await c.step()
        for moment in (101.0, 101.99):
            now[0] = moment
            await c.step()
            assert not c.is_leader() and holder(api) == "crashed"
        now[0] = 102.0
        await c.step()
        assert c.is_leader() and holder(api) == "c"
        await c.release()
    finally:
        for task in (task_a, task_b):
            task.cancel()


async def test_a_stale_write_is_refused_and_the_loser_does_not_lead(
    api: FakeAPIServer, tmp_path: Path
) -> None:
    a, b = await elector(api, tmp_path, "a"), await elector(api, tmp_path, "b")
    await asyncio.gather(a.step(), b.step())  # both see no Lease and create it
    assert [a.is_leader(), b.is_leader()].count(True) == 1
    winner, loser = (a, b) if a.is_leader() else (b, a)
    assert holder(api) == winner.identity
    await loser.step()
    assert not loser.is_leader()
    await winner.step()
    assert winner.is_leader()
    # Released: both read the same resourceVersion and write; the stale one gets 409.
    await winner.release()
    assert holder(api) == ""
    await asyncio.gather(a.step(), b.step())
    assert [a.is_leader(), b.is_leader()].count(True) == 1
    lease = api.get("Lease", "lb", "leader") or {}
    assert lease["spec"]["holderIdentity"] in ("a", "b")
    assert lease["spec"]["leaseTransitions"] == 1


async def _true(value: bool) -> bool:
    return value
