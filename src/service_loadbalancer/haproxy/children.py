"""The OS side of HAProxy's processes: environment, stderr, exit status, and ours in /proc.

HAProxyProcess (process.py) decides when to start, reload and stop; this is what it
needs from the operating system to do so, kept apart so that the supervision logic
reads as such:

* HAProxy's stderr (startup and reload alerts) is relayed byte for byte to ours, and
  the last lines are kept so that a failed start or reload can say *why*; each line
  is also handed to a callback (the passive-health watcher reads servers going DOWN).
* The workers of a master are not our children, and a master left by an earlier
  controller on the same run directory is nobody's: both are found in `/proc` by the
  master socket on their command line (pids are reused, so a pid alone proves
  nothing), and waited for or killed by polling, since there is no exit to await.

The only synchronous I/O is reading `/proc`, which is memory-backed and does not block.
"""

# The `timeout=` parameters bound multi-step operations that must clean up when they
# expire, which a bare `asyncio.timeout()` around the call cannot do.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from service_loadbalancer.waits import cancel_and_wait

#: How often we poll the master CLI or /proc while waiting for a condition.
POLL_INTERVAL = 0.05
#: Stderr lines kept for error messages.
_STDERR_TAIL = 200


class StderrRelay:
    """Copies a child's stderr to ours as it comes, keeping the last lines."""

    def __init__(
        self,
        stream: asyncio.StreamReader,
        *,
        name: str,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self._stream = stream
        self._on_line = on_line
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
        await asyncio.wait({self._task}, timeout=timeout)
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while chunk := await self._stream.read(65536):
            _write_stderr(chunk)
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            for line in complete:
                text = line.decode(errors="replace")
                self._lines.append(text)
                self._count += 1
                if self._on_line is not None:
                    self._on_line(text)


def _write_stderr(data: bytes) -> None:
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(2, data) :]


def merged_env(env: Mapping[str, str] | None) -> dict[str, str]:
    return {**os.environ, **(env or {})}


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class OwnProcesses:
    """The HAProxy processes of one master socket, found in /proc: our master, its
    workers (which are not our children) and what an earlier controller left running on
    the same run directory."""

    def __init__(self, master_socket: Path, logger: logging.Logger) -> None:
        self._master_socket = master_socket
        self._log = logger

    def find(self) -> set[int]:
        """Live HAProxy processes started for our master socket, from /proc."""
        return {pid for pid in _pids_in_proc() if self.is_ours(pid)}

    def is_ours(self, pid: int) -> bool:
        """Whether `pid` runs with our master socket on its command line (pids are reused)."""
        return _alive(pid) and _argv_contains(pid, ("-S", str(self._master_socket)))

    def send(self, pid: int, sig: signal.Signals) -> bool:
        """Send `sig` to `pid` if it is ours; whether it was."""
        if not self.is_ours(pid):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        return True

    async def wait_exit(self, pid: int) -> None:
        """Return once `pid` is no longer ours: it exited (a zombie counts) or was never.

        For a master we did not start (adopted from an earlier controller) there is no
        exit to await: a pidfd (Linux 5.3) becomes readable when the process exits;
        without one, /proc is polled.
        """
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            fd = -1
        try:
            if fd < 0:
                while True:
                    if not self.is_ours(pid):
                        return
                    await asyncio.sleep(POLL_INTERVAL)
            if not self.is_ours(pid):  # checked after opening: pids are reused
                return
            loop = asyncio.get_running_loop()
            exited: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(fd, readable)
            try:
                await exited
            finally:
                loop.remove_reader(fd)
        finally:
            if fd >= 0:
                os.close(fd)

    async def finish_off(self, pids: set[int], *, grace: float, terminate: bool = False) -> None:
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
            if self.is_ours(pid):
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
            if not any(self.is_ours(pid) for pid in pids):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL_INTERVAL)


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
