"""An async client of HAProxy's Runtime API (the worker's `stats socket ... level admin`).

Why the interactive (`prompt`) mode: in the default mode a connection takes one line
(commands chained with `;`) and that line must fit in one buffer (tune.bufsize, 16 kB),
so a batch of a few hundred server changes would need many connections. In prompt mode
one connection takes any number of lines; every answer ends with an empty line and the
next prompt `"> "` (management.txt, 9.3 "Unix Socket commands"), so we can pipeline the
whole batch: write all the lines, then read until we have counted one prompt per command.

Everything is bounded by a timeout; a socket that cannot be reached or does not answer in
time raises `RuntimeApiError`, and the caller falls back to a reload.
"""

# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from service_loadbalancer.haproxy.plan import OpKind, ServerOp

__all__ = [
    "ADMIN_FMAINT",
    "ADMIN_RMAINT",
    "RuntimeApi",
    "RuntimeApiError",
    "ServerState",
    "check_servers",
    "drain_commands",
    "parse_servers_state",
    "parse_stat_sessions",
    "server_commands",
]

_PROMPT = b"\n> "

#: `srv_admin_state` bits (management.txt, "show servers state").
ADMIN_FMAINT = 0x01
ADMIN_IMAINT = 0x02
ADMIN_CMAINT = 0x04
ADMIN_FDRAIN = 0x08
ADMIN_IDRAIN = 0x10
ADMIN_RMAINT = 0x20
_MAINT = ADMIN_FMAINT | ADMIN_IMAINT | ADMIN_CMAINT | ADMIN_RMAINT
_DRAIN = ADMIN_FDRAIN | ADMIN_IDRAIN


class RuntimeApiError(Exception):
    """The Runtime API could not be reached, did not answer in time, or refused a command."""


@dataclass(frozen=True, slots=True)
class ServerState:
    """One row of `show servers state` (format version 1), the fields we use."""

    backend: str
    name: str
    address: str
    port: int
    #: 0 stopped, 1 starting, 2 running, 3 stopping.
    op_state: int
    #: A mask of the ADMIN_* bits.
    admin_state: int

    @property
    def maint(self) -> bool:
        return bool(self.admin_state & _MAINT)

    @property
    def drain(self) -> bool:
        return bool(self.admin_state & _DRAIN)

    @property
    def ready(self) -> bool:
        """Administratively ready: neither in maintenance nor draining."""
        return not (self.maint or self.drain)


def parse_servers_state(text: str) -> list[ServerState]:
    """Parse `show servers state` (or a server-state file): version line, `#` header, rows.

    Columns are found by the header's names, so a later format that adds fields still
    parses; an unknown version raises.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    if lines[0].strip() != "1":
        raise RuntimeApiError(f"unknown 'show servers state' format: {lines[0]!r}")
    header: list[str] = []
    rows: list[ServerState] = []
    for line in lines[1:]:
        if line.startswith("#"):
            if not header:
                header = line.lstrip("#").split()
            continue
        if not header:
            raise RuntimeApiError("'show servers state' without a header line")
        fields = dict(zip(header, line.split(), strict=False))
        try:
            rows.append(
                ServerState(
                    backend=fields["be_name"],
                    name=fields["srv_name"],
                    address=fields["srv_addr"],
                    port=int(fields["srv_port"]),
                    op_state=int(fields["srv_op_state"]),
                    admin_state=int(fields["srv_admin_state"]),
                )
            )
        except (KeyError, ValueError) as err:
            raise RuntimeApiError(f"bad 'show servers state' row {line!r}: {err}") from None
    return rows


def parse_stat_sessions(text: str) -> dict[tuple[str, str], int]:
    """From `show stat` CSV: (backend, server) -> current sessions plus queued requests.

    A server whose value is 0 has nothing in flight, so it can be deleted.
    """
    body = text.lstrip()
    if body.startswith("# "):
        body = body[2:]
    result: dict[tuple[str, str], int] = {}
    for row in csv.DictReader(io.StringIO(body)):
        name = row.get("svname") or ""
        if name in ("", "FRONTEND", "BACKEND"):
            continue
        try:
            busy = int(row.get("scur") or 0) + int(row.get("qcur") or 0)
        except ValueError:
            continue
        result[(row.get("pxname") or "", name)] = busy
    return result


#: What HAProxy 2.6 answers to a successful `add server` (the other commands: nothing).
_ADDED = "New server registered."
_DELETED = "Server deleted."


def server_commands(
    ops: Iterable[ServerOp], args: Mapping[tuple[str, str], str]
) -> tuple[list[str], list[str]] | str:
    """The commands for `ops` and the answer each must get, or why they cannot be made.

    `args`: (backend, server) -> the server's arguments as the config renders them, so a
    server added at run time is exactly the one a reload would create. HAProxy 2.6
    creates a dynamic server with its `check` stopped, so one with `check` in its
    arguments also gets `enable health` once it is ready (else passive health, which
    needs the check, would never take it out of rotation)."""
    commands: list[str] = []
    expected: list[str] = []
    for op in ops:
        target = f"{op.backend}/{op.server.name}"
        checked = False
        if op.kind is OpKind.ADD:
            server_args = args.get((op.backend, op.server.name))
            if server_args is None:
                return f"server {target} is not in the rendered config"
            commands.append(f"add server {target} {server_args}")
            expected.append(_ADDED)
            checked = "check" in server_args.split()
        state = "drain" if op.kind is OpKind.DRAIN else "ready"
        commands.append(f"set server {target} state {state}")
        expected.append("")
        if checked:
            commands.append(f"enable health {target}")
            expected.append("")
    return commands, expected


def check_servers(
    rows: Iterable[ServerState],
    expected: Mapping[tuple[str, str], str],
    backends: Iterable[str],
    draining: Mapping[str, Iterable[str]],
) -> str | None:
    """`show servers state` rows of `backends` must list every server of `expected`
    ((backend, server) -> arguments) as ready with its address, every draining one as
    draining (or gone), and nothing else; None when they do, else the first difference."""
    wanted = set(backends)
    seen = {(r.backend, r.name): r for r in rows}
    for (backend, name), server_args in expected.items():
        if backend not in wanted:
            continue
        row = seen.pop((backend, name), None)
        if row is None:
            return f"server {backend}/{name} is missing"
        if not row.ready:
            return f"server {backend}/{name} is not ready (admin state {row.admin_state})"
        endpoint = server_args.split()[0] if server_args else ""
        host = f"[{row.address}]" if ":" in row.address else row.address
        if f"{host}:{row.port}" != endpoint:
            return f"server {backend}/{name} has {host}:{row.port}, not {endpoint}"
    for (backend, name), row in seen.items():
        if name not in draining.get(backend, ()):
            return f"server {backend}/{name} should not be there"
        if not (row.drain or row.maint):
            return f"server {backend}/{name} should be draining"
    return None


def drain_commands(
    draining: Mapping[str, Mapping[str, float]], busy: Mapping[tuple[str, str], int], now: float
) -> tuple[list[str], list[tuple[str, str]]]:
    """For draining servers (backend -> server -> deadline) and their sessions in flight
    (`busy`, from `show stat`): the commands that delete the idle or overdue ones (cutting
    the sessions of overdue ones), and the servers that are done (deleted, or gone)."""
    commands: list[str] = []
    done: list[tuple[str, str]] = []
    for backend, servers in draining.items():
        for name, deadline in servers.items():
            sessions = busy.get((backend, name))
            if sessions is None:
                done.append((backend, name))  # already gone
                continue
            if sessions and now < deadline:
                continue
            target = f"{backend}/{name}"
            if sessions:
                commands.append(f"shutdown sessions server {target}")
            commands += [f"set server {target} state maint", f"del server {target}"]
            done.append((backend, name))
    return commands, done


def deleted_servers(commands: Sequence[str], answers: Sequence[str]) -> set[tuple[str, str]]:
    """The servers whose `del server` succeeded."""
    deleted: set[tuple[str, str]] = set()
    for command, answer in zip(commands, answers, strict=True):
        if command.startswith("del server") and answer.strip() == _DELETED:
            backend, _, name = command.split()[2].partition("/")
            deleted.add((backend, name))
    return deleted


class RuntimeApi:
    """Commands to the current worker over its stats socket; one connection per batch."""

    def __init__(self, *, socket_path: Path, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    async def execute(self, commands: Sequence[str], *, timeout: float | None = None) -> list[str]:
        """Run `commands` in order on one connection; return each answer (without the
        trailing empty line). Raises `RuntimeApiError` if the socket fails or is slow."""
        for command in commands:
            if "\n" in command or "\r" in command:
                raise ValueError(f"one line per command: {command!r}")
        if not commands:
            return []
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
                try:
                    payload = "prompt\n" + "".join(c + "\n" for c in commands)
                    writer.write(payload.encode())
                    data = await self._read_prompts(reader, len(commands) + 1)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except TimeoutError:
            raise RuntimeApiError(
                f"runtime API {self.socket_path} did not answer {len(commands)} command(s) "
                f"within {limit:g} s"
            ) from None
        except OSError as err:
            raise RuntimeApiError(f"runtime API {self.socket_path}: {err}") from err
        # The answer to "prompt" is empty; then one answer per command, each followed
        # by an empty line and the prompt.
        parts = data.split(_PROMPT)[1 : len(commands) + 1]
        return [p.decode(errors="replace").removesuffix("\n").removesuffix("\n") for p in parts]

    @staticmethod
    async def _read_prompts(reader: asyncio.StreamReader, count: int) -> bytes:
        buffer = bytearray()
        seen = 0
        scan_from = 0
        while seen < count:
            chunk = await reader.read(1 << 16)
            if not chunk:
                raise RuntimeApiError("runtime API closed the connection before answering all")
            buffer += chunk
            while (found := buffer.find(_PROMPT, scan_from)) >= 0:
                seen += 1
                scan_from = found + len(_PROMPT)
        return bytes(buffer)

    async def servers_state(self, backends: Iterable[str] | None = None) -> list[ServerState]:
        """`show servers state`, for the given backends only (all when None)."""
        if backends is None:
            return parse_servers_state((await self.execute(["show servers state"]))[0])
        names = sorted(set(backends))
        answers = await self.execute([f"show servers state {name}" for name in names])
        rows: list[ServerState] = []
        for name, answer in zip(names, answers, strict=True):
            if not answer.lstrip().startswith("1"):
                raise RuntimeApiError(f"show servers state {name}: {answer.strip()!r}")
            rows.extend(parse_servers_state(answer))
        return rows

    async def sessions(self, backends: Iterable[str]) -> dict[tuple[str, str], int]:
        """Sessions in flight (current + queued) per server of the given backends."""
        names = sorted(set(backends))
        answers = await self.execute([f"show stat {name} 4 -1" for name in names])
        result: dict[tuple[str, str], int] = {}
        for answer in answers:
            result.update(parse_stat_sessions(answer))
        return result
