"""Fail-over and fail-back of a global Service between two clusters (issue 13).

The real controller reads two fake API servers (the local cluster and `--remote-cluster
east`), in front of the real HAProxy and four real backends on 127.0.14.0/24: two pods
per cluster. The Service is global with `lb.affinity: local`, so the remote pods are
HAProxy backup servers. A client sends requests back to back (each on a new connection)
throughout, and records who answered each one and when.

- fail-over: from the deletion of the local EndpointSlices (the API call made) to the
  first request answered by a remote pod;
- fail-back: from their re-creation to the first request answered by a local pod;
- baseline, in the same run: an ordinary endpoint change in one cluster (a third local
  pod added to a plain Service: from the API call to its first answer), the endpoint
  fast path the fail-over rides on.

Medians of --runs runs (10 by default), the failed requests over all of them (target 0),
and the HAProxy reloads meanwhile (target 0). Traffic only on 127.0.0.0/8; every loop is
bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # objects
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from fake_apiserver import FakeAPIServer
from harness import Backends, Controller, backend_names, request, wait_for
from objects import service, slices

GLOBAL = {"serviceloadbalancer/lb.global": "true"}
#: The longest any one step may take before the benchmark gives up.
MAX_WAIT = 60.0
MAX_REQUESTS = 2_000_000


@dataclass
class Client:
    """Back-to-back requests to `path`: (time answered, backend) per answer; failures."""

    port: int
    path: str
    answers: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        deadline = time.monotonic() + 3600
        while not self.done.is_set() and time.monotonic() < deadline:
            if len(self.answers) + len(self.failures) > MAX_REQUESTS:
                break
            try:
                answer = await request(self.port, self.path)
            except (OSError, ValueError, TimeoutError) as err:
                self.failures.append(repr(err))
                continue
            if answer.status == 200:
                self.answers.append((time.monotonic(), backend_names([answer.body])[0]))
            else:
                self.failures.append(f"HTTP {answer.status}")

    async def first_after(self, since: float, prefix: str) -> float:
        """Seconds from `since` to the first answer from a backend named `prefix`..."""
        found: list[float] = []

        async def answered() -> bool:
            found[:] = [t for t, name in self.answers if t >= since and name.startswith(prefix)]
            return bool(found)

        await wait_for(answered, within=MAX_WAIT, what=f"an answer from {prefix}*")
        return found[0] - since


async def start_api(directory: Path) -> FakeAPIServer:
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    api = FakeAPIServer(directory, bookmark_interval=0.5)
    await api.start()
    return api


async def create_all(api: FakeAPIServer, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        obj.get("metadata", {}).pop("resourceVersion", None)
        await api.create(obj)


async def delete_all(api: FakeAPIServer, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        await api.delete(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])


async def bench(runs: int) -> None:
    backends = Backends()
    local_pods = [await backends.http(f"local-{i}", f"127.0.14.{i}") for i in (1, 2)]
    east_pods = [await backends.http(f"east-{i}", f"127.0.14.{10 + i}") for i in (1, 2)]
    plain_pods = [await backends.http(f"plain-{i}", f"127.0.14.{20 + i}") for i in (1, 2)]
    with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
        workdir = Path(tmp)
        local = await start_api(workdir / "local-api")
        east = await start_api(workdir / "east-api")
        c = Controller(
            workdir,
            use_manifests=False,
            extra_args=[
                "--kubeconfig", str(local.kubeconfig(workdir / "local-api" / "kubeconfig")),
                "--remote-cluster",
                f"east={east.kubeconfig(workdir / 'east-api' / 'kubeconfig')}",
            ],
        )  # fmt: skip
        local_slices = slices("web", local_pods)
        plain_first, plain_second = slices("plain", plain_pods)
        await create_all(local, [service("web", 80, annotations=GLOBAL), *local_slices])
        await create_all(east, [service("web", 80, annotations=GLOBAL), *slices("web", east_pods)])
        await create_all(local, [service("plain", 80), plain_first])
        web = Client(0, "/web")
        plain = Client(0, "/plain")
        tasks: list[asyncio.Task[None]] = []
        over: list[float] = []
        back: list[float] = []
        baseline: list[float] = []
        try:
            c.start()
            await c.wait_healthy()
            web.port = plain.port = c.http_port
            tasks = [asyncio.create_task(web.run()), asyncio.create_task(plain.run())]
            await web.first_after(0.0, "local-")
            await plain.first_after(0.0, "plain-")

            async def east_in() -> bool:  # the remote endpoints are there, as backups
                answer = await request(c.healthz_port, "/healthz")
                return "remote cluster east: ok" in answer.body

            await wait_for(east_in, within=MAX_WAIT, what="east listed")
            await asyncio.sleep(0.5)  # let the remote servers settle in HAProxy
            reloads = c.log().count("reloading HAProxy: ")
            for _ in range(runs):
                started = time.monotonic()
                await create_all(local, [plain_second])
                baseline.append(await plain.first_after(started, "plain-2"))
                await delete_all(local, [plain_second])
                started = time.monotonic()
                await delete_all(local, local_slices)
                over.append(await web.first_after(started, "east-"))
                await asyncio.sleep(0.3)  # serve from the other cluster a little
                started = time.monotonic()
                await create_all(local, local_slices)
                back.append(await web.first_after(started, "local-"))
                await asyncio.sleep(0.3)
            reloads = c.log().count("reloading HAProxy: ") - reloads
        finally:
            web.done.set()
            plain.done.set()
            await asyncio.gather(*tasks)
            c.stop()
            await local.stop()
            await east.stop()
            await backends.close()
    base = statistics.median(baseline)
    print(
        f"\nglobal Service fail-over between two clusters (median of {runs} runs; client "
        f"sending back to back: {len(web.answers)} requests, {len(web.failures)} failed)"
    )
    print(f"{'step':<58} {'ms':>8} {'ratio':>6}")
    for label, values in (
        ("endpoint added in one cluster (baseline)", baseline),
        ("fail-over: local endpoints removed -> first remote answer", over),
        ("fail-back: local endpoints back -> first local answer", back),
    ):
        ms = statistics.median(values) * 1000
        print(f"{label:<58} {ms:>8.1f} {statistics.median(values) / base:>6.2f}")
    print(f"failed requests during fail-over and fail-back: {len(web.failures)}"
          f"{' ' + repr(web.failures[:3]) if web.failures else ''}; "
          f"HAProxy reloads meanwhile: {reloads}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 runs")
    args = parser.parse_args()
    asyncio.run(bench(3 if args.quick else args.runs))


if __name__ == "__main__":
    main()
