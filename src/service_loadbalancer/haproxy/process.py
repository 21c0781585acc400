"""Supervise one HAProxy in master-worker mode, and validate configs with `haproxy -c`.

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
* The master CLI keeps the connection open after a command until the client
  half-closes; the client below sends the command, shuts its write side and reads
  to EOF.

HAProxy's stdout is inherited, so `log stdout` traffic logs go to our stdout. Its
stderr (startup and reload alerts) is relayed byte for byte to our stderr, and the
last lines are kept so that a failed start or reload can say *why* in its
`HAProxyError`: a bind error or a config error in a reload never reaches `haproxy -c`.

Everything is asyncio: subprocesses, unix sockets, polling with deadlines. The only
synchronous I/O is reading `/proc`, which is memory-backed and does not block.
"""

# The `timeout=` parameters are the interface callers code against, and each bounds a
# multi-step operation that must clean up and say why when it expires, which a bare
# `asyncio.timeout()` around the call cannot do.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CheckResult",
    "HAProxyError",
    "HAProxyProcess",
    "ProcStatus",
    "check_config",
    "parse_show_proc",
]

_log = logging.getLogger(__name__)

#: How often we poll the master CLI or /proc while waiting for a condition.
_POLL_INTERVAL = 0.05
#: Restart backoff of `supervise()`: doubling from the first to the cap.
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0
#: A master that ran this long before dying resets the backoff to its first step.
_STABLE_AFTER = 10.0
#: Stderr lines kept for error messages.
_STDERR_TAIL = 200
#: Linux `sun_path` is 108 bytes including the NUL; HAProxy binds `<path>.<pid>.tmp`
#: first and renames it, so leave room for that suffix.
_MAX_SOCKET_PATH = 107 - len(".4194304.tmp")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict of `haproxy -c` on one config."""

    ok: bool
    #: HAProxy's combined stdout/stderr, stripped.
    output: str


class HAProxyError(Exception):
    """HAProxy did not do what we asked (start, reload, answer); the message says why."""


async def check_config(
    haproxy_bin: str,
    config_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> CheckResult:
    """Run `haproxy -c -f config_path` with `env` merged over `os.environ`.

    Never raises for an invalid config or a missing binary: both are a result with
    `ok=False` and an output that says what went wrong.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            haproxy_bin,
            "-c",
            "-f",
            str(config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=_merged_env(env),
        )
    except OSError as err:
        return CheckResult(ok=False, output=f"cannot run {haproxy_bin!r}: {err}")
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        return CheckResult(ok=False, output=f"{haproxy_bin} -c did not finish within {timeout:g} s")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return CheckResult(ok=proc.returncode == 0, output=out.decode(errors="replace").strip())


@dataclass(frozen=True, slots=True)
class ProcStatus:
    """The master CLI's `show proc`, parsed: who is the master and who serves."""

    master_pid: int
    #: Reloads the master went through (successful or not).
    reloads: int
    #: Of those, the ones that failed (the previous workers kept serving).
    failed_reloads: int
    #: Workers that run the current config.
    workers: tuple[int, ...]
    #: Workers of earlier configs that still finish their connections.
    old_workers: tuple[int, ...]


_MASTER_LINE = re.compile(r"^(\d+)\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?")
_PROC_LINE = re.compile(r"^(\d+)\s+(\S+)")


def parse_show_proc(text: str) -> ProcStatus:
    """Parse HAProxy 2.6's `show proc` output (management.txt, 9.4.1).

    ```
    #<PID>          <type>          <reloads>       <uptime>        <version>
    1162            master          5 [failed: 0]   0d00h02m07s     2.6.12
    # workers
    1271            worker          1               0d00h00m00s     2.6.12
    # old workers
    1233            worker          3               0d00h00m43s     2.6.12
    # programs
    ```
    """
    master: tuple[int, int, int] | None = None
    section = ""
    workers: list[int] = []
    old_workers: list[int] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip()
            continue
        if (found := _MASTER_LINE.match(line)) is not None:
            master = (int(found[1]), int(found[2]), int(found[3] or 0))
            continue
        found = _PROC_LINE.match(line)
        if found is None or found[2] != "worker":
            continue
        if section == "workers":
            workers.append(int(found[1]))
        elif section == "old workers":
            old_workers.append(int(found[1]))
    if master is None:
        raise HAProxyError(f"unexpected answer to 'show proc': {text.strip()!r}")
    return ProcStatus(
        master_pid=master[0],
        reloads=master[1],
        failed_reloads=master[2],
        workers=tuple(workers),
        old_workers=tuple(old_workers),
    )


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
        #: Called after each of those restarts (the controller counts them in a metric).
        self._on_restart = on_restart
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: _StderrRelay | None = None
        self._lock = asyncio.Lock()
        self._stop_requested = False
        self._stopped = asyncio.Event()

    @property
    def pid(self) -> int | None:
        """The master's pid while it runs."""
        return self._proc.pid if self.running() and self._proc is not None else None

    def running(self) -> bool:
        """Whether the master process is alive (it may still be starting)."""
        return self._proc is not None and self._proc.returncode is None

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
            await self._send_reload(timeout=max(deadline - loop.time(), 0.0))
            while True:
                if not self.running():
                    raise HAProxyError(
                        f"HAProxy exited during the reload ({self._exit_reason()})"
                        + self._stderr_since(mark)
                    )
                status = await self._show_proc_or_none(deadline)
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
                await asyncio.sleep(_POLL_INTERVAL)

    async def master_command(self, command: str, *, timeout: float = 5.0) -> str:
        """Send one command line to the master CLI and return its whole answer.

        Commands can address workers with the `@` prefix (`@1 show info`) and be
        chained with `;`. While our master re-executes itself for a reload its socket
        refuses connections for a moment: that is retried until `timeout`. Raises
        `HAProxyError` if the CLI cannot be reached in time.
        """
        if "\n" in command or "\r" in command:
            raise ValueError("one command line, without newlines")
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._connect_master()
                try:
                    writer.write(command.encode() + b"\n")
                    # The 2.6 master CLI answers and closes only once we half-close.
                    writer.write_eof()
                    await writer.drain()
                    answer = await reader.read()
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except TimeoutError:
            raise HAProxyError(
                f"master CLI {self.master_socket} did not answer {command!r} within {timeout:g} s"
            ) from None
        except OSError as err:
            raise HAProxyError(f"master CLI {self.master_socket}: {err}") from err
        return answer.decode(errors="replace")

    async def _connect_master(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            try:
                return await asyncio.open_unix_connection(self.master_socket)
            except (ConnectionRefusedError, FileNotFoundError):
                if self._proc is not None and not self.running():
                    raise  # our master is gone: no point waiting
                await asyncio.sleep(_POLL_INTERVAL)  # re-executing for a reload

    async def show_proc(self, *, timeout: float = 5.0) -> ProcStatus:
        """The master's `show proc`, parsed. Raises `HAProxyError`."""
        return parse_show_proc(await self.master_command("show proc", timeout=timeout))

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
            proc = self._proc
            if proc is not None and proc.returncode is None:
                up_since = loop.time()
                await _first_of(proc.wait(), self._stopped.wait())
                if self._stop_requested:
                    return
                if proc is not self._proc or proc.returncode is None:
                    continue  # someone else replaced it in between
                if loop.time() - up_since >= _STABLE_AFTER:
                    delay = _BACKOFF_FIRST
                self._log.warning(
                    "HAProxy master %d exited unexpectedly (%s); restarting in %.1f s",
                    proc.pid,
                    _describe_exit(proc.returncode),
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
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

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Stop HAProxy: SIGTERM to the master (which stops its workers), SIGKILL after
        `timeout`. On return no process of ours is left: the workers, including those
        of a master that died, are waited for and killed if they linger."""
        self._stop_requested = True
        self._stopped.set()
        async with self._lock:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            proc = self._proc
            ours = self._our_processes()
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(HAProxyError):
                    status = await self.show_proc(timeout=min(1.0, timeout))
                    ours.update(status.workers, status.old_workers)
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
                        await proc.wait()
                except TimeoutError:
                    self._log.warning(
                        "HAProxy master %d ignored SIGTERM for %g s; killing it", proc.pid, timeout
                    )
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            if proc is not None:
                ours.discard(proc.pid)  # reaped by us: its pid may already be someone else's
            await self._finish_off(ours, grace=max(deadline - loop.time(), 1.0))
            if self._stderr is not None:
                await self._stderr.close(timeout=1.0)
            self._proc = None
            self._stderr = None

    # -- internals -------------------------------------------------------------------

    async def _launch(self, *, timeout: float) -> None:
        """Start a master and wait until it serves. Caller holds the lock."""
        # Workers of a master that died exit on their own once they notice, and a
        # master left by an earlier controller on this run_dir would never leave: a
        # new master next to either would share its ports with a dying listener.
        await self._finish_off(self._our_processes(), grace=2.0, terminate=True)
        self._run_dir.mkdir(parents=True, exist_ok=True)
        try:
            proc = await asyncio.create_subprocess_exec(
                self._bin,
                "-W",
                "-S",
                str(self.master_socket),
                "-f",
                str(self._config_path),
                "-p",
                str(self.pid_file),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=None,
                stderr=asyncio.subprocess.PIPE,
                env=_merged_env(self._env),
                # Our own process group: a Ctrl-C meant for us must not stop HAProxy
                # behind our back; stop() does that in order.
                start_new_session=True,
            )
        except OSError as err:
            raise HAProxyError(f"cannot run {self._bin!r}: {err}") from err
        assert proc.stderr is not None
        relay = _StderrRelay(proc.stderr, name=f"haproxy-stderr:{proc.pid}")
        self._proc, self._stderr = proc, relay
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if proc.returncode is not None:
                    await relay.close(timeout=1.0)
                    raise HAProxyError(
                        f"HAProxy exited at startup ({_describe_exit(proc.returncode)})"
                        + relay.text_since(0)
                    )
                status = await self._show_proc_or_none(deadline)
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
                await asyncio.sleep(_POLL_INTERVAL)
        except BaseException:
            await self._abandon(proc, relay)
            raise

    async def _abandon(self, proc: asyncio.subprocess.Process, relay: _StderrRelay) -> None:
        """Kill a master that failed to start, and whatever it forked."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await self._finish_off(self._our_processes(), grace=2.0)
        await relay.close(timeout=1.0)
        if self._proc is proc:
            self._proc, self._stderr = None, None

    async def _send_reload(self, *, timeout: float) -> None:
        try:
            await self.master_command("reload", timeout=timeout)
        except HAProxyError as err:
            # The master closes the connection as it re-executes; only a failure to
            # deliver the command at all is an error.
            if isinstance(err.__cause__, ConnectionRefusedError | FileNotFoundError):
                raise HAProxyError(f"cannot send the reload: {err}") from err

    async def _show_proc_or_none(self, deadline: float) -> ProcStatus | None:
        """`show proc`, or None while the CLI is not there (during a re-exec, say)."""
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await self.show_proc(timeout=max(min(remaining, 2.0), _POLL_INTERVAL))
        except HAProxyError:
            return None

    async def _show_proc_until(self, deadline: float) -> ProcStatus:
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await self.show_proc(timeout=max(deadline - loop.time(), _POLL_INTERVAL))
            except HAProxyError:
                if loop.time() >= deadline or not self.running():
                    raise
            await asyncio.sleep(_POLL_INTERVAL)

    def _our_processes(self) -> set[int]:
        """Live HAProxy processes started for our master socket, from /proc."""
        return {pid for pid in _pids_in_proc() if self._is_ours(pid)}

    def _is_ours(self, pid: int) -> bool:
        """Whether `pid` runs with our master socket on its command line (pids are reused)."""
        return _alive(pid) and _argv_contains(pid, ("-S", str(self.master_socket)))

    async def _finish_off(self, pids: set[int], *, grace: float, terminate: bool = False) -> None:
        """Wait up to `grace` for those of `pids` that are ours to exit, then SIGKILL them.

        With `terminate`, send SIGTERM first: for a master that nobody supervises.
        """
        if terminate:
            self._signal_ours(pids, signal.SIGTERM)
        if await self._gone(pids, timeout=grace):
            return
        self._signal_ours(pids, signal.SIGKILL)
        if not await self._gone(pids, timeout=5.0):
            self._log.error("HAProxy processes outlived SIGKILL: %s", sorted(pids))

    def _signal_ours(self, pids: set[int], sig: signal.Signals) -> None:
        for pid in pids:
            if self._is_ours(pid):
                self._log.warning("sending %s to left-over HAProxy process %d", sig.name, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    async def _gone(self, pids: set[int], *, timeout: float) -> bool:
        """Poll until none of `pids` is ours any more; False if some still are after `timeout`.

        They are not our children (a master's workers), so there is no exit to await.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not any(self._is_ours(pid) for pid in pids):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(_POLL_INTERVAL)

    def _exit_reason(self) -> str:
        code = self._proc.returncode if self._proc is not None else None
        return _describe_exit(code)

    def _stderr_since(self, mark: int) -> str:
        return self._stderr.text_since(mark) if self._stderr is not None else ""

    async def _wait_stderr(self, mark: int, needle: str, *, deadline: float) -> None:
        """Give the relay a moment to read lines HAProxy already wrote."""
        loop = asyncio.get_running_loop()
        while self._stderr is not None and loop.time() < deadline:
            if needle in self._stderr.text_since(mark):
                return
            await asyncio.sleep(_POLL_INTERVAL / 5)


class _StderrRelay:
    """Copies a child's stderr to ours as it comes, keeping the last lines."""

    def __init__(self, stream: asyncio.StreamReader, *, name: str) -> None:
        self._stream = stream
        self._lines: deque[str] = deque(maxlen=_STDERR_TAIL)
        self._count = 0
        self._partial = b""
        self._task = asyncio.create_task(self._run(), name=name)

    def mark(self) -> int:
        """A position; `text_since(mark)` returns what came after it."""
        return self._count

    def text_since(self, mark: int) -> str:
        """The lines since `mark` (as many as kept) as `:\\n<lines>`, or ''.

        HAProxy's NOTICE lines (version, path) are left out when it said something
        worse, so that the reason stands out in a log line or an Event.
        """
        wanted = min(self._count - mark, len(self._lines))
        lines = list(self._lines)[len(self._lines) - wanted :] if wanted > 0 else []
        if self._partial:
            lines.append(self._partial.decode(errors="replace"))
        lines = [line.rstrip() for line in lines if line.strip()]
        serious = [line for line in lines if line.startswith(("[ALERT]", "[WARNING]"))]
        text = "\n".join(serious or lines)
        return f":\n{text}" if text else ""

    async def close(self, *, timeout: float) -> None:
        """Wait for EOF (every holder of the pipe exited), then stop relaying."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while chunk := await self._stream.read(65536):
            _write_stderr(chunk)
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            for line in complete:
                self._lines.append(line.decode(errors="replace"))
                self._count += 1


def _write_stderr(data: bytes) -> None:
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(2, data) :]


def _merged_env(env: Mapping[str, str] | None) -> dict[str, str]:
    return {**os.environ, **(env or {})}


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


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


def _alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        pass
    else:
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pids_in_proc() -> list[int]:
    """Every pid in /proc (Linux); empty where there is no /proc."""
    try:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


def _argv_contains(pid: int, args: tuple[str, ...]) -> bool:
    """Whether the argv of `pid` contains `args` in a row; False for zombies (empty argv)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    needle = [os.fsencode(arg) for arg in args]
    return any(argv[i : i + len(needle)] == needle for i in range(len(argv)))
