"""The autoscale command as a subprocess, and a paced load loop: shared by the autoscale
integration tests and benchmarks/autoscale.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from harness import free_port


@dataclass
class AutoscaleProcess:
    """`python -m service_loadbalancer.cli autoscale ...`, its output in a log file."""

    workdir: Path
    args: list[str]
    healthz_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "autoscale.log"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service_loadbalancer.cli",
                "autoscale",
                "--healthz-port",
                str(self.healthz_port),
                "--bind-address",
                "127.0.0.1",
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **{k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"},
                **self.env,
            },
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def metrics(self) -> str:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.healthz_port}/metrics") as r,
        ):
            return await r.text()

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@dataclass
class Load:
    """`rate` requests a second to `url` (new connection each, as many clients do), until
    stopped; counts the answers."""

    url: str
    rate: float = 40.0
    sent: int = 0
    ok: int = 0
    _task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        connector = aiohttp.TCPConnector(force_close=True, limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            started = time.monotonic()
            pending: set[asyncio.Task[None]] = set()
            while True:
                due = started + self.sent / self.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                self.sent += 1
                task = asyncio.create_task(self._one(session))
                pending.add(task)
                task.add_done_callback(pending.discard)

    async def _one(self, session: aiohttp.ClientSession) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                await r.read()
                if r.status == 200:
                    self.ok += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="load")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
