"""Helpers for integration tests: free ports, condition waits, manifest files, backends,
and the real controller as a subprocess in front of the real HAProxy. The Kubernetes
objects come from `tests/objects.py`, which the unit tests share.

Everything binds to 127.0.0.0/8 and asks the OS for ports, so two test runs can go at
once. Waits poll a condition until a deadline; nothing sleeps a fixed time to be safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import trustme
import yaml
from aiohttp import web

from service_loadbalancer.demo import echo_body, start_http_backend
from service_loadbalancer.haproxy.master import ProcStatus
from service_loadbalancer.haproxy.process import HAProxyProcess

DEADLINE = 20.0
FORWARDED = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Prefix")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], *, within: float = DEADLINE, what: str = ""
) -> None:
    """Poll `predicate` until it is true; fail with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(Exception):
            if await predicate():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------- manifests


def write_manifest(path: Path, objects: list[dict[str, Any]]) -> None:
    """Write atomically, as an editor or kubectl would leave a whole file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- backends


@dataclass
class Backends:
    """Real HTTP and TCP servers on distinct loopback addresses with OS-given ports."""

    runners: list[web.AppRunner] = field(default_factory=list)
    servers: list[asyncio.Server] = field(default_factory=list)
    open_tcp: int = 0

    async def http(self, name: str, address: str) -> tuple[str, int]:
        runner = await start_http_backend(name, address, 0)
        self.runners.append(runner)
        host, port = runner.addresses[0][:2]
        return str(host), int(port)

    async def headers(self, name: str, address: str) -> tuple[str, int]:
        """An HTTP server that answers with its path and the X-Forwarded-* headers it
        received (only those present; several lines of one joined with ", ", as HTTP
        defines them to be one list)."""

        async def handle(request: web.Request) -> web.Response:
            seen = {
                h: ", ".join(request.headers.getall(h)) for h in FORWARDED if h in request.headers
            }
            return web.json_response({"backend": name, "path": request.path_qs, **seen})

        return await self._serve(handle, address)

    async def methods(self, name: str, address: str) -> tuple[str, int]:
        """An HTTP server that answers with its name, the request's method, path and
        Host, as `echo_body` does with the method added."""

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            return web.Response(
                text=f"backend={name} method={request.method} path={request.path_qs} "
                f"host={request.headers.get('Host', '')} body={len(body)}\n"
            )

        return await self._serve(handle, address)

    async def slow(self, name: str, address: str, delay: float) -> tuple[str, int]:
        """An HTTP server that answers after `delay` seconds, and echoes WebSocket
        messages on /ws at once."""

        async def handle(request: web.Request) -> web.StreamResponse:
            if request.path == "/ws":
                ws = web.WebSocketResponse()
                await ws.prepare(request)
                async for message in ws:
                    await ws.send_str(f"{name}: {message.data}")
                return ws
            await asyncio.sleep(delay)
            return web.Response(text=echo_body(name, request))

        return await self._serve(handle, address)

    async def _serve(
        self, handle: Callable[[web.Request], Awaitable[web.StreamResponse]], address: str
    ) -> tuple[str, int]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, host=address, port=0).start()
        self.runners.append(runner)
        host, port = runner.addresses[0][:2]
        return str(host), int(port)

    async def https(self, name: str, address: str, cert: trustme.LeafCert) -> tuple[str, int]:
        """An HTTPS server with its own certificate (a pod that terminates TLS itself)."""

        async def handle(request: web.Request) -> web.Response:
            return web.Response(text=echo_body(name, request))

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, host=address, port=0, ssl_context=context).start()
        self.runners.append(runner)
        host, port = runner.addresses[0][:2]
        return str(host), int(port)

    async def tcp(self, name: str, address: str) -> tuple[str, int]:
        """An echo server (as the demo's) that counts its open connections, so a test can
        wait for HAProxy's server side to be closed before the controller stops: its
        soft stop waits for sessions in flight (up to --drain-timeout)."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.open_tcp += 1
            try:
                with contextlib.suppress(ConnectionError):
                    while line := await reader.readline():
                        writer.write(f"{name}: ".encode() + line)
                        await writer.drain()
                writer.close()
            finally:
                self.open_tcp -= 1

        server = await asyncio.start_server(handle, host=address, port=0, reuse_address=True)
        self.servers.append(server)
        host, port = server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def tcp_idle(self) -> bool:
        """No TCP backend has a connection open (for `wait_for`)."""
        return self.open_tcp == 0

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        for server in self.servers:
            server.close()


# -------------------------------------------------------------------------- controller


@dataclass
class Controller:
    """The real controller (`python -m service_loadbalancer.cli`) as a subprocess."""

    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    healthz_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    #: False: no --manifests, the controller reads the Kubernetes API (give --kubeconfig).
    use_manifests: bool = True

    @property
    def manifests(self) -> Path:
        return self.workdir / "manifests"

    @property
    def run_dir(self) -> Path:
        return self.workdir / "run"

    @property
    def log_path(self) -> Path:
        return self.workdir / "controller.log"

    def args(self) -> list[str]:
        source = ["--manifests", str(self.manifests)] if self.use_manifests else []
        return [
            *source,
            "--http-port", str(self.http_port),
            "--stats-port", str(self.stats_port),
            "--healthz-port", str(self.healthz_port),
            "--https-port", str(self.https_port),
            "--bind-address", "127.0.0.1",
            "--run-dir", str(self.run_dir),
            # No grace at SIGTERM (/healthz 503 first): tests stop many controllers.
            "--shutdown-grace", "0",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        self.manifests.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service_loadbalancer.cli", *self.args()],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **{k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"},
                **self.env,
            },
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def healthz(self) -> int:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.healthz_port}/healthz") as r,
        ):
            return r.status

    async def metrics(self) -> str:
        """The controller's Prometheus text (/metrics on the healthz port)."""
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.healthz_port}/metrics") as r,
        ):
            return await r.text()

    async def wait_healthy(self) -> None:
        async def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"controller exited early:\n{self.log()}")
            return await self.healthz() == 200

        await wait_for(healthy, what=f"/healthz 200; log:\n{self.log()}")

    async def get(
        self, path: str, *, host: str | None = None, cookies: dict[str, str] | None = None
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        """One request on a new connection; returns status, body and the response."""
        headers = {"Host": host} if host else {}
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector, cookies=cookies) as s,
            s.get(f"http://127.0.0.1:{self.http_port}{path}", headers=headers) as r,
        ):
            return r.status, await r.text(), r

    async def show_proc(self) -> ProcStatus:
        """The HAProxy master's `show proc` (reloads, workers, old workers), over its CLI."""
        master = HAProxyProcess(
            haproxy_bin="haproxy", config_path=self.run_dir / "haproxy.cfg", run_dir=self.run_dir
        )
        return await master.show_proc()

    def haproxy_pids(self) -> list[int]:
        """Every live haproxy process (argv[0] is haproxy, not zombie) whose command line
        names our run directory."""
        pids = []
        marker = str(self.run_dir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                status = (entry / "status").read_text()
                if (
                    Path(argv[0].decode(errors="replace")).name == "haproxy"
                    and any(marker in arg for arg in argv)
                    and "State:\tZ" not in status
                ):
                    pids.append(int(entry.name))
        return pids

    def stop(self, *, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait. The bound is above every bounded step of the stop: the soft
        stop's --drain-timeout (30 s; sessions in flight finish first, and a test's own
        loop, which serves its backends, is blocked here, so a backend cannot close its
        side meanwhile), then SIGTERM and SIGKILL to HAProxy (15 s). Past it the
        controller hangs, which is a bug: the error carries its last log lines."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            left = self.haproxy_pids()
            self.proc.kill()
            self.proc.wait()
            for pid in self.haproxy_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # Where it hung is in the log's last lines: say them, the tmp dir is gone in CI.
            tail = "\n".join(self.log().splitlines()[-60:])
            raise AssertionError(
                f"controller still running {timeout:g} s after SIGTERM; HAProxy processes "
                f"left: {left or 'none'}; last lines of its log:\n{tail}"
            ) from e


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read off the wire."""

    status: int
    #: Header names in lower case.
    headers: dict[str, str]
    body: str
    #: The DNS names of the certificate the server showed (TLS only).
    peer_names: tuple[str, ...] = ()
    peer_serial: str = ""


async def request(
    port: int,
    path: str = "/",
    *,
    host: str | None = None,
    tls: ssl.SSLContext | None = None,
    sni: str | None = None,
    address: str = "127.0.0.1",
    source: str | None = None,
    headers: Mapping[str, str] | None = None,
    limit: float = 10.0,
) -> Answer:
    """One HTTP/1.1 request on a new connection, over TLS with `tls` (SNI `sni`).

    Raw on purpose: a redirect is not followed, and the certificate the server showed
    is part of the answer. `source`: the client's own address; `headers`: more request
    headers. Errors (a refused handshake) propagate."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            address,
            port,
            ssl=tls,
            server_hostname=sni if tls else None,
            local_addr=(source, 0) if source else None,
        ),
        limit,
    )
    try:
        peer = writer.get_extra_info("peercert") or {}
        names = tuple(str(v) for k, v in peer.get("subjectAltName", ()) if k == "DNS")
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"GET {path} HTTP/1.1\r\nHost: {host or sni or address}\r\n{extra}"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), limit)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    header, _, body = raw.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        raise ConnectionError(f"no HTTP answer: {raw[:80]!r}")
    fields = (line.partition(":") for line in lines[1:])
    return Answer(
        status=int(lines[0].split()[1]),
        headers={k.strip().lower(): v.strip() for k, _, v in fields},
        body=body.decode(errors="replace"),
        peer_names=names,
        peer_serial=str(peer.get("serialNumber", "")),
    )


def backend_names(bodies: list[str]) -> list[str]:
    """The `backend=<name>` each demo backend puts first in its answer."""
    return [b.split()[0].removeprefix("backend=") for b in bodies]


@contextlib.contextmanager
def running(controller: Controller) -> Iterator[Controller]:
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


async def served_by(c: Controller, path: str, n: int = 6) -> set[str]:
    """The backends that answered `n` requests to `path` (any non-200 is `HTTP <code>`)."""
    bodies = []
    for _ in range(n):
        status, body, _ = await c.get(path)
        if status != 200:
            return {f"HTTP {status}"}
        bodies.append(body)
    return set(backend_names(bodies))


async def until_served(c: Controller, path: str, expected: set[str], n: int = 6) -> None:
    """Wait until `n` requests to `path` are answered by exactly the backends `expected`."""

    async def check() -> bool:
        return await served_by(c, path, n) == expected

    await wait_for(check, what=f"{path} served by {expected}; log:\n{c.log()}")
