"""Route-lookup cost of Ingress rules: req/s with 10 rules against 10,000, same run.

The claim (README, Ingress): a request costs the same whatever the number of Ingress
rules, because the rules are map look-ups (trees), never one ACL per rule. Two configs
are rendered from Ingress objects by the real translation and rendering: one with 10
rules, one with 10,000 (all five kinds: exact host Exact and Prefix, wildcard host
Prefix and Exact, any-host Prefix), each served by its own HAProxy in front of an
origin HAProxy that answers 200 itself (so the origin is not the bottleneck). wrk
(keep-alive, 20 connections, one thread) then alternates between the two, for two
requests:

- a hit on the first look-up (an exact host and a Prefix path);
- a hit on the last one (a rule without host, after every other look-up missed).

Each row is the median req/s of the rounds, and the ratio 10,000 / 10 (1.0 = same
cost). Loopback only. `--quick` is a short smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # objects

from objects import (
    endpoint_slice,
    ingress,
    ingress_class,
    ingress_path,
    ingress_rule,
    service,
)
from runtime import HAND_ORIGIN, free_port, haproxy, wait_serving, wrk

from service_loadbalancer.haproxy.files import write_files
from service_loadbalancer.haproxy.render import render
from service_loadbalancer.kube.objects import KNOWN_KINDS
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Store
from service_loadbalancer.translate import translate

#: (Host header, path) of the two requests measured.
FIRST = ("probe.example", "/probe/x")
LAST = ("nobody.example", "/anyhost-probe/x")
RULES_PER_INGRESS = 100


def objects(rules: int, origin: tuple[str, int]) -> list[dict[str, Any]]:
    """`rules` Ingress rules of the five kinds (the two probes among them), all to one
    Service whose endpoint is the origin."""
    paths: list[tuple[str | None, str, str]] = [
        ("probe.example", "/probe", "Prefix"),
        (None, "/anyhost-probe", "Prefix"),
    ]
    kinds: list[tuple[str | None, str, str]] = [
        ("h{i}.example", "/p{i}", "Prefix"),
        ("h{i}.example", "/e{i}", "Exact"),
        ("*.w{i}.example", "/p{i}", "Prefix"),
        ("*.w{i}.example", "/e{i}", "Exact"),
        (None, "/any{i}/x", "Prefix"),
    ]
    i = 0
    while len(paths) < rules:
        host, path, path_type = kinds[i % len(kinds)]
        paths.append((host.format(i=i) if host else None, path.format(i=i), path_type))
        i += 1
    found: list[dict[str, Any]] = [
        ingress_class(),
        service("origin", 80),
        endpoint_slice("origin", origin[0], ports=[{"port": origin[1], "protocol": "TCP"}]),
    ]
    for start in range(0, len(paths), RULES_PER_INGRESS):
        chunk = paths[start : start + RULES_PER_INGRESS]
        found.append(
            ingress(
                f"ing{start}",
                *(ingress_rule(h, ingress_path(p, "origin", path_type=t)) for h, p, t in chunk),
            )
        )
    return found


def config(work: Path, rules: int, origin: tuple[str, int], port: int) -> Path:
    store = Store(KNOWN_KINDS)
    found = objects(rules, origin)
    for kind in KNOWN_KINDS:
        store.replace(kind, [o for o in found if o["kind"] == kind])
    settings = Settings(
        run_dir=work, http_port=port, stats_port=free_port(), bind_address="127.0.0.1"
    )
    translation = translate(store.snapshot(), settings)
    assert not translation.problems, translation.problems[:3]
    assert len(translation.model.ingress_routes) == rules
    (work / "server-state").write_text("1\n")
    return write_files(render(translation.model, settings), work / f"ing{rules}", "haproxy.cfg")


async def measure(sizes: tuple[int, int], seconds: float, rounds: int) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="slb-bench-ingress-") as tmp:
        work = Path(tmp)
        origin = ("127.0.51.1", free_port())
        (work / "origin.cfg").write_text(HAND_ORIGIN.format(bind=f"{origin[0]}:{origin[1]}"))
        ports = {size: free_port() for size in sizes}
        configs = {size: config(work, size, origin, ports[size]) for size in sizes}
        small, large = sizes
        with haproxy(work / "origin.cfg"), haproxy(configs[small]), haproxy(configs[large]):
            for name, (host, path) in (("first look-up", FIRST), ("last look-up", LAST)):
                rps: dict[int, list[float]] = {size: [] for size in sizes}
                for size in sizes:
                    await wait_serving(f"http://127.0.0.1:{ports[size]}{path}", host=host)
                for _ in range(rounds):  # alternate, so drift hits both alike
                    for size in sizes:
                        url = f"http://127.0.0.1:{ports[size]}{path}"
                        result = await wrk(url, seconds, 20, close=False, host=host)
                        assert result.errors == result.non_2xx == 0, result
                        rps[size].append(result.rps)
                a, b = statistics.median(rps[small]), statistics.median(rps[large])
                rows.append(
                    (
                        f"{name} (Host {host}, {path})",
                        f"{b:,.0f} req/s at {large:,} rules vs {a:,.0f} at {small:,}",
                        f"{b / a:.2f}",
                    )
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    args = parser.parse_args()
    started = time.monotonic()
    seconds, rounds = (1.0, 3) if args.quick else (3.0, 7)
    rows = asyncio.run(measure((10, 10_000), seconds, rounds))
    print(
        f"\nIngress route lookup, {os.cpu_count()} cores, loopback only, wrk keep-alive 20 "
        f"connections, median of {rounds} x {seconds:.0f} s{' (--quick)' if args.quick else ''}"
        f", {time.monotonic() - started:.0f} s"
    )
    header = ("request", "req/s", "ratio 10,000 / 10 (target >= 0.95)")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
    for r in (header, tuple("-" * w for w in widths), *rows):
        print(" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
