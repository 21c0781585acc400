"""The HAProxy master we supervise, whichever way we have it: started as our child, or
adopted from an earlier controller that left it serving on the same run directory.

HAProxyProcess (process.py) reloads, watches and stops "the master"; the two kinds
differ only in how they come to be, how their exit is seen and how they are signalled,
which is all this module holds, with the check that decides whether a master left
behind may be adopted:

* our child is spawned (`spawn`; `abandon` if it does not serve), awaited
  (`Process.wait`) and signalled directly; its exit status is ours;
* an adopted master is not our child: its exit is seen through a pidfd (or /proc), and
  a signal goes to it only while the pid still runs our master socket (pids are reused).
"""

# ruff: noqa: ASYNC109  (`timeout=` bounds a multi-step check, as in process.py)

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from service_loadbalancer.haproxy.children import (
    OwnProcesses,
    StderrRelay,
    describe_exit,
    merged_env,
)
from service_loadbalancer.haproxy.master import HAProxyError, MasterCli


@dataclass(frozen=True, slots=True)
class ChildMaster:
    """A master we started."""

    proc: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def wait(self) -> None:
        await self.proc.wait()

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def exit_reason(self) -> str:
        return describe_exit(self.proc.returncode)


@dataclass(frozen=True, slots=True)
class AdoptedMaster:
    """A master an earlier controller started, which we took over."""

    pid: int
    own: OwnProcesses

    def alive(self) -> bool:
        return self.own.is_ours(self.pid)

    async def wait(self) -> None:
        await self.own.wait_exit(self.pid)

    def send(self, sig: signal.Signals) -> None:
        self.own.send(self.pid, sig)

    def exit_reason(self) -> str:
        return "exit status unknown: not our child"


Master = ChildMaster | AdoptedMaster


async def spawn(
    haproxy_bin: str,
    *,
    master_socket: Path,
    config_path: Path,
    pid_file: Path,
    env: Mapping[str, str] | None,
    on_line: Callable[[str], None] | None,
) -> tuple[asyncio.subprocess.Process, StderrRelay]:
    """Run `haproxy -W -S <master_socket>` with its stderr relayed; raises HAProxyError
    if it cannot be run. Whether it serves is the caller's to wait for."""
    try:
        proc = await asyncio.create_subprocess_exec(
            haproxy_bin,
            "-W",
            "-S",
            str(master_socket),
            "-f",
            str(config_path),
            "-p",
            str(pid_file),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=None,
            stderr=asyncio.subprocess.PIPE,
            env=merged_env(env),
            # Our own process group: a Ctrl-C meant for us must not stop HAProxy
            # behind our back; stop() does that in order.
            start_new_session=True,
        )
    except OSError as err:
        raise HAProxyError(f"cannot run {haproxy_bin!r}: {err}") from err
    assert proc.stderr is not None
    relay = StderrRelay(proc.stderr, name=f"haproxy-stderr:{proc.pid}", on_line=on_line)
    return proc, relay


async def abandon(proc: asyncio.subprocess.Process, relay: StderrRelay, own: OwnProcesses) -> None:
    """Kill a master that failed to start, and whatever it forked."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    await own.finish_off(own.find(), grace=2.0)
    await relay.close(timeout=1.0)


async def exited(master: Master, *, timeout: float) -> bool:
    """Wait up to `timeout` for `master` to exit; whether it did."""
    try:
        async with asyncio.timeout(timeout):
            await master.wait()
    except TimeoutError:
        return False
    return True


async def adoptable(
    *, pid_file: Path, cli: MasterCli, own: OwnProcesses, log: logging.Logger, timeout: float
) -> AdoptedMaster | None:
    """The master left serving on our run directory, if it is alive and ours: the pid in
    the pid file runs HAProxy with our master socket on its command line, and that socket
    answers `show proc` with the same master pid and a serving worker."""
    pid = _read_pid(pid_file)
    if pid is None or not own.is_ours(pid):
        return None
    try:
        status = await cli.show_proc(timeout=timeout)
    except HAProxyError as err:
        log.warning("not adopting HAProxy master %d: %s", pid, err)
        return None
    if status.master_pid != pid or not status.workers:
        log.warning(
            "not adopting HAProxy master %d: its CLI names master %d, workers %s",
            pid,
            status.master_pid,
            ", ".join(map(str, status.workers)) or "none",
        )
        return None
    log.info(
        "adopted the running HAProxy: master %d, workers %s",
        pid,
        ", ".join(map(str, status.workers)),
    )
    return AdoptedMaster(pid=pid, own=own)


def _read_pid(pid_file: Path) -> int | None:
    """The pid HAProxy wrote (`-p`; the master's in master-worker mode), or None."""
    try:
        return int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
