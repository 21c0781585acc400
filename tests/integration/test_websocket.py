"""WebSocket end to end with a real client (the `websockets` package): an upgrade
through a stripped prefix, kept open across a reload of the load balancer by the old
worker, and cut only by `timeout tunnel` (set in the --cfg file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from harness import DEADLINE, Backends, Controller, running, wait_for, write_manifest
from objects import service, slices
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


async def echo(ws: ClientConnection, text: str) -> str:
    await ws.send(text)
    answer = await ws.recv(decode=True)
    assert isinstance(answer, str)
    return answer


async def test_websocket_through_a_prefix_survives_a_reload(
    tmp_path: Path, backends: Backends
) -> None:
    pod = await backends.slow("ws-1", "127.0.13.1", delay=0)
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "chat.yaml", [service("chat", 80), *slices("chat", [pod])])
    with running(c):
        await c.wait_healthy()
        # The pod serves /ws: the prefix /chat is stripped on the way.
        url = f"ws://127.0.0.1:{c.http_port}/chat/ws"
        async with connect(url, open_timeout=DEADLINE, close_timeout=2) as ws:
            assert await echo(ws, "before") == "ws-1: before"
            first = await c.show_proc()

            # A Service added is a reload: a new worker takes the listeners, the old
            # one keeps the connections it has, this WebSocket among them.
            other = await backends.http("other-1", "127.0.13.2")
            write_manifest(
                c.manifests / "other.yaml", [service("other", 80), *slices("other", [other])]
            )

            async def reloaded() -> bool:
                status = await c.show_proc()
                return status.reloads > first.reloads and bool(status.old_workers)

            await wait_for(reloaded, what="a reload with an old worker left")
            status, _, _ = await c.get("/other/x")
            assert status == 200
            assert await echo(ws, "after the reload") == "ws-1: after the reload"
            assert set(first.workers) <= set((await c.show_proc()).old_workers)
            # A new WebSocket goes to the new worker, alongside.
            async with connect(url, open_timeout=DEADLINE, close_timeout=2) as fresh:
                assert await echo(fresh, "new") == "ws-1: new"
            assert await echo(ws, "still") == "ws-1: still"

        # Once its last connection is closed, the old worker goes.
        async def old_gone() -> bool:
            return not set(first.workers) & set((await c.show_proc()).old_workers)

        await wait_for(old_gone, what="the old worker gone with its last WebSocket")


async def test_idle_websocket_is_cut_by_timeout_tunnel(tmp_path: Path, backends: Backends) -> None:
    """`timeoutTunnel` in the --cfg file; the client and server timeouts (60 s) are
    much longer, so the tunnel timeout is what closes the idle connection."""
    pod = await backends.slow("ws-2", "127.0.13.3", delay=0)
    cfg = tmp_path / "lb.yaml"
    cfg.write_text("timeoutTunnel: 1s\n", encoding="utf-8")
    c = Controller(tmp_path, extra_args=["--cfg", str(cfg)])
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "chat.yaml", [service("chat", 80), *slices("chat", [pod])])
    with running(c):
        await c.wait_healthy()
        assert "    timeout tunnel 1s\n" in (c.run_dir / "haproxy.cfg").read_text()
        url = f"ws://127.0.0.1:{c.http_port}/chat/ws"
        async with connect(url, open_timeout=DEADLINE, close_timeout=2, ping_interval=None) as ws:
            assert await echo(ws, "hello") == "ws-2: hello"
            with pytest.raises(ConnectionClosed):
                # Nothing comes: the tunnel is cut when idle (well within the deadline).
                await asyncio.wait_for(ws.recv(decode=True), DEADLINE)
