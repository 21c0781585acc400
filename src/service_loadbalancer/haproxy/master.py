"""The master CLI: one command line to an HAProxy master, and its `show proc` parsed.

We run HAProxy as `haproxy -W -S <run_dir>/master.sock` and learn everything about its
processes from the master CLI on that socket (management.txt, 9.4): which pid is the
master, which workers run the current config, how many reloads it went through and how
many of them failed. process.py decides what to ask and when; this module only speaks
the protocol, which in 2.6 has three quirks:

* The master CLI keeps the connection open after a command until the client
  half-closes; the client below sends the command, shuts its write side and reads
  to EOF.
* While the master re-executes itself for a reload its socket refuses connections
  for a moment, so a refused connection is retried until the deadline, unless the
  caller knows the master is gone.
* `reload` answers nothing: the master drops the connection as it re-executes, so only
  a failure to deliver the command is an error; `show proc` tells how it went.
"""

# The `timeout=` parameter bounds connecting, retrying and reading together, and
# expiring says which command went unanswered, which a bare `asyncio.timeout()` around
# the call cannot do.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service_loadbalancer.haproxy.children import POLL_INTERVAL

__all__ = ["HAProxyError", "MasterCli", "ProcStatus", "parse_show_proc"]


# Here rather than in process.py because the CLI raises it too; process.py re-exports it
# for the callers of HAProxyProcess.
class HAProxyError(Exception):
    """HAProxy did not do what we asked (start, reload, answer); the message says why."""


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


class MasterCli:
    """The master CLI of one HAProxy master, on its unix socket."""

    def __init__(self, master_socket: Path, *, master_gone: Callable[[], bool]) -> None:
        self._master_socket = master_socket
        #: Whether the master we started is no more: then a refused connection is final.
        self._master_gone = master_gone

    async def command(self, command: str, *, timeout: float) -> str:
        """Send one command line and return the whole answer.

        A refused connection is retried until `timeout` unless the master is gone.
        Raises `HAProxyError` if the CLI cannot be reached in time.
        """
        if "\n" in command or "\r" in command:
            raise ValueError("one command line, without newlines")
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._connect()
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
                f"master CLI {self._master_socket} did not answer {command!r} within {timeout:g} s"
            ) from None
        except OSError as err:
            raise HAProxyError(f"master CLI {self._master_socket}: {err}") from err
        return answer.decode(errors="replace")

    async def show_proc(self, *, timeout: float) -> ProcStatus:
        """`show proc`, parsed. Raises `HAProxyError`."""
        return parse_show_proc(await self.command("show proc", timeout=timeout))

    async def show_proc_or_none(self, deadline: float) -> ProcStatus | None:
        """`show proc`, or None while the CLI is not there (during a re-exec, say)."""
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await self.show_proc(timeout=max(min(remaining, 2.0), POLL_INTERVAL))
        except HAProxyError:
            return None

    async def send_reload(self, *, timeout: float) -> None:
        """Send `reload`; raise `HAProxyError` only if the command could not be delivered.

        Whether the reload worked is for `show proc` to say afterwards.
        """
        try:
            await self.command("reload", timeout=timeout)
        except HAProxyError as err:
            # The master closes the connection as it re-executes; only a failure to
            # deliver the command at all is an error.
            if isinstance(err.__cause__, ConnectionRefusedError | FileNotFoundError):
                raise HAProxyError(f"cannot send the reload: {err}") from err

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            try:
                return await asyncio.open_unix_connection(self._master_socket)
            except (ConnectionRefusedError, FileNotFoundError):
                if self._master_gone():
                    raise  # our master is gone: no point waiting
                await asyncio.sleep(POLL_INTERVAL)  # re-executing for a reload
