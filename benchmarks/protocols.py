"""Protocol benchmark: HTTP/2 versus HTTP/1.1 through TLS termination, side by side.

The real controller (its generated config, `lb.sslTerm` on one Service, the certificate
from --ssl-cert), an origin that is a second HAProxy answering 200 itself (so the origin
is not the bottleneck), and one client for both protocols, h2load (Debian's
nghttp2-client), so that the only difference is what the client and the load balancer
speak: `--h1` (HTTP/1.1 over TLS, ALPN http/1.1) or HTTP/2 (ALPN h2). Connections are
opened once (keep-alive), so the TLS handshakes are not what is measured.

Cases, each the median of alternating runs:
- 20 connections, one request in flight on each (the same concurrency for both);
- HTTP/2 with 2 connections of 10 streams each (the same 20 requests in flight,
  multiplexed), against the same HTTP/1.1 figure.

`--quick` runs one round of 2 s instead of five of 5 s. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime import HAND_ORIGIN, ROWS, controller, free_port, haproxy, row, write_manifest

CONNECTIONS = 20


@dataclass(frozen=True)
class H2loadResult:
    rps: float
    done: int
    failed: int
    protocol: str


def parse_h2load(text: str) -> H2loadResult:
    """h2load's summary: `finished in 5.00s, 12345.60 req/s, ...`, `requests: N total,
    N started, N done, N succeeded, N failed, N errored, N timeout` and the negotiated
    `Application protocol: h2`."""
    rps = re.search(r"finished in [0-9.]+s, ([0-9.]+) req/s", text)
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", text)
    protocol = re.search(r"Application protocol: (\S+)", text)
    if rps is None or counts is None:
        raise SystemExit(f"unexpected h2load output:\n{text}")
    done, succeeded = int(counts[1]), int(counts[2])
    return H2loadResult(
        rps=float(rps[1]),
        done=done,
        failed=done - succeeded,
        protocol=protocol[1] if protocol else "?",
    )


async def h2load(
    url: str, seconds: float, *, h1: bool, connections: int, streams: int
) -> H2loadResult:
    args = ["h2load", "-D", f"{seconds:g}", "-c", str(connections), "-m", str(streams), "-t", "1"]
    if h1:
        args.append("--h1")
    proc = await asyncio.create_subprocess_exec(
        *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    result = parse_h2load(out.decode(errors="replace"))
    wanted = "http/1.1" if h1 else "h2"
    if result.protocol != wanted:
        raise SystemExit(f"h2load spoke {result.protocol}, not {wanted}:\n{out.decode()}")
    return result


async def wait_https(url: str) -> None:
    for _ in range(200):
        proc = await asyncio.create_subprocess_exec(
            "h2load", "-n", "1", "-c", "1", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        if "1 succeeded" in out.decode(errors="replace") and "1 2xx" in out.decode():
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"{url} not serving over TLS")


async def compare(seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
        work = Path(tmp)
        origin = ("127.0.51.1", free_port())
        (work / "origin.cfg").write_text(HAND_ORIGIN.format(bind=f"{origin[0]}:{origin[1]}"))
        cert = work / "lb.pem"
        trustme.CA().issue_cert("lb.example").private_key_and_cert_chain_pem.write_to_path(
            str(cert)
        )
        (work / "manifests").mkdir()
        write_manifest(
            work / "manifests" / "probe.yaml",
            [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": "probe",
                        "namespace": "default",
                        "annotations": {"serviceloadbalancer/lb.sslTerm": "true"},
                    },
                    "spec": {"ports": [{"port": 80}], "selector": {"app": "probe"}},
                },
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": "probe-1",
                        "namespace": "default",
                        "labels": {"kubernetes.io/service-name": "probe"},
                    },
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [origin[0]], "conditions": {"ready": True}}],
                    "ports": [{"port": origin[1]}],
                },
            ],
        )
        with haproxy(work / "origin.cfg"):
            async with controller(work, extra_args=["--ssl-cert", str(cert)]) as c:
                url = f"https://127.0.0.1:{c.https_port}/probe/x"
                await wait_https(url)
                h1: list[float] = []
                h2: list[float] = []
                mux: list[float] = []
                failed = 0
                for _ in range(rounds):  # alternate, so drift hits all alike
                    for results, is_h1, conns, streams in (
                        (h1, True, CONNECTIONS, 1),
                        (h2, False, CONNECTIONS, 1),
                        (mux, False, 2, CONNECTIONS // 2),
                    ):
                        got = await h2load(
                            url, seconds, h1=is_h1, connections=conns, streams=streams
                        )
                        results.append(got.rps)
                        failed += got.failed
        how = f"median of {rounds} x {seconds:g} s, h2load"
        a, b, m = statistics.median(h2), statistics.median(h1), statistics.median(mux)
        row(
            "protocols via TLS",
            f"HTTP/2 vs HTTP/1.1, {CONNECTIONS} connections x 1 request in flight, {how}",
            f"{a:,.0f} vs {b:,.0f} req/s = {a / b:.2f}",
            "-",
        )
        row(
            "protocols via TLS",
            f"HTTP/2 multiplexed (2 connections x 10 streams) vs HTTP/1.1 "
            f"({CONNECTIONS} connections), {how}",
            f"{m:,.0f} vs {b:,.0f} req/s = {m / b:.2f}; {failed} failed in all runs",
            "0 failed",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 2 s")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("needs h2load (Debian package nghttp2-client; `make h2load`)")
    started = time.monotonic()
    asyncio.run(compare(2, 1) if args.quick else compare(5, 5))
    header = ("benchmark", "case", "result", "target")
    widths = [max(len(r[i]) for r in [header, *ROWS]) for i in range(4)]
    print(f"\nprotocol benchmarks, {os.cpu_count()} cores, loopback only"
          f"{' (--quick)' if args.quick else ''}, {time.monotonic() - started:.0f} s")  # fmt: skip
    for r in [header, tuple("-" * w for w in widths), *ROWS]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
