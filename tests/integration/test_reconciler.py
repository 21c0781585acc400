"""The Reconciler's scheduling, driven through a Store in the test, against a real HAProxy.

What is checked is when each path runs: endpoint changes go through the fast path
(Runtime API, no reload), anything else through a full sync, bursts are coalesced,
a quiet period after fast-path changes brings a full sync that checks them (and finds
nothing to do), and a full sync that takes long never holds an endpoint change back.
The servers need not answer: nothing here sends traffic, HAProxy's own view
(`show servers state`) is what is looked at.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from harness import free_port, wait_for
from objects import endpoint_slice, service

from service_loadbalancer import reconciler as reconciler_module
from service_loadbalancer.fullsync import prepare
from service_loadbalancer.haproxy.plan import ReasonKind
from service_loadbalancer.haproxy.process import HAProxyProcess
from service_loadbalancer.haproxy.render import RUNTIME_SOCKET, builtin_template
from service_loadbalancer.haproxy.runtime import RuntimeApi
from service_loadbalancer.kube.objects import KNOWN_KINDS, RawObject
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.model import Algorithm
from service_loadbalancer.reconciler import Reconciler
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Store


class Rig:
    """A store, a reconciler and its HAProxy, with the counters the tests read."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(
            run_dir=tmp_path / "run",
            bind_address="127.0.0.1",
            http_port=free_port(),
            stats_port=free_port(),
            healthz_port=free_port(),
        )
        self.settings.run_dir.mkdir()
        self.store = Store(KNOWN_KINDS)
        self.metrics = Metrics()
        self.haproxy = HAProxyProcess(
            haproxy_bin=self.settings.haproxy_bin,
            config_path=self.settings.config_path,
            run_dir=self.settings.run_dir,
            env=self.settings.haproxy_env(),
        )
        self.reconciler = Reconciler(
            store=self.store, settings=self.settings, haproxy=self.haproxy, metrics=self.metrics
        )
        self.runtime = RuntimeApi(socket_path=self.settings.run_dir / RUNTIME_SOCKET)

    def load(self, *objects: RawObject) -> None:
        """A complete list of every kind, as a source's first load."""
        kinds: dict[str, list[RawObject]] = {kind: [] for kind in KNOWN_KINDS}
        for obj in objects:
            kinds[str(obj["kind"])].append(obj)
        self.store.replace_many(kinds)

    def count(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or None)
        return value or 0.0

    def reloads(self) -> float:
        return sum(
            s.value
            for metric in self.metrics.registry.collect()
            if metric.name == "slb_haproxy_reloads"
            for s in metric.samples
            if s.name.endswith("_total")
        )

    async def servers(self, backend: str) -> set[str]:
        rows = await self.runtime.servers_state([backend])
        return {f"{r.address}:{r.port}" for r in rows if r.ready}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path)
    task = asyncio.create_task(rig.reconciler.run(), name="reconciler")
    try:
        yield rig
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await rig.haproxy.stop()


WEB = "http_default_web_80"


def web_slice(*addresses: str) -> RawObject:
    return endpoint_slice("web", *addresses)


async def started(rig: Rig, *objects: RawObject) -> None:
    rig.load(*objects)
    await asyncio.wait_for(rig.reconciler.synced.wait(), 20)
    assert rig.reloads() == 1  # the start


async def test_endpoint_changes_take_the_fast_path_and_are_checked_when_quiet(rig: Rig) -> None:
    await started(rig, service("web", 80), web_slice("127.0.30.1"))
    rig.store.upsert(web_slice("127.0.30.1", "127.0.30.2"))

    async def added() -> bool:
        return await rig.servers(WEB) == {"127.0.30.1:8080", "127.0.30.2:8080"}

    await wait_for(added, what="the new server through the Runtime API")
    running = rig.reconciler.running
    assert running is not None and WEB in running.touched
    assert running.unverified_since is not None
    assert rig.count("slb_haproxy_runtime_operations_total", op="add") == 1

    async def verified() -> bool:
        now = rig.reconciler.running
        return now is not None and now.unverified_since is None

    # Quiet for VERIFY_QUIET: a full sync checks the fast path's work, and agrees.
    await wait_for(verified, what="the full sync that checks the fast path")
    assert rig.reloads() == 1
    assert await added()


async def test_a_burst_of_endpoint_changes_is_coalesced(rig: Rig) -> None:
    await started(rig, service("web", 80), web_slice("127.0.31.1"))
    syncs = rig.count("slb_syncs_total")
    for i in range(2, 202):
        rig.store.upsert(web_slice(*(f"127.0.31.{n}" for n in range(1, i))))
    want = {f"127.0.31.{n}:8080" for n in range(1, 201)}

    async def all_there() -> bool:
        return await rig.servers(WEB) == want

    await wait_for(all_there, what="200 servers")
    assert rig.count("slb_syncs_total") - syncs < 20  # 200 changes, a few syncs
    assert rig.reloads() == 1


async def test_a_service_change_reloads_with_a_typed_reason(rig: Rig) -> None:
    await started(rig, service("web", 80), web_slice("127.0.32.1"))
    rig.store.upsert(service("api", 80))
    rig.store.upsert(endpoint_slice("api", "127.0.32.9"))

    async def reloaded() -> bool:
        return rig.count("slb_haproxy_reloads_total", reason="added") == 1

    await wait_for(reloaded, what="a reload counted as 'added'")
    assert await rig.servers("http_default_api_80") == {"127.0.32.9:8080"}


async def test_a_slow_full_sync_never_holds_an_endpoint_change_back(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a full sync computes (held here in its worker thread), endpoint changes of
    existing Services are applied; the full sync then keeps them (catch-up)."""
    await started(rig, service("web", 80), web_slice("127.0.33.1"))
    entered, release = threading.Event(), threading.Event()

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(reconciler_module, "prepare", held)
    rig.store.upsert(service("api", 80))  # structural: a full sync, held
    await asyncio.to_thread(entered.wait, 20)
    rig.store.upsert(web_slice("127.0.33.1", "127.0.33.2"))

    async def fast() -> bool:
        return await rig.servers(WEB) == {"127.0.33.1:8080", "127.0.33.2:8080"}

    try:
        await wait_for(fast, what="the endpoint change while the full sync is held")
        assert rig.reloads() == 1
    finally:
        release.set()

    async def api_added() -> bool:
        return rig.count("slb_haproxy_reloads_total", reason="added") == 1

    await wait_for(api_added, what="the held full sync to finish")
    assert await fast()  # the reload kept the endpoint change made meanwhile


async def test_new_settings_reload_once_with_the_settings_reason(rig: Rig) -> None:
    await started(rig, service("web", 80), web_slice("127.0.34.1"))
    master = rig.haproxy.pid
    leastconn = dataclasses.replace(rig.settings, balance_algorithm=Algorithm.LEASTCONN)
    failure = await rig.reconciler.update_settings(leastconn, why="settings changed: algorithm")
    assert failure is None
    assert rig.count("slb_haproxy_reloads_total", reason=ReasonKind.SETTINGS.value) == 1
    assert rig.reloads() == 2  # one reason for every backend's new algorithm
    assert "balance leastconn" in rig.settings.config_path.read_text()
    assert rig.haproxy.pid == master  # a reload, not a restart
    # Settings that render the same config reload nothing.
    same = dataclasses.replace(leastconn, dry=True)
    assert await rig.reconciler.update_settings(same, why="settings changed: dry") is None
    assert rig.reloads() == 2


async def test_settings_haproxy_refuses_are_rolled_back(rig: Rig) -> None:
    await started(rig, service("web", 80), web_slice("127.0.35.1"))
    broken = dataclasses.replace(
        rig.settings,
        balance_algorithm=Algorithm.LEASTCONN,
        template=builtin_template() + "\nbackend broken\n    no-such-keyword\n",
    )
    failure = await rig.reconciler.update_settings(broken, why="settings changed: template")
    assert failure is not None and "haproxy -c refused" in failure
    assert rig.reloads() == 1
    # The settings before serve on: the next change renders with them.
    rig.store.upsert(service("api", 80))

    async def added() -> bool:
        return rig.count("slb_haproxy_reloads_total", reason="added") == 1

    await wait_for(added, what="the next reload, with the settings before")
    text = rig.settings.config_path.read_text()
    assert "no-such-keyword" not in text and "balance leastconn" not in text
