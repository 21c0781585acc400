"""The load balancer's own lifecycle, end to end: a graceful stop on SIGTERM, and a new
controller adopting the HAProxy an earlier one left serving. Real controller, real
HAProxy, real backends on 127.0.0.0/8, a client loop running throughout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from harness import Controller, request, wait_for, write_manifest
from objects import service, slices


@dataclass
class HeldBackend:
    """A pod whose `/held` requests wait until released; everything else answers at once."""

    held: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None

    async def start(self, address: str) -> tuple[str, int]:
        async def handle(request: web.Request) -> web.Response:
            if request.path == "/held":
                self.held += 1
                await self.release.wait()
            return web.Response(text=f"backend=pod path={request.path}\n")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, host=address, port=0).start()
        host, port = self.runner.addresses[0][:2]
        return str(host), int(port)


@pytest.fixture
async def pod() -> AsyncIterator[HeldBackend]:
    backend = HeldBackend()
    yield backend
    backend.release.set()
    if backend.runner is not None:
        await backend.runner.cleanup()


@dataclass
class Load:
    """Clients sending requests back to back, each on a new connection, until stopped.

    A refused connection was never accepted (HAProxy no longer listens): counted apart.
    Anything else that is not a 200 from the pod is a lost request."""

    port: int
    ok: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, clients: int = 4) -> None:
        self.tasks = [
            asyncio.create_task(self._client(), name=f"client-{i}") for i in range(clients)
        ]

    async def stop(self) -> None:
        self.done.set()
        await asyncio.gather(*self.tasks)

    async def _client(self) -> None:
        while not self.done.is_set():
            try:
                answer = await request(self.port, "/app/x")
            except ConnectionRefusedError:
                self.refused += 1
                await asyncio.sleep(0.01)
                continue
            except (OSError, ValueError, TimeoutError) as err:
                self.failures.append(repr(err))
                continue
            if answer.status == 200 and answer.body.startswith("backend=pod"):
                self.ok += 1
            else:
                self.failures.append(f"{answer.status} {answer.body[:80]!r}")


def _app(c: Controller, pod: tuple[str, int]) -> None:
    c.manifests.mkdir(parents=True, exist_ok=True)
    write_manifest(c.manifests / "app.yaml", [service("app", 80), *slices("app", [pod])])


async def _refused(port: int) -> bool:
    try:
        await request(port, "/app/x", limit=2.0)
    except ConnectionRefusedError:
        return True
    return False


async def test_sigterm_stops_gracefully_under_load(tmp_path: Path, pod: HeldBackend) -> None:
    """/healthz 503 first while everything still serves, then a soft stop that lets the
    requests in flight finish; exit 0 and no HAProxy left."""
    address = await pod.start("127.0.40.1")
    c = Controller(tmp_path, extra_args=["--shutdown-grace", "5"])
    _app(c, address)
    load = Load(c.http_port)
    c.start()
    try:
        await c.wait_healthy()
        load.start()
        await wait_for(holds(lambda: load.ok >= 50), what="requests before SIGTERM")
        # Requests in flight across the whole stop: the pod holds them until released.
        in_flight = [
            asyncio.create_task(request(c.http_port, "/app/held", limit=60.0)) for _ in range(3)
        ]
        await wait_for(holds(lambda: pod.held == 3), what="held requests at the pod")

        assert c.proc is not None
        c.proc.send_signal(signal.SIGTERM)
        await wait_for(_status_is(c, 503), what="/healthz 503 after SIGTERM")
        # Still serving during the grace: new requests are accepted and answered.
        after_503 = load.ok
        await wait_for(holds(lambda: load.ok >= after_503 + 20), what="requests during grace")
        # The node is out of rotation: the clients send no more.
        await load.stop()
        assert load.failures == []

        # The soft stop: no more listening, but the requests in flight go on.
        await wait_for(lambda: _refused(c.http_port), what="HAProxy's listeners closed")
        assert await c.healthz() == 503
        assert not any(task.done() for task in in_flight)
        assert c.proc.poll() is None
        pod.release.set()
        answers = await asyncio.gather(*in_flight)
        assert [a.status for a in answers] == [200, 200, 200]
        assert await asyncio.to_thread(c.proc.wait, 30) == 0
    finally:
        load.done.set()
        pod.release.set()
        c.stop()
    assert c.haproxy_pids() == []
    log = c.log()
    assert "Traceback" not in log
    assert "soft-stopping HAProxy" in log


async def test_second_signal_cuts_the_grace_short(tmp_path: Path, pod: HeldBackend) -> None:
    address = await pod.start("127.0.40.2")
    c = Controller(tmp_path, extra_args=["--shutdown-grace", "600"])
    _app(c, address)
    c.start()
    try:
        await c.wait_healthy()
        assert c.proc is not None
        c.proc.send_signal(signal.SIGTERM)
        await wait_for(_status_is(c, 503), what="/healthz 503 after SIGTERM")
        c.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(c.proc.wait, 30) == 0
    finally:
        c.stop()
    assert c.haproxy_pids() == []


def holds(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A plain condition as `wait_for` takes it."""

    async def check() -> bool:
        return condition()

    return check


def _status_is(c: Controller, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await c.healthz() == status

    return check


def _master_pid(c: Controller) -> int:
    return int((c.run_dir / "haproxy.pid").read_text().strip())


@pytest.mark.parametrize("changed", [False, True], ids=["same-config", "changed-meanwhile"])
async def test_restarted_controller_adopts_the_running_haproxy(
    tmp_path: Path, pod: HeldBackend, changed: bool
) -> None:
    """SIGKILL of the controller only: its HAProxy serves on; a new controller on the same
    run directory adopts that master (same pid, no failed request) and supervises it.
    Its first sync reloads only if the config changed while no controller ran."""
    address = await pod.start("127.0.40.3" if changed else "127.0.40.4")
    first = Controller(tmp_path)
    _app(first, address)
    load = Load(first.http_port)
    first.start()
    second: Controller | None = None
    try:
        await first.wait_healthy()
        master = _master_pid(first)
        load.start()
        await wait_for(holds(lambda: load.ok >= 50), what="requests before the crash")
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait()
        crashed_at = load.ok
        await wait_for(holds(lambda: load.ok >= crashed_at + 50), what="HAProxy serving alone")
        if changed:  # a Service added while no controller watches
            write_manifest(first.manifests / "more.yaml", [service("more", 80)])

        second = Controller(
            tmp_path,
            http_port=first.http_port,
            stats_port=first.stats_port,
            https_port=first.https_port,
        )
        second.start()
        await second.wait_healthy()
        adopted_at = load.ok
        await wait_for(holds(lambda: load.ok >= adopted_at + 50), what="requests after adoption")
        assert _master_pid(second) == master
        assert master in second.haproxy_pids()
        assert f"adopted the running HAProxy: master {master}" in second.log()
        if changed:
            assert "reloading HAProxy:" in second.log()
            assert (await second.get("/more"))[0] == 503  # routed, no endpoints
        else:
            assert "nothing to reload" in second.log()
            assert "reloading HAProxy:" not in second.log()
        await load.stop()
        assert load.failures == []
        assert load.refused == 0

        # Supervised like our own: killed, it is started again.
        os.kill(master, signal.SIGKILL)

        async def restarted() -> bool:
            return "\nslb_haproxy_restarts_total 1.0\n" in await second.metrics()

        await wait_for(restarted, what="the adopted master restarted")
        assert _master_pid(second) != master
        assert (await second.get("/app/x"))[0] == 200
    finally:
        load.done.set()
        with contextlib.suppress(Exception):
            await load.stop()
        if second is not None:
            assert second.stop() == 0
        first.stop()
    assert first.haproxy_pids() == []
