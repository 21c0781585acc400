"""`make demo`: a few demo backends on 127.0.0.0/8 and the controller in front of them.

The backends stand in for pods: each HTTP one answers with its own name and the path
and Host it received, so you can see balancing, prefix stripping and Host routing with
curl; the TCP one echoes lines back. The tests use the same servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

HTTP_PORT = 8080
STATS_PORT = 1936
HEALTHZ_PORT = 8081
TCP_PORT = 9000


def echo_body(name: str, request: web.Request) -> str:
    return f"backend={name} path={request.path_qs} host={request.headers.get('Host', '')}\n"


async def start_http_backend(name: str, host: str, port: int) -> web.AppRunner:
    """An HTTP server that says who it is; stop it with `await runner.cleanup()`."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=echo_body(name, request))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, host=host, port=port, reuse_address=True).start()
    return runner


async def start_tcp_backend(name: str, host: str, port: int) -> asyncio.Server:
    """A TCP server that echoes each line back, prefixed with its name."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                writer.write(f"{name}: ".encode() + line)
                await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host=host, port=port, reuse_address=True)


@dataclass(frozen=True)
class DemoBackend:
    name: str
    address: str
    port: int
    tcp: bool = False


DEMO_BACKENDS = (
    DemoBackend("web-1", "127.0.1.1", 9376),
    DemoBackend("web-2", "127.0.1.2", 9376),
    DemoBackend("api-1", "127.0.1.3", 9376),
    DemoBackend("echo-1", "127.0.1.4", 9000, tcp=True),
)


def _banner(password: str) -> str:
    base = f"http://127.0.0.1:{HTTP_PORT}"
    return f"""
service-loadbalancer demo is up. Try, in another terminal:

  curl {base}/web                    # default/web, balanced over web-1 and web-2
  curl {base}/web/hello?x=1          # the /web prefix is stripped: the pod sees /hello?x=1
  curl {base}/default/web            # the same Service by namespace/name
  curl {base}/shop/api:8080/items    # Service api in namespace shop, port 8080
  curl -H 'Host: api.example.com' {base}/items   # Host routing (lb.host)
  curl -H 'Host: demo.example' {base}/shop/cart  # an Ingress rule (examples/manifests/ingress.yaml)
  curl -i {base}/nothing-here        # no route: the 404 default backend
  curl -u admin:{password} http://127.0.0.1:{STATS_PORT}/   # HAProxy stats page
  curl http://127.0.0.1:{HEALTHZ_PORT}/healthz              # controller health
  python3 -c "import socket; s=socket.create_connection(('127.0.0.1',{TCP_PORT})); \\
s.sendall(b'hi\\n'); print(s.recv(100))"   # TCP service echo (--tcp-services echo:{TCP_PORT})

Edit or add files in examples/manifests/ and the change is live within a second
(try scaling web: remove an address from examples/manifests/web.yaml).
Ctrl-C stops everything.
"""


async def demo(root: Path) -> int:
    runners = []
    servers = []
    for b in DEMO_BACKENDS:
        if b.tcp:
            servers.append(await start_tcp_backend(b.name, b.address, b.port))
        else:
            runners.append(await start_http_backend(b.name, b.address, b.port))
    password = secrets.token_urlsafe(9)
    env = dict(os.environ, SLB_STATS_USER="admin", SLB_STATS_PASSWORD=password)
    run_dir = root / ".demo" / "run"
    argv = [
        sys.executable, "-m", "service_loadbalancer.cli",
        "--manifests", str(root / "examples" / "manifests"),
        "--http-port", str(HTTP_PORT),
        "--stats-port", str(STATS_PORT),
        "--healthz-port", str(HEALTHZ_PORT),
        "--bind-address", "127.0.0.1",
        "--tcp-services", f"echo:{TCP_PORT}",
        "--run-dir", str(run_dir),
        "--syslog",
    ]  # fmt: skip
    controller = await asyncio.create_subprocess_exec(*argv, env=env)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if await _wait_healthy(controller):
        print(_banner(password), flush=True)
    waiter = asyncio.create_task(controller.wait())
    await asyncio.wait([waiter, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    if controller.returncode is None:
        controller.send_signal(signal.SIGTERM)
    code = await waiter
    for runner in runners:
        await runner.cleanup()
    for server in servers:
        server.close()
    return 0 if stop.is_set() else code


async def _wait_healthy(controller: asyncio.subprocess.Process) -> bool:
    """Poll /healthz until it answers 200 (or the controller exits)."""
    for _ in range(200):
        if controller.returncode is not None:
            return False
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", HEALTHZ_PORT)
            writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return True
        await asyncio.sleep(0.1)
    return False


def main() -> int:
    root = Path(__file__).resolve().parents[2]
    if not (root / "examples" / "manifests").is_dir():
        root = Path.cwd()
    return asyncio.run(demo(root))


if __name__ == "__main__":
    sys.exit(main())
