"""Failure benchmark: one of three pods dead (listed and ready, nothing listening) under
load, through the controller's config (retries elsewhere, passive health) against the
same three servers behind a config without them (`retries 0`, no check), side by side
in one run. Loopback only, real HAProxy, real backends.

The load is wrk's, as in benchmarks/runtime.py: 25 clients opening a new connection
per request and 25 keep-alive clients at once. A failed request is a socket error or a
non-2xx answer.

`--quick` runs 10 s instead of 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime import (
    ROWS,
    controller,
    describe,
    free_port,
    haproxy,
    http_backends,
    load,
    row,
    service,
    wait_serving,
    write_manifest,
)

#: The same three servers without retries (`retries 0`) and without passive health.
#: (HAProxy's default, `retries 3` on the same dead server with a 1 s turn-around, is
#: worse: a request to the dead pod waits 3 s, then fails anyway.)
BASELINE = """global
    nbthread 1
defaults
    mode http
    retries 0
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend http
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance roundrobin
{servers}"""


def dead_endpoint(address: str) -> tuple[str, int]:
    """An address and port with nothing listening (a pod that died, still listed)."""
    with socket.socket() as s:
        s.bind((address, 0))
        return address, int(s.getsockname()[1])


async def one_dead(seconds: float) -> None:
    async with http_backends("127.0.42", 2) as live:
        pods = [*live, dead_endpoint("127.0.42.3")]
        with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
            work = Path(tmp)
            (work / "manifests").mkdir()
            write_manifest(work / "manifests" / "app.yaml", service("app", pods))
            async with controller(work) as c:
                url = f"http://127.0.0.1:{c.http_port}/app/"
                await wait_serving(url)
                closing, keepalive = await load(url, seconds)
            row(
                "one of three pods dead",
                f"controller (retries elsewhere, passive health), {seconds:.0f} s of wrk",
                describe(closing, keepalive),
                "0 failed",
            )
            port = free_port()
            cfg = work / "baseline.cfg"
            servers = "".join(f"    server s{i} {a}:{p}\n" for i, (a, p) in enumerate(pods))
            cfg.write_text(BASELINE.format(port=port, servers=servers))
            with haproxy(cfg):
                url = f"http://127.0.0.1:{port}/"
                await wait_serving(url)
                closing, keepalive = await load(url, seconds)
            row(
                "one of three pods dead",
                f"baseline: no retries, no passive health, {seconds:.0f} s of wrk",
                describe(closing, keepalive),
                "(baseline)",
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s instead of 60 s")
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(one_dead(10 if args.quick else 60))
    header = ("benchmark", "case", "result", "target")
    widths = [max(len(r[i]) for r in [header, *ROWS]) for i in range(4)]
    print(f"\nfailure benchmarks, {os.cpu_count()} cores, loopback only"
          f"{' (--quick)' if args.quick else ''}, {time.monotonic() - started:.0f} s")  # fmt: skip
    for r in [header, tuple("-" * w for w in widths), *ROWS]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
