"""Servers being drained: removed from the model, still in HAProxy until idle.

A removed endpoint gets `set server state drain` (no new requests); this keeps the list
of such servers with their deadlines, and a background task deletes each one once it
has no session in flight (`show stat`: current + queued), or cuts its sessions and
deletes it at the deadline (`--drain-timeout`). A server that comes back while draining
is made ready again by the planner, which asks `names()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from service_loadbalancer.haproxy.plan import OpKind, ServerOp
from service_loadbalancer.haproxy.process import HAProxyProcess
from service_loadbalancer.haproxy.runtime import (
    RuntimeApi,
    RuntimeApiError,
    deleted_servers,
    drain_commands,
)

log = logging.getLogger("service_loadbalancer.drains")

#: How often draining servers are looked at (sessions in flight, drain deadline).
DRAIN_POLL = 0.2


class Drains:
    """backend -> server -> monotonic deadline, for servers draining in HAProxy."""

    def __init__(
        self, runtime: RuntimeApi, *, drain_timeout: float, on_delete: Callable[[], None]
    ) -> None:
        self._runtime = runtime
        self._timeout = drain_timeout
        self._on_delete = on_delete
        self._draining: dict[str, dict[str, float]] = {}
        self._changed = asyncio.Event()

    def names(self) -> dict[str, frozenset[str]]:
        return {b: frozenset(servers) for b, servers in self._draining.items()}

    def applied(self, ops: Iterable[ServerOp]) -> None:
        """Note the operations HAProxy has just taken: drains start, readies end one."""
        deadline = time.monotonic() + self._timeout
        for op in ops:
            servers = self._draining.setdefault(op.backend, {})
            if op.kind is OpKind.DRAIN:
                servers[op.server.name] = deadline
            else:
                servers.pop(op.server.name, None)
            if not servers:
                del self._draining[op.backend]
        if self._draining:
            self._changed.set()

    def clear(self) -> None:
        """After a reload: the new worker has exactly the servers of the config (the old
        one finishes the connections of the removed ones)."""
        self._draining.clear()

    async def run(self, lock: asyncio.Lock, haproxy: HAProxyProcess) -> None:
        """Delete draining servers once idle (or cut them after the drain timeout)."""
        while True:
            if not self._draining:
                self._changed.clear()
                await self._changed.wait()
            await asyncio.sleep(DRAIN_POLL)
            async with lock:
                if self._draining and haproxy.running():
                    try:
                        await self._finish()
                    except RuntimeApiError as err:
                        log.debug("drain check failed (next try soon): %s", err)

    async def _finish(self) -> None:
        busy = await self._runtime.sessions(self._draining)
        commands, done = drain_commands(self._draining, busy, time.monotonic())
        for command in commands:
            if command.startswith("shutdown sessions"):
                backend, _, name = command.split()[-1].partition("/")
                sessions = busy[(backend, name)]
                log.warning(
                    "drain timeout: cutting %d session(s) of %s/%s", sessions, backend, name
                )
        answers = await self._runtime.execute(commands) if commands else []
        deleted = deleted_servers(commands, answers)
        for backend, name in done:
            if (backend, name) in deleted or (backend, name) not in busy:
                if (backend, name) in deleted:
                    self._on_delete()
                servers = self._draining.get(backend, {})
                servers.pop(name, None)
                if not servers:
                    self._draining.pop(backend, None)
