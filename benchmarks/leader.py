"""Status of type=LoadBalancer Services and the election of its one writer.

Table 1: from creating a Service of type LoadBalancer (in the fake API server) to its
status written by the leader; the baseline, measured in the same run, is the same
Service's port answering through HAProxy (its listener up). Medians of --rounds.

Table 2: two replicas (distinct --bind-address, distinct pod names, client-go timings:
lease 15 s, renew deadline 10 s, retry 2 s). The time from SIGKILL of the leader to the
other replica holding the Lease, and to the status showing the new leader's address;
the baseline, measured in the same run, is the handover after SIGTERM (the Lease is
released on the way out). Medians of --rounds rounds of each.

Everything binds to 127.0.0.0/8; the fake API server runs in this process's loop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # objects
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from fake_apiserver import FakeAPIServer
from harness import Backends, Controller, free_port
from lbsvc import echo, holder, ingress_of, kill, lb_service, replica, terminate
from objects import slices

MAX_WAIT = 60.0
POLL = 0.005


async def until(predicate_name: str, check: object) -> float:
    """Poll `check` (an async callable returning bool) every POLL s; monotonic time when
    it first held."""
    assert callable(check)
    deadline = time.monotonic() + MAX_WAIT
    while time.monotonic() < deadline:
        if await check():
            return time.monotonic()
        await asyncio.sleep(POLL)
    raise RuntimeError(f"timed out: {predicate_name}")


async def status_table(
    rounds: int, workdir: Path, api: FakeAPIServer, backend: tuple[str, int]
) -> None:
    c = replica(workdir, api, "lb-a", "127.0.0.2")
    c.start()
    try:
        await until("lb-a leads", lambda: _true(holder(api) == "lb-a"))
        served: list[float] = []
        status: list[float] = []
        for i in range(rounds):
            name, number = f"svc-{i}", free_port("127.0.0.2")
            created = time.monotonic()
            for obj in (lb_service(name, number, backend[1]), *slices(name, [backend])):
                await api.create(obj)

            async def up(number: int = number) -> bool:
                return await echo(number, address="127.0.0.2") == "db: hello"

            async def written(name: str = name) -> bool:
                return bool(ingress_of(api, name))

            status_at, served_at = await asyncio.gather(
                until("status", written), until("served", up)
            )
            served.append(served_at - created)
            status.append(status_at - created)
    finally:
        await terminate(c)
    base = statistics.median(served)
    print(f"\nService type=LoadBalancer created -> (median of {rounds})")
    print(f"{'event':<48} {'ms':>8} {'ratio':>6}")
    for label, values in (
        ("port answering through HAProxy (baseline)", served),
        ("status.loadBalancer written by the leader", status),
    ):
        median = statistics.median(values)
        print(f"{label:<48} {median * 1000:>8.0f} {median / base:>6.2f}")


async def takeover_table(rounds: int, workdir: Path, api: FakeAPIServer) -> None:
    addresses = {"lb-a": "127.0.0.2", "lb-b": "127.0.0.3"}
    generation = 0

    def start(name: str) -> Controller:
        nonlocal generation
        generation += 1
        c = replica(workdir / f"g{generation}", api, name, addresses[name])
        c.start()
        return c

    running = {"lb-a": start("lb-a")}
    await until("lb-a leads", lambda: _true(holder(api) == "lb-a"))
    running["lb-b"] = start("lb-b")
    results: dict[str, list[tuple[float, float]]] = {"SIGTERM": [], "SIGKILL": []}
    try:
        for _ in range(rounds):
            for how in ("SIGTERM", "SIGKILL"):
                leader = holder(api)
                other = "lb-b" if leader == "lb-a" else "lb-a"
                await asyncio.sleep(3)  # the follower is up and has read the Lease
                stopped = time.monotonic()
                if how == "SIGKILL":
                    kill(running[leader])
                else:
                    await terminate(running[leader])
                leads = await until("takeover", lambda o=other: _true(holder(api) == o))
                address = addresses[other]

                async def rewritten(address: str = address) -> bool:
                    return [e.get("ip") for e in ingress_of(api, "svc-0")] == [address]

                written = await until("status", rewritten)
                results[how].append((leads - stopped, written - stopped))
                running[leader] = start(leader)
    finally:
        for c in running.values():
            if c.proc is not None and c.proc.poll() is None:
                await terminate(c)
    base = statistics.median(t for t, _ in results["SIGTERM"])
    print(
        f"\nleader takeover, 2 replicas, lease 15 s / renew 10 s / retry 2 s (median of {rounds})"
    )
    print(f"{'leader stopped by':<40} {'Lease taken s':>14} {'ratio':>6} {'status s':>9}")
    labels = {"SIGTERM": "SIGTERM, Lease released (baseline)", "SIGKILL": "SIGKILL, Lease expires"}
    for how, values in results.items():
        lease = statistics.median(t for t, _ in values)
        status = statistics.median(s for _, s in values)
        print(f"{labels[how]:<40} {lease:>14.2f} {lease / base:>6.1f} {status:>9.2f}")


async def run(rounds: int) -> None:
    backends = Backends()
    backend = await backends.tcp("db", "127.0.6.1")
    try:
        with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
            workdir = Path(tmp)
            api = FakeAPIServer(workdir)
            await api.start()
            try:
                await status_table(rounds, workdir / "status", api, backend)
                await takeover_table(rounds, workdir / "takeover", api)
            finally:
                await api.stop()
    finally:
        await backends.close()


async def _true(value: bool) -> bool:
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.rounds))


if __name__ == "__main__":
    main()
