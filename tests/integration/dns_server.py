"""A tiny authoritative DNS server for tests: A records from a dict the test edits.

Enough of RFC 1035 for HAProxy's resolvers: one question per query, A answers from
`records` (TTL 1 s), an empty NOERROR answer for other types of a known name (AAAA),
NXDOMAIN for unknown names. Written here rather than taken from a package: forty lines,
and the tests never send a query anywhere but this server on a loopback address.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass, field

TYPE_A = 1
CLASS_IN = 1


def _question(packet: bytes) -> tuple[str, int, bytes]:
    """(lower-case name, qtype, the question's bytes) of a query."""
    at, labels = 12, []
    while packet[at]:
        length = packet[at]
        labels.append(packet[at + 1 : at + 1 + length].decode("ascii").lower())
        at += 1 + length
    end = at + 5
    qtype = struct.unpack("!H", packet[at + 1 : at + 3])[0]
    return ".".join(labels), qtype, packet[12:end]


def answer(packet: bytes, records: dict[str, str]) -> bytes:
    ident, flags = struct.unpack("!HH", packet[:4])
    name, qtype, question = _question(packet)
    address = records.get(name)
    answers = b""
    if address is not None and qtype == TYPE_A:
        rdata = socket.inet_aton(address)
        answers = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, 1, len(rdata)) + rdata
    rcode = 3 if address is None else 0  # NXDOMAIN
    out_flags = 0x8000 | 0x0400 | (flags & 0x0100) | rcode  # QR, AA, RD copied
    header = struct.pack("!HHHHHH", ident, out_flags, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


@dataclass
class DnsServer(asyncio.DatagramProtocol):
    """`await start(address)`; edit `records` to change the answers; `close()`."""

    records: dict[str, str] = field(default_factory=dict)
    queries: int = 0
    transport: asyncio.DatagramTransport | None = None

    async def start(self, address: str) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(address, 0))
        self.transport = transport
        host, port = transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queries += 1
        try:
            reply = answer(data, self.records)
        except (IndexError, UnicodeDecodeError, struct.error):
            return
        assert self.transport is not None
        self.transport.sendto(reply, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
