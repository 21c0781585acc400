"""How a master and its workers are stopped: softly if asked, then hard, until no process
of ours is left.

HAProxyProcess.stop (process.py) decides *that* HAProxy stops and serialises it with
starts and reloads; this is the sequence itself, kept apart so that each reads as such:

* With `drain` > 0 a soft stop comes first: SIGUSR1 to the master, which passes it to
  its workers; they close their listeners (new connections are refused), finish the
  requests in flight and exit, and then the master exits (management.txt, "4. Stopping
  and restarting HAProxy"). Whatever still runs after `drain` seconds is stopped hard.
* A hard stop is SIGTERM to the master (which stops its workers), SIGKILL after
  `timeout`.
* The workers, including those of a master that died, are not our children: they are
  found (`show proc`, and our master socket in /proc), waited for and killed if they
  linger.
"""

# ruff: noqa: ASYNC109  (`timeout=` bounds a multi-step stop, as in process.py)

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from service_loadbalancer.haproxy.children import OwnProcesses
from service_loadbalancer.haproxy.master import HAProxyError, ProcStatus
from service_loadbalancer.haproxy.masters import ChildMaster, Master, exited


async def stop_master(
    master: Master | None,
    *,
    own: OwnProcesses,
    show_proc: Callable[..., Awaitable[ProcStatus]],
    timeout: float,
    drain: float,
    log: logging.Logger,
) -> None:
    """Stop `master` (softly first with `drain` > 0) and every process of ours; on return
    none is left. `show_proc` names the workers the master knows of."""
    loop = asyncio.get_running_loop()
    ours = own.find()
    if master is not None and master.alive():
        with contextlib.suppress(HAProxyError):
            status = await show_proc(timeout=min(1.0, timeout))
            ours.update(status.workers, status.old_workers)
        if drain > 0:
            log.info("soft-stopping HAProxy (at most %g s for its connections)", drain)
            master.send(signal.SIGUSR1)
            if not await exited(master, timeout=drain):
                log.warning("HAProxy still has connections after %g s", drain)
    deadline = loop.time() + timeout
    if master is not None and master.alive():
        master.send(signal.SIGTERM)
        if not await exited(master, timeout=timeout):
            log.warning(
                "HAProxy master %d ignored SIGTERM for %g s; killing it",
                master.pid,
                timeout,
            )
            master.send(signal.SIGKILL)
            await exited(master, timeout=5.0)
    if isinstance(master, ChildMaster):
        ours.discard(master.pid)  # reaped by us: its pid may already be someone else's
    await own.finish_off(ours, grace=max(deadline - loop.time(), 1.0))
