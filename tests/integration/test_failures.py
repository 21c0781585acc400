"""A data plane that absorbs failures, end to end: the real controller and HAProxy,
real pods on 127.0.0.0/8, and pods that fail the ways pods do (nothing listening, a
reset before or in the middle of a response, all of them gone at once).

What must hold: a connection that fails is retried on another pod, so no request
fails while one pod answers; a request that reached a pod is sent again only if its
method is idempotent and the pod answered nothing; a pod that refuses connections is
DOWN on the stats page within seconds and back once it listens again."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import socket
import struct
from collections import Counter
from pathlib import Path

import aiohttp
from harness import Backends, Controller, backend_names, free_port, running, wait_for
from harness import write_manifest as write
from objects import service, slices

from service_loadbalancer.demo import start_http_backend

BACKEND = "http_default_app_80"


def app_manifest(c: Controller, endpoints: list[tuple[str, int]]) -> None:
    c.manifests.mkdir(parents=True, exist_ok=True)
    write(c.manifests / "app.yaml", [service("app", 80), *slices("app", endpoints)])


async def stats(c: Controller) -> dict[tuple[str, str], str]:
    """(backend, server) -> status, from the stats page's CSV."""
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{c.stats_port}/;csv") as r,
    ):
        text = await r.text()
    rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
    return {(row["pxname"], row["svname"]): row["status"] for row in rows}


async def get_ok(c: Controller, path: str = "/app/") -> tuple[bool, str]:
    """One GET on a new connection: whether it answered 200, and the pod's name."""
    try:
        status, body, _ = await c.get(path)
    except aiohttp.ClientError:
        return False, ""
    return status == 200, backend_names([body])[0] if status == 200 else ""


async def test_dead_pod_costs_no_request_goes_down_and_comes_back(
    tmp_path: Path, backends: Backends
) -> None:
    a = await backends.http("a", "127.0.60.1")
    b = await backends.http("b", "127.0.60.2")
    dead = ("127.0.60.3", free_port("127.0.60.3"))  # listed, ready, nothing listening
    c = Controller(tmp_path)
    app_manifest(c, [a, b, dead])
    with running(c):
        await c.wait_healthy()
        results = [await get_ok(c) for _ in range(60)]
        assert [ok for ok, _ in results].count(False) == 0
        assert {name for _, name in results} == {"a", "b"}
        server = f"s_127_0_60_3_{dead[1]}"

        async def down() -> bool:
            await get_ok(c)  # traffic is what passive health observes
            return (await stats(c))[(BACKEND, server)] == "DOWN"

        await wait_for(down, within=10, what="the dead pod DOWN on the stats page")
        assert f'slb_server_ejections_total{{backend="{BACKEND}"}}' in await c.metrics()

        # It starts listening: traffic finds it again without any change in Kubernetes.
        backends.runners.append(await start_http_backend("revived", *dead))

        async def back() -> bool:
            return (await get_ok(c))[1] == "revived"

        await wait_for(back, within=30, what="the revived pod answering again")
        assert (await stats(c))[(BACKEND, server)] == "UP"


async def test_tcp_dead_pod_costs_no_connection(tmp_path: Path, backends: Backends) -> None:
    a = await backends.tcp("a", "127.0.61.1")
    dead = ("127.0.61.2", free_port("127.0.61.2"))
    port = free_port()
    c = Controller(tmp_path, extra_args=["--tcp-services", f"app:{port}"])
    c.manifests.mkdir(parents=True)
    write(c.manifests / "app.yaml", [service("app", port), *slices("app", [a, dead])])
    with running(c):
        await c.wait_healthy()

        async def echo() -> str:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            try:
                writer.write(b"hello\n")
                return (await asyncio.wait_for(reader.readline(), 10)).decode()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        async def listening() -> bool:
            return await echo() == "a: hello\n"

        await wait_for(listening, what="the TCP listener")
        answers = [await echo() for _ in range(30)]
        assert answers == ["a: hello\n"] * 30
        await wait_for(backends.tcp_idle, what="the TCP sessions closed")


class ResettingPod:
    """A pod that reads a whole request, then resets the connection: before any byte of
    a response on `/empty`, after the head and part of the body on `/partial`. It counts
    what it received, by method."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.server: asyncio.Server | None = None

    async def start(self, address: str) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._handle, host=address, port=0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, path = head.split()[:2]
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.received[method] += 1
            if path.endswith("/partial"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with SO_LINGER 0: a reset, not a FIN

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_requests_that_reached_a_pod_are_not_replayed_unless_idempotent(
    tmp_path: Path, backends: Backends
) -> None:
    received: Counter[str] = Counter()

    async def counting(request: aiohttp.web.Request) -> aiohttp.web.Response:
        await request.read()
        received[request.method] += 1
        return aiohttp.web.Response(text="backend=good\n")

    app = aiohttp.web.Application()
    app.router.add_route("*", "/{tail:.*}", counting)
    runner = aiohttp.web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, host="127.0.62.1", port=0).start()
    backends.runners.append(runner)
    good = (str(runner.addresses[0][0]), int(runner.addresses[0][1]))
    resetting = ResettingPod()
    bad = await resetting.start("127.0.62.2")
    c = Controller(tmp_path)
    app_manifest(c, [good, bad])
    try:
        with running(c):
            await c.wait_healthy()
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def send(method: str, path: str) -> bool:
                    url = f"http://127.0.0.1:{c.http_port}/app{path}"
                    try:
                        async with session.request(method, url, data=b"x" * 100) as r:
                            await r.read()
                            return r.status == 200
                    except aiohttp.ClientError:
                        return False

                for path in ("/empty", "/partial"):
                    before_bad, before_good = resetting.received["POST"], received["POST"]
                    outcomes = [await send("POST", path) for _ in range(6)]
                    # Each POST reached exactly one pod, once: the good pod answered it,
                    # or the resetting one took it and the client got an error.
                    assert received["POST"] - before_good == outcomes.count(True), path
                    assert resetting.received["POST"] - before_bad == outcomes.count(False), path
                    assert outcomes.count(False) >= 2, path  # round robin reached both
                # An idempotent request the pod answered nothing to goes to the other pod.
                before = resetting.received["GET"]
                assert all([await send("GET", "/empty") for _ in range(6)])
                assert resetting.received["GET"] > before
                # Once the head went out, nothing can be retried: the client sees the cut.
                results = [await send("GET", "/partial") for _ in range(6)]
                assert results.count(False) >= 2
    finally:
        resetting.close()


async def test_every_pod_down_gives_503_then_recovers(tmp_path: Path, backends: Backends) -> None:
    dead = [(f"127.0.63.{i}", free_port(f"127.0.63.{i}")) for i in (1, 2)]
    c = Controller(tmp_path)
    app_manifest(c, dead)
    with running(c):
        await c.wait_healthy()
        statuses = [(await c.get("/app/"))[0] for _ in range(10)]
        assert set(statuses) == {503}

        async def forced() -> bool:
            await c.get("/app/")
            return f'slb_backend_all_down_forced_up_total{{backend="{BACKEND}"}}' in (
                await c.metrics()
            )

        # Every pod looked down: the controller forced them back so requests keep trying.
        await wait_for(forced, what="the emptied backend forced back up")
        backends.runners.append(await start_http_backend("back", *dead[1]))

        async def recovered() -> bool:
            return (await get_ok(c))[1] == "back"

        await wait_for(recovered, within=30, what="requests answered by the pod that came back")
