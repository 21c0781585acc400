"""Passive health as the controller sees it: HAProxy's own messages, read off its stderr.

HAProxy takes a failing server out of rotation itself (`observe layer4`, `on-error
mark-down`, see render.SERVER_OPTIONS) and brings it back when its check passes again.
Two things HAProxy 2.6 does not do, and this module does:

* **Count ejections per backend.** Every `Server <backend>/<server> is DOWN, reason: ...`
  warning increments `slb_server_ejections{backend}`. Reading the messages costs nothing
  when nothing fails, where polling the stats of 10,000 backends would cost all the time.
* **Never eject every pod of a backend.** HAProxy answers 503 once no server of a backend
  is UP, even if the pods only looked down (a burst of timeouts on a busy node). When it
  says `backend '<name>' has no server available!`, the servers of that backend that are
  DOWN (and neither draining nor in maintenance: those are the controller's) are forced
  back UP with `set server ... health up`, so requests keep trying them (with retries
  and redispatch). A pod that is really dead fails again and is marked DOWN again; the
  forcing is then repeated at most once per `min_interval` per backend. Kubernetes
  readiness still decides which pods are servers at all.

The parsing is pure; `HealthWatcher.run` is the one task that talks to the Runtime API.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable

from service_loadbalancer.haproxy.runtime import RuntimeApi, RuntimeApiError
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.waits import wait_event

log = logging.getLogger("service_loadbalancer.health")

#: HAProxy 2.6 (server.c): "Server %s/%s is DOWN, reason: ..." (a check or observe).
_SERVER_DOWN = re.compile(r"\bServer ([^/\s]+)/(\S+) is DOWN, reason:")
#: HAProxy 2.6 (backend.c, set_backend_down): "backend '%s' has no server available!".
_NO_SERVER = re.compile(r"\bbackend '([^']+)' has no server available!")


def server_down(line: str) -> tuple[str, str] | None:
    """(backend, server) when `line` says HAProxy marked a server DOWN."""
    found = _SERVER_DOWN.search(line)
    return (found[1], found[2]) if found else None


def backend_empty(line: str) -> str | None:
    """The backend when `line` says it has no server left."""
    found = _NO_SERVER.search(line)
    return found[1] if found else None


class HealthWatcher:
    """Reads HAProxy's stderr lines (`on_line`) and forces emptied backends back up."""

    def __init__(
        self,
        *,
        runtime: RuntimeApi,
        metrics: Metrics,
        min_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._metrics = metrics
        self._min_interval = min_interval
        self._clock = clock
        self._pending: set[str] = set()
        self._last: dict[str, float] = {}
        self._wake = asyncio.Event()

    def on_line(self, line: str) -> None:
        """One line of HAProxy's stderr; cheap, never blocks (called by the relay)."""
        if "DOWN" in line and (down := server_down(line)) is not None:
            self._metrics.ejections.labels(backend=down[0]).inc()
        elif "no server available" in line and (backend := backend_empty(line)) is not None:
            self._pending.add(backend)
            self._wake.set()

    async def run(self) -> None:
        """Force the servers of emptied backends back up, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                continue
            now = self._clock()
            due = {b for b in self._pending if now - self._last.get(b, -1e9) >= self._min_interval}
            if not due:
                # Come back when the earliest one is due (new lines wake us sooner).
                wait = min(self._min_interval - (now - self._last[b]) for b in self._pending)
                if not await wait_event(self._wake, max(wait, 0.01)):
                    self._wake.set()
                continue
            self._pending -= due
            for backend in due:
                self._last[backend] = now
            await self.force_up(due)
            if self._pending:
                self._wake.set()

    async def force_up(self, backends: set[str]) -> None:
        """`set server ... health up` for the DOWN, administratively ready servers."""
        try:
            rows = await self._runtime.servers_state(backends)
            targets = [f"{r.backend}/{r.name}" for r in rows if r.op_state == 0 and r.ready]
            if not targets:
                return
            await self._runtime.execute([f"set server {t} health up" for t in targets])
        except RuntimeApiError as err:  # a reload in between: the next message retries
            log.warning("cannot force the servers of %s back up: %s", sorted(backends), err)
            return
        for backend in backends:
            self._metrics.forced_up.labels(backend=backend).inc()
        log.info(
            "every server of %s looked down: forced %d back up (requests keep trying them)",
            ", ".join(sorted(backends)),
            len(targets),
        )
