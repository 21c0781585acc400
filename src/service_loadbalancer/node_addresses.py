"""The node's own IP addresses, for `--deny-external-cidrs node`.

Why: an ExternalName that resolves to one of the node's addresses makes the load
balancer a proxy to the node's own services (its kubelet, its stats page): the same
hole as `localhost`, by another name (CVE-2021-25740). The addresses are read once, at
start, from the kernel's tables in /proc (no extra package, no subprocess): IPv4 local
addresses from /proc/net/fib_trie (the `/32 host LOCAL` entries), IPv6 from
/proc/net/if_inet6. The parsing is pure; `read_node_addresses` is the one read.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

FIB_TRIE = Path("/proc/net/fib_trie")
IF_INET6 = Path("/proc/net/if_inet6")


def parse_fib_trie(text: str) -> set[str]:
    """IPv4 addresses the kernel delivers locally: each `|-- <address>` line followed by
    a `/32 host LOCAL` line."""
    found: set[str] = set()
    last = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            last = stripped[3:].strip()
        elif stripped == "/32 host LOCAL" and last:
            try:
                found.add(str(ipaddress.IPv4Address(last)))
            except ValueError:
                continue
    return found


def parse_if_inet6(text: str) -> set[str]:
    """IPv6 addresses of the interfaces: the first column, 32 hexadecimal digits."""
    found: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if not fields or len(fields[0]) != 32:
            continue
        try:
            found.add(str(ipaddress.IPv6Address(int(fields[0], 16))))
        except ValueError:
            continue
    return found


def read_node_addresses(fib_trie: Path = FIB_TRIE, if_inet6: Path = IF_INET6) -> set[str]:
    """The node's addresses; a table that cannot be read contributes none (not Linux)."""
    addresses: set[str] = set()
    for path, parse in ((fib_trie, parse_fib_trie), (if_inet6, parse_if_inet6)):
        try:
            addresses |= parse(path.read_text(encoding="ascii", errors="replace"))
        except OSError:
            continue
    return addresses
