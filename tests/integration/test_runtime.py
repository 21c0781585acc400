"""Endpoint changes without reloads, end to end: the real controller, the real HAProxy,
real backends on 127.0.0.0/8. What HAProxy runs is read back from its Runtime API
(`show servers state`) and the master's reload counter (`show proc`)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
from aiohttp import web
from harness import Backends, Controller, backend_names, running, wait_for, write_manifest
from objects import service, slices

from service_loadbalancer.haproxy.process import HAProxyProcess
from service_loadbalancer.haproxy.runtime import RuntimeApi, ServerState

BACKEND = "http_default_app_80"


def master(c: Controller) -> HAProxyProcess:
    """Only to talk to the controller's HAProxy master CLI (it is never started here)."""
    return HAProxyProcess(
        haproxy_bin="haproxy", config_path=c.run_dir / "haproxy.cfg", run_dir=c.run_dir
    )


def runtime(c: Controller) -> RuntimeApi:
    return RuntimeApi(socket_path=c.run_dir / "haproxy.sock")


async def servers(c: Controller, backend: str = BACKEND) -> list[ServerState]:
    return await runtime(c).servers_state([backend])


def endpoint(row: ServerState) -> tuple[str, int]:
    return row.address, row.port


async def serves_exactly(c: Controller, wanted: set[tuple[str, int]]) -> bool:
    """HAProxy has every wanted server ready and no other server ready."""
    ready = {endpoint(r) for r in await servers(c) if r.ready}
    return ready == wanted


async def names_of(c: Controller, path: str, n: int) -> list[str]:
    bodies = []
    for _ in range(n):
        status, body, _ = await c.get(path)
        assert status == 200, body
        bodies.append(body)
    return backend_names(bodies)


def app_manifest(c: Controller, endpoints: list[tuple[str, int]], **kw: str) -> None:
    annotations = {f"serviceloadbalancer/{k}": v for k, v in kw.items()}
    write_manifest(
        c.manifests / "app.yaml",
        [
            service("app", 80, annotations=annotations or None,
                    session_affinity="ClientIP" if annotations else None),
            *slices("app", endpoints),
        ],
    )  # fmt: skip


async def test_endpoint_churn_never_reloads(tmp_path: Path, backends: Backends) -> None:
    pool = [await backends.http(f"b{i}", f"127.0.10.{i}") for i in range(1, 7)]
    names = {ep: f"b{i}" for i, ep in enumerate(pool, start=1)}
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    app_manifest(c, pool[:2])
    with running(c):
        await c.wait_healthy()
        before = await master(c).show_proc()
        # Grow, shrink, replace, empty, and bring back servers that are still draining.
        for wanted in (pool[:3], pool[1:4], pool[4:], [], pool[:1], pool[:6], pool[2:3], pool):
            app_manifest(c, wanted)
            await wait_for(lambda w=set(wanted): serves_exactly(c, w), what=f"servers {wanted}")  # type: ignore[misc]
            if wanted:
                # Round robin over exactly the new endpoints, two turns.
                got = await names_of(c, "/app", 2 * len(wanted))
                assert sorted(set(got)) == sorted(names[e] for e in wanted)
            else:
                assert (await c.get("/app"))[0] == 503
        after = await master(c).show_proc()
        assert after.reloads == before.reloads
        assert after.workers == before.workers
        text = await c.metrics()
        assert 'slb_haproxy_runtime_operations_total{op="add"}' in text
        assert 'slb_haproxy_reloads_total{reason="initial config"} 1.0' in text
        assert "endpoints changed" not in text
        # The config on disk gets the servers HAProxy runs (in the background, after the
        # runtime operations), for a later reload or restart.

        async def on_disk() -> bool:
            config = (c.run_dir / "haproxy.cfg").read_text()
            return all(f"{host}:{port}" in config for host, port in pool)

        await wait_for(on_disk, what="the servers in the config on disk")


async def test_removed_server_finishes_its_request(tmp_path: Path, backends: Backends) -> None:
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(text="backend=slow finished")

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host="127.0.11.1", port=0)
    await site.start()
    slow_ep = runner.addresses[0][:2]
    fast_ep = await backends.http("fast", "127.0.11.2")
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    app_manifest(c, [(str(slow_ep[0]), int(slow_ep[1]))])
    try:
        with running(c):
            await c.wait_healthy()
            in_flight = asyncio.create_task(c.get("/app/long"))
            await asyncio.wait_for(arrived.wait(), 20)
            app_manifest(c, [fast_ep])
            await wait_for(lambda: serves_exactly(c, {fast_ep}), what="fast ready")

            async def draining() -> bool:
                rows = {endpoint(r): r for r in await servers(c)}
                slow_row = rows.get((str(slow_ep[0]), int(slow_ep[1])))
                return slow_row is not None and slow_row.drain

            await wait_for(draining, what="slow server draining")
            assert await names_of(c, "/app", 3) == ["fast"] * 3
            assert not in_flight.done()
            release.set()
            status, body, _ = await in_flight
            assert (status, body) == (200, "backend=slow finished")

            async def deleted() -> bool:
                return [endpoint(r) for r in await servers(c)] == [fast_ep]

            await wait_for(deleted, what="the drained server deleted")
            assert 'op="delete"' in await c.metrics()
    finally:
        release.set()
        await runner.cleanup()


async def test_reload_and_restart_keep_servers_and_state(
    tmp_path: Path, backends: Backends
) -> None:
    a = await backends.http("a", "127.0.12.1")
    b = await backends.http("b", "127.0.12.2")
    other = await backends.http("o", "127.0.12.3")
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    app_manifest(c, [a])
    with running(c):
        await c.wait_healthy()
        app_manifest(c, [a, b])  # b exists only through the Runtime API so far
        await wait_for(lambda: serves_exactly(c, {a, b}), what="b added")
        # An operator drains `a` by hand: a reload must not undo it.
        name_a = next(r.name for r in await servers(c) if endpoint(r) == a)
        await runtime(c).execute([f"set server {BACKEND}/{name_a} state drain"])
        before = (await master(c).show_proc()).reloads
        write_manifest(c.manifests / "o.yaml", [service("o", 80), *slices("o", [other])])

        async def reloaded() -> bool:
            return (await master(c).show_proc()).reloads > before and (await c.get("/o"))[0] == 200

        await wait_for(reloaded, what="reload for the new Service")
        rows = {endpoint(r): r for r in await servers(c)}
        assert rows[a].drain
        assert rows[b].ready
        assert await names_of(c, "/app", 3) == ["b"] * 3
        # Killed, HAProxy comes back with the same servers (from the config on disk).
        for pid in c.haproxy_pids():
            os.kill(pid, signal.SIGKILL)

        async def back() -> bool:
            return (await c.get("/app"))[0] == 200 and {endpoint(r) for r in await servers(c)} == {
                a,
                b,
            }

        await wait_for(back, what="HAProxy back after SIGKILL with a and b")


async def test_cookie_backend_reloads_with_a_reason(tmp_path: Path, backends: Backends) -> None:
    a = await backends.http("a", "127.0.13.1")
    b = await backends.http("b", "127.0.13.2")
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    app_manifest(c, [a], **{"lb.cookie-sticky-session": "true"})
    with running(c):
        await c.wait_healthy()
        before = (await master(c).show_proc()).reloads
        app_manifest(c, [a, b], **{"lb.cookie-sticky-session": "true"})
        await wait_for(lambda: serves_exactly(c, {a, b}), what="b added")
        assert (await master(c).show_proc()).reloads == before + 1
        assert "cookie stickiness needs a reload" in c.log()
        config = (c.run_dir / "haproxy.cfg").read_text()
        assert "cookie s_127_0_13_2" in config


async def test_drain_timeout_cuts_and_deletes(tmp_path: Path, backends: Backends) -> None:
    arrived = asyncio.Event()
    never = asyncio.Event()

    async def stuck(_: web.Request) -> web.Response:
        arrived.set()
        await never.wait()
        return web.Response(text="unreachable")

    app = web.Application()
    app.router.add_get("/{tail:.*}", stuck)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, host="127.0.14.1", port=0).start()
    stuck_ep = (str(runner.addresses[0][0]), int(runner.addresses[0][1]))
    fast_ep = await backends.http("fast", "127.0.14.2")
    c = Controller(tmp_path, extra_args=["--drain-timeout", "0.5"])
    c.manifests.mkdir(parents=True)
    app_manifest(c, [stuck_ep])
    try:
        with running(c):
            await c.wait_healthy()
            in_flight = asyncio.create_task(c.get("/app/hang"))
            await asyncio.wait_for(arrived.wait(), 20)
            app_manifest(c, [fast_ep])

            async def deleted() -> bool:
                return [endpoint(r) for r in await servers(c)] == [fast_ep]

            await wait_for(deleted, what="the stuck server cut and deleted")
            # Its session was cut with nothing answered yet: the GET (idempotent, empty
            # response) is retried on the other pod; at worst the client gets an error
            # answer or a closed connection, never the stuck pod's answer.
            try:
                status, body, _ = await asyncio.wait_for(in_flight, 20)
                assert status >= 500 or body.startswith("backend=fast"), (status, body)
            except aiohttp.ClientError:
                pass
            assert "drain timeout: cutting 1 session(s)" in c.log()
    finally:
        never.set()
        await runner.cleanup()
