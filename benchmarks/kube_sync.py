"""Start-up with a large cluster, and catch-up after an API outage, for the Kubernetes source.

Table 1: the time from starting the controller (a subprocess) to its first serving config
(/healthz 200 and a request routed to the last Service answered by its backend), with
5,000 Services and 5,000 EndpointSlices, and the controller's peak RSS (VmHWM) in that run.
Served by the fake API server over HTTPS in pages of 500; the baseline, measured in the same
run, is the same objects from a manifests directory (`--manifests`). Medians of --runs runs.

Table 2 (--outage SECONDS, 0 to skip): a client sends requests through HAProxy while the
API server is stopped for SECONDS; the failed requests, and the time from the API's return
to a new Service being served (the catch-up; the issue asks for under 2 s).

Everything binds to 127.0.0.0/8; every load loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # objects
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from fake_apiserver import FakeAPIServer
from harness import Backends, Controller, write_manifest
from objects import service, slices

SERVICES = 5000
MAX_WAIT = 300.0


def cluster(n: int, last: tuple[str, int]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for i in range(n):
        name = f"svc-{i:05d}"
        objects.append(service(name, 80, namespace=f"ns{i % 50}"))
        endpoint = last if i == n - 1 else (f"127.9.{(i >> 8) & 255}.{i & 255}", 8080)
        objects.extend(slices(name, [endpoint], namespace=f"ns{i % 50}"))
    return objects


async def first_serving(c: Controller, path: str) -> float:
    """Seconds from start to /healthz 200 and `path` answered 200 (polled every 20 ms)."""
    started = time.monotonic()
    c.start()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < MAX_WAIT:
            assert c.proc is not None
            if c.proc.poll() is not None:
                raise RuntimeError(f"controller exited:\n{c.log()}")
            try:
                async with session.get(f"http://127.0.0.1:{c.healthz_port}/healthz") as r:
                    healthy = r.status == 200
                if healthy:
                    async with session.get(f"http://127.0.0.1:{c.http_port}{path}") as r:
                        if r.status == 200:
                            return time.monotonic() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.02)
    raise RuntimeError(f"not serving after {MAX_WAIT} s:\n{c.log()}")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_run(workdir: Path, objects: list[dict[str, Any]], source: str) -> tuple[float, float]:
    path = f"/ns{(SERVICES - 1) % 50}/svc-{SERVICES - 1:05d}"
    if source == "files":
        c = Controller(workdir)
        c.manifests.mkdir(parents=True)
        write_manifest(c.manifests / "cluster.yaml", objects)
        api = None
    else:
        api = FakeAPIServer(workdir)
        api.bulk_load(objects)
        await api.start()
        kubeconfig = api.kubeconfig(workdir / "kubeconfig")
        c = Controller(workdir, use_manifests=False, extra_args=["--kubeconfig", str(kubeconfig)])
    try:
        seconds = await first_serving(c, path)
        assert c.proc is not None
        return seconds, peak_rss_mib(c.proc.pid)
    finally:
        c.stop()
        if api is not None:
            await api.stop()


async def startup_table(runs: int) -> None:
    backends = Backends()
    last = await backends.http("last", "127.0.5.1")
    objects = cluster(SERVICES, last)
    results: dict[str, list[tuple[float, float]]] = {"files": [], "kube": []}
    try:
        for _ in range(runs):
            for source, values in results.items():
                with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
                    values.append(await one_run(Path(tmp), objects, source))
    finally:
        await backends.close()
    base = statistics.median(s for s, _ in results["files"])
    print(f"\nfirst serving config, {SERVICES} Services + {SERVICES} EndpointSlices "
          f"(median of {runs} runs)")  # fmt: skip
    print(f"{'source':<44} {'seconds':>8} {'ratio':>6} {'peak RSS MiB':>13}")
    labels = {
        "files": "manifests directory (baseline)",
        "kube": "Kubernetes API, HTTPS, pages of 500",
    }
    for source, values in results.items():
        seconds = statistics.median(s for s, _ in values)
        rss = statistics.median(r for _, r in values)
        print(f"{labels[source]:<44} {seconds:>8.2f} {seconds / base:>6.2f} {rss:>13.1f}")


async def outage_table(outage: float) -> None:
    backends = Backends()
    web = await backends.http("web", "127.0.5.2")
    new = await backends.http("new", "127.0.5.3")
    with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
        workdir = Path(tmp)
        api = FakeAPIServer(workdir)
        for obj in (service("web", 80), *slices("web", [web])):
            await api.create(obj)
        await api.start()
        kubeconfig = api.kubeconfig(workdir / "kubeconfig")
        c = Controller(workdir, use_manifests=False, extra_args=["--kubeconfig", str(kubeconfig)])
        requests = failed = 0
        done = asyncio.Event()

        async def client() -> None:
            nonlocal requests, failed
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:
                deadline = time.monotonic() + outage + MAX_WAIT
                while not done.is_set() and time.monotonic() < deadline:
                    try:
                        async with session.get(f"http://127.0.0.1:{c.http_port}/web") as r:
                            await r.read()
                            failed += r.status != 200
                    except aiohttp.ClientError:
                        failed += 1
                    requests += 1
                    await asyncio.sleep(0.01)

        try:
            await first_serving(c, "/web")
            task = asyncio.create_task(client())
            await api.stop()
            await asyncio.sleep(outage)  # the outage itself: a fixed time is the point here
            await api.start()
            back = time.monotonic()
            for obj in (service("new", 80), *slices("new", [new])):
                await api.create(obj)
            async with aiohttp.ClientSession() as session:
                while time.monotonic() - back < MAX_WAIT:
                    async with session.get(f"http://127.0.0.1:{c.http_port}/new") as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(0.01)
            catch_up = time.monotonic() - back
            done.set()
            await task
        finally:
            c.stop()
            await api.stop()
            await backends.close()
    print(f"\nAPI outage of {outage:.0f} s with a client running throughout")
    print(f"{'requests':>9} {'failed':>7} {'catch-up after the API returns (s)':>36}")
    print(f"{requests:>9} {failed:>7} {catch_up:>36.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--outage", type=float, default=0.0, help="seconds; 0 skips it")
    args = parser.parse_args()
    asyncio.run(startup_table(args.runs))
    if args.outage > 0:
        asyncio.run(outage_table(args.outage))


if __name__ == "__main__":
    main()
