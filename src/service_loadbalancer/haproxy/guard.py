"""The guard of ExternalName servers: one that resolves into `--deny-external-cidrs` is
taken out of service while it does.

Why here and not in translation: HAProxy resolves the names itself, at run time
(render.py's `resolvers`), so only what HAProxy resolved says where traffic would go,
and that can change at any time (a DNS record pointed at 127.0.0.1 or at a cloud's
metadata address 169.254.169.254 turns the load balancer into a proxy to the node:
CVE-2021-25740 by another route). So the guard judges the addresses HAProxy has:

* **When they change.** HAProxy says so on its stderr (`<backend>/<server> changed its
  IP from <a> to <b> by <resolvers>/<nameserver>.`, server.c in 2.6); the relay hands
  each line to `on_line`, which wakes the guard at once. After every start or reload the
  reconciler pokes it, and it looks anyway every `poll` seconds (a missed line, an
  adopted HAProxy).
* **What it does.** It reads `show servers state` of the external backends only, and a
  server whose address is denied gets `set server ... state maint` (the Service is
  reported: a problem with the address and the CIDR, so a log line, the problems metric
  and an Event); one in maintenance whose address is allowed again gets `state ready`.
  HAProxy keeps resolving a server in maintenance, so the guard sees it come back. The
  maintenance is saved in the server-state file like any other, so a reload keeps it.

What this does not do: stop the requests HAProxy sends in the moment between its change
of address and the guard's command (the stderr line reaching the controller, then one
Runtime API round trip; longer if a sync holds the Runtime API then). For a hard
guarantee against a name under hostile control, block those addresses in the node's
egress firewall too; the README says so.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Mapping

from service_loadbalancer.external import denied_by
from service_loadbalancer.haproxy.process import HAProxyProcess
from service_loadbalancer.haproxy.runtime import (
    ADMIN_FMAINT,
    ADMIN_RMAINT,
    RuntimeApi,
    RuntimeApiError,
    ServerState,
)
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import Problem
from service_loadbalancer.waits import wait_event

log = logging.getLogger("service_loadbalancer.guard")

#: HAProxy 2.6 (server.c, srv_update_addr): "%s/%s changed its IP from %s to %s by %s."
_IP_CHANGED = re.compile(r"\b([^/\s]+)/(\S+) changed its IP from \S+ to (\S+) by ")
#: Seconds between two looks when HAProxy says nothing.
GUARD_POLL = 2.0

#: backend name -> (its Service, the external name), for the external backends.
External = Mapping[str, tuple[ObjectKey, str]]


def ip_changed(line: str) -> tuple[str, str, str] | None:
    """(backend, server, new address) when `line` says HAProxy re-resolved a server."""
    found = _IP_CHANGED.search(line)
    return (found[1], found[2], found[3].rstrip(".")) if found else None


def judge(
    rows: Iterable[ServerState], external: External, cidrs: tuple[str, ...]
) -> tuple[list[str], frozenset[Problem]]:
    """The commands that take the external servers with a denied address out of service
    and put those allowed again back, and the problems of the denied ones. Pure.

    A server that is not resolved yet (HAProxy holds it in resolution maintenance) is
    left alone: no traffic reaches it. Only the forced maintenance (`state maint`) is the
    guard's to clear; the external servers have no other reason to be in it."""
    commands: list[str] = []
    problems: set[Problem] = set()
    for row in rows:
        owner = external.get(row.backend)
        if owner is None or row.admin_state & ADMIN_RMAINT:
            continue
        target = f"{row.backend}/{row.name}"
        cidr = denied_by(row.address, cidrs)
        held = bool(row.admin_state & ADMIN_FMAINT)
        if cidr is not None:
            key, name = owner
            problems.add(
                Problem(
                    key,
                    f"externalName {name} resolves to {row.address}, which "
                    f"--deny-external-cidrs refuses ({cidr}); not served while it does",
                )
            )
            if not held:
                commands.append(f"set server {target} state maint")
        elif held:
            commands.append(f"set server {target} state ready")
    return commands, frozenset(problems)


class ExternalGuard:
    """Judges the addresses of external servers when HAProxy changes them (and every
    `poll` seconds); reports its problems through `on_problems`."""

    def __init__(
        self,
        *,
        runtime: RuntimeApi,
        cidrs: tuple[str, ...],
        external: Callable[[], External],
        on_problems: Callable[[frozenset[Problem]], None],
        poll: float = GUARD_POLL,
    ) -> None:
        self._runtime = runtime
        self._cidrs = cidrs
        self._external = external
        self._on_problems = on_problems
        self._poll = poll
        self._wake = asyncio.Event()
        self._problems: frozenset[Problem] = frozenset()

    def on_line(self, line: str) -> None:
        """One line of HAProxy's stderr; cheap, never blocks (called by the relay)."""
        if "changed its IP" in line and ip_changed(line) is not None:
            self._wake.set()

    def poke(self) -> None:
        """Look now (HAProxy was started or reloaded: new workers, addresses from libc)."""
        self._wake.set()

    async def run(self, lock: asyncio.Lock, haproxy: HAProxyProcess) -> None:
        """Judge on every wake-up and every `poll` seconds, until cancelled."""
        while True:
            await wait_event(self._wake, self._poll)
            self._wake.clear()
            external = self._external()
            if not external:
                self._publish(frozenset())
                continue
            async with lock:  # the Runtime API, one user at a time
                if not haproxy.running():
                    continue
                try:
                    problems = await self._check(external)
                except RuntimeApiError as err:  # a reload in between: look again soon
                    log.debug("external guard: %s", err)
                    continue
            self._publish(problems)

    async def _check(self, external: External) -> frozenset[Problem]:
        rows = await self._runtime.servers_state(external)
        commands, problems = judge(rows, external, self._cidrs)
        if commands:
            answers = await self._runtime.execute(commands)
            for command, answer in zip(commands, answers, strict=True):
                if answer.strip():
                    raise RuntimeApiError(f"{command}: {answer.strip()}")
                log.warning("external guard: %s", command.removeprefix("set server "))
        return problems

    def _publish(self, problems: frozenset[Problem]) -> None:
        if problems != self._problems:
            self._problems = problems
            self._on_problems(problems)
