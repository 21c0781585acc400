"""Supervise one HAProxy in master-worker mode: start it, reload it, restart it, stop it.

This is the edge where the pure core meets a real process, so it is the one place
that knows how HAProxy 2.6 behaves at run time:

* We run `haproxy -W -S <run_dir>/master.sock` in the foreground and talk to the
  *master CLI* on that socket. A reload is the master CLI's `reload` command: the
  master re-executes itself with the config on disk and hands the listening sockets
  to the new worker over its internal socketpair (`-x sockpair@<fd>`), so no
  connection is refused and no `expose-fd listeners` stats socket is needed
  (configuration.txt, "expose-fd listeners"; management.txt, "-x" and 9.4.1).
* In 2.6 `reload` answers nothing and the CLI disappears while the master
  re-executes, so the outcome is read back from `show proc`: the master's reload
  counter goes up, and either a new worker appears or the `[failed: N]` counter
  goes up (a failed reload keeps the old worker serving the old config).

* A stop can be soft (SIGUSR1: the workers finish the requests in flight), then hard
  (SIGTERM, SIGKILL) after a bound: stopping.py.
* The master runs in its own session and outlives a controller that crashes; the next
  controller on the same run directory adopts it (`adopt`) rather than starting another.
  masters.py holds what differs between a master we started and one we adopted.

HAProxy's stdout is inherited, so `log stdout` traffic logs go to our stdout. Its
stderr is relayed to ours, and its last lines are what a failed start or reload says
in its `HAProxyError`: a bind error or a config error in a reload never reaches
`haproxy -c`.

Everything is asyncio: subprocesses, unix sockets, polling with deadlines. The master
CLI protocol is master.py's; the OS side (stderr relay, /proc) is children.py's.
"""

# The `timeout=` parameters are the interface callers code against, and each bounds a
# multi-step operation that must clean up and say why when it expires, which a bare
# `asyncio.timeout()` around the call cannot do.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from service_loadbalancer.haproxy.children import (
    POLL_INTERVAL,
    OwnProcesses,
    StderrRelay,
    describe_exit,
)
from service_loadbalancer.haproxy.master import HAProxyError, MasterCli, ProcStatus
from service_loadbalancer.haproxy.masters import (
    AdoptedMaster,
    ChildMaster,
    Master,
    abandon,
    adoptable,
    spawn,
)
from service_loadbalancer.haproxy.stopping import stop_master
from service_loadbalancer.waits import wait_event

__all__ = ["HAProxyError", "HAProxyProcess"]  # HAProxyError: what the methods raise

_log = logging.getLogger(__name__)

#: Restart backoff of `supervise()`: doubling from the first to the cap.
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0
#: A master that ran this long before dying resets the backoff to its first step.
_STABLE_AFTER = 10.0
#: Linux `sun_path` is 108 bytes including the NUL; HAProxy binds `<path>.<pid>.tmp`
#: first and renames it, so leave room for that suffix.
_MAX_SOCKET_PATH = 107 - len(".4194304.tmp")


class HAProxyProcess:
    """One HAProxy master (and its workers) that we start, reload, restart and stop.

    Why a master-worker HAProxy rather than re-running `haproxy -sf` ourselves: the
    master keeps the listening sockets across reloads and passes them to each new
    worker, so reloads refuse no connection, and the master CLI tells us which
    workers run which generation. We only have to watch one child, the master.

    `start`, `reload`, the restarts of `supervise` and `stop` are serialised by one
    lock, so a reload never races with a restart, and a stop always wins.
    """

    def __init__(
        self,
        *,
        haproxy_bin: str,
        config_path: Path,
        run_dir: Path,
        env: Mapping[str, str] | None = None,
        logger: logging.Logger | None = None,
        on_restart: Callable[[], None] | None = None,
        on_stderr_line: Callable[[str], None] | None = None,
    ) -> None:
        self._bin = haproxy_bin
        self._config_path = config_path.absolute()
        self._run_dir = run_dir.absolute()
        self._env = dict(env) if env is not None else None
        self._log = logger if logger is not None else _log
        #: The master CLI socket; its path on our command line also tells our processes apart.
        self.master_socket = self._run_dir / "master.sock"
        self.pid_file = self._run_dir / "haproxy.pid"
        if len(os.fsencode(self.master_socket)) > _MAX_SOCKET_PATH:
            raise ValueError(f"run_dir is too long for a unix socket path: {self.master_socket}")
        #: Successful reloads since this object was created.
        self.reloads = 0
        #: Times `supervise()` restarted a master that died.
        self.restarts = 0
        #: Called after each of those restarts (counted in a metric); then, with each stderr line.
        self._on_restart, self._on_line = on_restart, on_stderr_line
        self._own = OwnProcesses(self.master_socket, self._log)
        self._cli = MasterCli(self.master_socket, master_gone=self._master_gone)
        #: The master we started or adopted, alive or not; None before the first start.
        self._master: Master | None = None
        self._stderr: StderrRelay | None = None
        self._lock = asyncio.Lock()
        self._stop_requested = False
        self._stopped = asyncio.Event()

    @property
    def pid(self) -> int | None:
        """The master's pid while it runs (ours or adopted)."""
        master = self._master
        return master.pid if master is not None and master.alive() else None

    def running(self) -> bool:
        """Whether the master process is alive (it may still be starting)."""
        return self.pid is not None

    @property
    def adopted(self) -> bool:
        """Whether the master that runs is one we adopted rather than started."""
        return isinstance(self._master, AdoptedMaster) and self.running()

    async def adopt(self, *, timeout: float = 5.0) -> bool:
        """Take over the master an earlier controller left serving on our run directory
        (it crashed, or was killed), instead of starting a new one; whether we did.

        Only a master that is alive and ours is adopted (masters.py, `adoptable`). It is
        not our child, so `supervise` watches it through a pidfd (or /proc); reloads and
        `stop` work as for a master we started. Its stderr went to the controller that
        started it, so its errors are not in ours.
        """
        async with self._lock:
            if self.running():
                raise HAProxyError(f"HAProxy already runs (master pid {self.pid})")
            master = await adoptable(
                pid_file=self.pid_file, cli=self._cli, own=self._own, log=self._log, timeout=timeout
            )
            if master is None:
                return False
            self._master = master
            self._stop_requested = False
            self._stopped.clear()
            return True

    async def start(self, *, timeout: float = 10.0) -> None:
        """Start the master and wait until `show proc` lists a worker.

        Raises `HAProxyError` with HAProxy's reason (its stderr) if the master exits
        or does not serve within `timeout`; nothing of it is left running then.
        Raises too if a master already runs.
        """
        async with self._lock:
            if self.running():
                raise HAProxyError(f"HAProxy already runs (master pid {self.pid})")
            self._stop_requested = False
            self._stopped.clear()
            await self._launch(timeout=timeout)

    async def reload(self, *, timeout: float = 10.0) -> None:
        """Make the master load the config on disk; return once a new worker serves it.

        Raises `HAProxyError` if the master is not running, refuses the config (the
        old workers then keep serving the old one) or dies.
        """
        async with self._lock:
            if not self.running():
                raise HAProxyError("cannot reload: HAProxy is not running")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            before = await self._show_proc_until(deadline)
            mark = self._stderr.mark() if self._stderr is not None else 0
            await self._cli.send_reload(timeout=max(deadline - loop.time(), 0.0))
            while True:
                if not self.running():
                    raise HAProxyError(
                        f"HAProxy exited during the reload ({self._exit_reason()})"
                        + self._stderr_since(mark)
                    )
                status = await self._cli.show_proc_or_none(deadline)
                if status is not None and status.reloads > before.reloads:
                    if status.failed_reloads > before.failed_reloads:
                        await self._wait_stderr(mark, "Loading failure", deadline=loop.time() + 1)
                        raise HAProxyError(
                            "HAProxy refused the new config and keeps serving the old one"
                            + self._stderr_since(mark)
                        )
                    if set(status.workers) - set(before.workers):
                        self.reloads += 1
                        self._log.info(
                            "HAProxy reloaded: workers %s, leaving %s",
                            _pids(status.workers),
                            _pids(status.old_workers),
                        )
                        return
                if loop.time() >= deadline:
                    raise HAProxyError(
                        f"HAProxy did not finish the reload within {timeout:g} s"
                        + self._stderr_since(mark)
                    )
                await asyncio.sleep(POLL_INTERVAL)

    async def master_command(self, command: str, *, timeout: float = 5.0) -> str:
        """Send one command line to the master CLI and return its whole answer.

        Commands can address workers with the `@` prefix (`@1 show info`) and be
        chained with `;`. While our master re-executes itself for a reload its socket
        refuses connections for a moment: that is retried until `timeout`. Raises
        `HAProxyError` if the CLI cannot be reached in time.
        """
        return await self._cli.command(command, timeout=timeout)

    def _master_gone(self) -> bool:
        """Whether the master we started or adopted is no more (not: not yet started)."""
        return self._master is not None and not self._master.alive()

    async def show_proc(self, *, timeout: float = 5.0) -> ProcStatus:
        """The master's `show proc`, parsed. Raises `HAProxyError`."""
        return await self._cli.show_proc(timeout=timeout)

    async def serving(self) -> bool:
        """Whether the master is alive and at least one current worker serves. Never raises."""
        if not self.running():
            return False
        try:
            status = await self.show_proc(timeout=2.0)
        except HAProxyError:
            return False
        return self.running() and bool(status.workers)

    async def supervise(
        self, *, before_restart: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Restart the master whenever it dies without `stop()` having asked it to.

        Restarts use the config on disk, which is the last good one (the reconciler
        installs only configs that passed `haproxy -c`), with a backoff that doubles
        from 0.1 s to 5 s and resets once a master stayed up for a while. Returns
        when `stop()` is called; cancelling it is fine too. `before_restart` runs before
        each restart (the reconciler writes pending server changes to the config).
        """
        loop = asyncio.get_running_loop()
        delay = _BACKOFF_FIRST
        while not self._stop_requested:
            master = self._master
            if master is not None and master.alive():
                up_since = loop.time()
                await _first_of(master.wait(), self._stopped.wait())
                if self._stop_requested:
                    return
                if self.running():
                    continue  # someone else replaced it in between
                if loop.time() - up_since >= _STABLE_AFTER:
                    delay = _BACKOFF_FIRST
                self._log.warning(
                    "HAProxy master %d exited unexpectedly (%s); restarting in %.1f s",
                    master.pid,
                    master.exit_reason(),
                    delay,
                )
            await wait_event(self._stopped, delay)
            if self._stop_requested:
                return
            delay = min(delay * 2, _BACKOFF_MAX)
            if before_restart is not None:
                await before_restart()
            async with self._lock:
                if self._stop_requested:
                    return
                if self.running():
                    continue  # started by someone else meanwhile
                try:
                    await self._launch(timeout=10.0)
                except HAProxyError as err:
                    self._log.error("cannot restart HAProxy (next try in %.1f s): %s", delay, err)
                    continue
                self.restarts += 1
                self._log.info("HAProxy restarted (master pid %s)", self.pid)
                if self._on_restart is not None:
                    self._on_restart()

    async def stop(self, *, timeout: float = 10.0, drain: float = 0.0) -> None:
        """Stop HAProxy, softly first with `drain` > 0, hard within `timeout` (stopping.py
        has the sequence). On return no process of ours is left, not even a dead master's."""
        self._stop_requested = True
        self._stopped.set()
        async with self._lock:
            await stop_master(
                self._master,
                own=self._own,
                show_proc=self.show_proc,
                timeout=timeout,
                drain=drain,
                log=self._log,
            )
            if self._stderr is not None:
                await self._stderr.close(timeout=1.0)
            self._master, self._stderr = None, None

    # -- internals -------------------------------------------------------------------

    async def _launch(self, *, timeout: float) -> None:
        """Start a master and wait until it serves. Caller holds the lock."""
        # Workers of a master that died exit on their own once they notice, and a
        # master left by an earlier controller on this run_dir would never leave: a
        # new master next to either would share its ports with a dying listener.
        await self._own.finish_off(self._own.find(), grace=2.0, terminate=True)
        self._master = None
        self._run_dir.mkdir(parents=True, exist_ok=True)
        proc, relay = await spawn(
            self._bin,
            master_socket=self.master_socket,
            config_path=self._config_path,
            pid_file=self.pid_file,
            env=self._env,
            on_line=self._on_line,
        )
        self._master, self._stderr = ChildMaster(proc), relay
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if proc.returncode is not None:
                    await relay.close(timeout=1.0)
                    raise HAProxyError(
                        f"HAProxy exited at startup ({describe_exit(proc.returncode)})"
                        + relay.text_since(0)
                    )
                status = await self._cli.show_proc_or_none(deadline)
                if status is not None and status.workers:
                    self._log.info(
                        "HAProxy started: master %d, workers %s",
                        proc.pid,
                        _pids(status.workers),
                    )
                    return
                if loop.time() >= deadline:
                    raise HAProxyError(
                        f"HAProxy did not serve within {timeout:g} s" + relay.text_since(0)
                    )
                await asyncio.sleep(POLL_INTERVAL)
        except BaseException:
            await abandon(proc, relay, self._own)
            if isinstance(self._master, ChildMaster) and self._master.proc is proc:
                self._master, self._stderr = None, None
            raise

    async def _show_proc_until(self, deadline: float) -> ProcStatus:
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await self.show_proc(timeout=max(deadline - loop.time(), POLL_INTERVAL))
            except HAProxyError:
                if loop.time() >= deadline or not self.running():
                    raise
            await asyncio.sleep(POLL_INTERVAL)

    def _exit_reason(self) -> str:
        return self._master.exit_reason() if self._master is not None else "not started"

    def _stderr_since(self, mark: int) -> str:
        return self._stderr.text_since(mark) if self._stderr is not None else ""

    async def _wait_stderr(self, mark: int, needle: str, *, deadline: float) -> None:
        """Give the relay a moment to read lines HAProxy already wrote."""
        loop = asyncio.get_running_loop()
        while self._stderr is not None and loop.time() < deadline:
            if needle in self._stderr.text_since(mark):
                return
            await asyncio.sleep(POLL_INTERVAL / 5)


def _pids(pids: tuple[int, ...]) -> str:
    return ", ".join(map(str, pids)) or "none"


async def _first_of(*coros: Coroutine[Any, Any, object]) -> None:
    """Wait until the first of the coroutines finishes; cancel the others."""
    tasks = [asyncio.create_task(coro) for coro in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
