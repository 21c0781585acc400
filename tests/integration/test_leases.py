"""LeaseElector (leases.py) against the fake API server: one holder, optimistic
concurrency, takeover after expiry, immediate handover on release. Short timings so the
test is quick; the controller runs with client-go's (test_loadbalancer.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
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

FAST = Timings(lease_duration=2.0, renew_deadline=1.5, retry_period=0.2)


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


async def elector(api: FakeAPIServer, tmp_path: Path, identity: str) -> LeaseElector:
    client = await connect(
        kubeconfig=api.kubeconfig(tmp_path / f"kubeconfig-{identity}"), context=None,
        in_cluster=True,
    )  # fmt: skip
    CLIENTS.append(client)
    return LeaseElector(api=client, namespace="lb", name="leader", identity=identity, timings=FAST)


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
        await asyncio.sleep(FAST.lease_duration * 1.5)  # b keeps trying all along
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
        c = await elector(api, tmp_path, "c")
        loop = asyncio.get_running_loop()
        started = loop.time()
        task_c = asyncio.create_task(c.run())
        await wait_for(lambda: _true(c.is_leader()), what="c leads after expiry")
        assert loop.time() - started >= 2.0  # not before the lease expired on c's clock
        task_c.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task_c
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
