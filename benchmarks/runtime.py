"""Zero-downtime benchmarks: convergence, no drops under churn, data-plane overhead.

Everything runs on this machine, on loopback only, with the real controller, the real
HAProxy and real backends on 127.0.0.0/8, side by side in one run; one table at the end.

1. convergence: one Service gets a new endpoint (the previous one goes), among N
   Services; measured from the change to the first request answered by the new endpoint
   (polled on a keep-alive connection). Reloads are counted from the master's `show proc`.
   Twice: through the file source (the manifest is rewritten) and through the Kubernetes
   source against the fake API server of tests/integration (the probe's EndpointSlice is
   updated, one MODIFIED watch event; the same fake as benchmarks/kube_sync.py).
2. no drops under churn: wrk with new-connection-per-request clients and keep-alive
   clients, while endpoints change and forced reloads (a Service added or removed)
   happen; then the same load against a plain `haproxy -sf` restart loop (the original
   controller's way) as the baseline.
3. data-plane overhead: req/s (wrk, keep-alive) through the generated config versus a
   minimal hand-written config for the same route (prefix stripped), with 1 and 10,000
   Services; the origin is a second HAProxy answering 200 itself, so the origin is not
   the bottleneck. Median of alternating runs.

`--quick` shortens everything (for a smoke run); the full run takes about 8 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from fake_apiserver import FakeAPIServer

from service_loadbalancer.demo import start_http_backend
from service_loadbalancer.haproxy.files import write_files
from service_loadbalancer.haproxy.process import HAProxyProcess
from service_loadbalancer.haproxy.render import render
from service_loadbalancer.kube.objects import KNOWN_KINDS
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Store
from service_loadbalancer.translate import translate

ROWS: list[tuple[str, str, str, str]] = []


def row(benchmark: str, case: str, result: str, target: str) -> None:
    ROWS.append((benchmark, case, result, target))
    print(f"  {benchmark} | {case} | {result} | {target}", file=sys.stderr, flush=True)


def passive_health_fits(servers: int) -> bool:
    """Whether the hard nofile limit holds a descriptor per checked server (HAProxy
    reserves one each and refuses to start otherwise) with as many left for connections."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return hard == resource.RLIM_INFINITY or servers <= hard // 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------- manifests


def service(name: str, endpoints: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """A Service on port 80 and one EndpointSlice per endpoint (each has its own port)."""
    svc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]},
    }
    slices: list[dict[str, Any]] = [
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-{i}",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "", "port": port}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        }
        for i, (address, port) in enumerate(endpoints)
    ]
    return [svc, *slices]


def filler(count: int) -> list[dict[str, Any]]:
    """`count` Services with two endpoints each on addresses nobody sends traffic to."""
    objects: list[dict[str, Any]] = []
    for i in range(count):
        objects += service(
            f"svc{i}", [(f"127.1.{(i >> 8) & 255}.{i & 255}", 8080), ("127.2.0.1", 8080)]
        )
    return objects


def write_manifest(path: Path, objects: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(objects, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------ controller


@dataclass
class Controller:
    workdir: Path
    #: Given: the Kubernetes source through this kubeconfig instead of the manifests directory.
    kubeconfig: Path | None = None
    http_port: int = 0
    healthz_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: False: --passive-health=false (the servers would not fit the nofile limit).
    passive_health: bool = True
    #: More flags (e.g. --ssl-cert); the HTTPS port is always a free one.
    extra_args: list[str] = field(default_factory=list)
    https_port: int = 0

    @property
    def manifests(self) -> Path:
        return self.workdir / "manifests"

    @property
    def run_dir(self) -> Path:
        return self.workdir / "run"

    def start(self) -> None:
        self.http_port, self.healthz_port, self.https_port = free_port(), free_port(), free_port()
        if self.kubeconfig is None:
            self.manifests.mkdir(parents=True, exist_ok=True)
            source = ["--manifests", str(self.manifests)]
        else:
            source = ["--kubeconfig", str(self.kubeconfig)]
        log = (self.workdir / "controller.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "service_loadbalancer.cli",
                *source,
                "--http-port", str(self.http_port),
                "--stats-port", str(free_port()),
                "--healthz-port", str(self.healthz_port),
                "--bind-address", "127.0.0.1",
                "--run-dir", str(self.run_dir),
                "--drain-timeout", "5",
                "--shutdown-grace", "0",  # no rotation to leave: stop at once
                "--passive-health", str(self.passive_health).lower(),
                "--https-port", str(self.https_port),
                "--log-level", os.environ.get("SLB_BENCH_LOG_LEVEL", "warning"),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def wait_healthy(self, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise SystemExit("controller exited; see controller.log")
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.get(f"http://127.0.0.1:{self.healthz_port}/healthz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise SystemExit("controller not healthy in time")

    async def reloads(self) -> int:
        master = HAProxyProcess(
            haproxy_bin="haproxy", config_path=self.run_dir / "haproxy.cfg", run_dir=self.run_dir
        )
        return (await master.show_proc()).reloads

    async def mean_apply_ms(self, method: str) -> float:
        """Mean of the controller's own event-to-applied histogram (its /metrics)."""
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.healthz_port}/metrics") as r,
        ):
            text = await r.text()
        values = {}
        for part in ("sum", "count"):
            found = re.search(
                rf'slb_event_to_applied_seconds_{part}{{method="{method}"}} ([0-9.e+-]+)', text
            )
            values[part] = float(found[1]) if found else 0.0
        return 1000 * values["sum"] / values["count"] if values["count"] else float("nan")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.asynccontextmanager
async def controller(
    workdir: Path,
    kubeconfig: Path | None = None,
    *,
    servers: int = 0,
    extra_args: list[str] | None = None,
) -> AsyncIterator[Controller]:
    c = Controller(
        workdir,
        kubeconfig=kubeconfig,
        passive_health=passive_health_fits(servers),
        extra_args=extra_args or [],
    )
    c.start()
    try:
        await c.wait_healthy()
        yield c
    finally:
        c.stop()


@contextlib.asynccontextmanager
async def http_backends(prefix: str, count: int) -> AsyncIterator[list[tuple[str, int]]]:
    runners = [await start_http_backend(f"b{i}", f"{prefix}.{i + 1}", 0) for i in range(count)]
    try:
        yield [(str(r.addresses[0][0]), int(r.addresses[0][1])) for r in runners]
    finally:
        for r in runners:
            await r.cleanup()


# ----------------------------------------------------------------------- convergence


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Change = Callable[[list[dict[str, Any]]], Awaitable[None]]


@contextlib.asynccontextmanager
async def probe_source(
    work: Path, via: str, filler_objects: list[dict[str, Any]], probe: list[dict[str, Any]]
) -> AsyncIterator[tuple[Path | None, Change]]:
    """The objects served by the file source ("files") or the fake API server ("api");
    yields the kubeconfig (None for files) and how to replace the probe's objects."""
    if via == "files":
        (work / "manifests").mkdir()
        write_manifest(work / "manifests" / "filler.yaml", filler_objects)
        write_manifest(work / "manifests" / "probe.yaml", probe)

        async def rewrite(objects: list[dict[str, Any]]) -> None:
            write_manifest(work / "manifests" / "probe.yaml", objects)

        yield None, rewrite
        return
    api = FakeAPIServer(work)
    api.bulk_load([*filler_objects, *probe])
    await api.start()

    async def update(objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            if obj["kind"] == "EndpointSlice":  # a MODIFIED watch event
                await api.update(obj)

    try:
        yield api.kubeconfig(work / "kubeconfig"), update
    finally:
        await api.stop()


#: (via, services) -> the controller's mean store-to-applied time, in ms.
INSIDE: dict[tuple[str, int], float] = {}


async def convergence(services: int, changes: int, *, via: str = "files") -> None:
    with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
        work = Path(os.environ.get("SLB_BENCH_KEEP") or tmp)
        async with (
            http_backends("127.0.30", 10) as pool,
            probe_source(work, via, filler(services - 1), service("probe", [pool[0]])) as (
                kubeconfig,
                change,
            ),
            controller(work, kubeconfig, servers=2 * services) as c,
            aiohttp.ClientSession() as session,
        ):
            url = f"http://127.0.0.1:{c.http_port}/probe"
            before = await c.reloads()
            times: list[float] = []
            for i in range(1, changes + 1):
                index = i % len(pool)
                want = f"backend=b{index} "
                start = time.perf_counter()
                await change(service("probe", [pool[index]]))
                deadline = start + 60
                while True:
                    async with session.get(url) as r:
                        body = await r.text()
                    if body.startswith(want):
                        break
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"change {i} not served within 60 s")
                    await asyncio.sleep(0.003)  # resolution vs CPU taken from the controller
                times.append(time.perf_counter() - start)
            reloads = await c.reloads() - before
            inside = await c.mean_apply_ms("runtime")
        ms = [t * 1000 for t in times]
        INSIDE[(via, services)] = inside
        target = "0 reloads"
        if services == 1000:
            target = "p99 <= 50 ms, 0 reloads"
        elif services == 10000 and via == "api":
            target = "p99 <= 20 ms, 0 reloads"
        row(
            "convergence",
            f"{services:,} services, {changes} changes" + (", via the API" if via == "api" else ""),
            f"p50 {pct(ms, 0.5):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, {reloads} reloads "
            f"(controller: store to applied {inside:.1f} ms mean)",
            target,
        )


def inside_ratio() -> None:
    """The controller's store-to-applied time at 10,000 Services against 10, per source."""
    for via in ("files", "api"):
        small, large = INSIDE.get((via, 10)), INSIDE.get((via, 10000))
        if small and large:
            row(
                "store to applied",
                f"10,000 vs 10 services{', via the API' if via == 'api' else ''}",
                f"{large:.1f} vs {small:.1f} ms = {large / small:.2f}x",
                "<= 1.5x",
            )


# ----------------------------------------------------------------------------- churn


@dataclass
class WrkResult:
    requests: int
    errors: int
    non_2xx: int
    rps: float


def parse_wrk(text: str) -> WrkResult:
    requests = int(re.search(r"(\d+) requests in", text)[1])  # type: ignore[index]
    errors = 0
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        errors = sum(int(x) for x in found.groups())
    non_2xx = int(found[1]) if (found := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
    return WrkResult(requests, errors, non_2xx, rps)


async def wrk(
    url: str, seconds: float, connections: int, *, close: bool, host: str | None = None
) -> WrkResult:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if close:
        args += ["-H", "Connection: close"]
    if host:
        args += ["-H", f"Host: {host}"]
    proc = await asyncio.create_subprocess_exec(
        *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return parse_wrk(out.decode())


async def load(url: str, seconds: float) -> tuple[WrkResult, WrkResult]:
    closing, keepalive = await asyncio.gather(
        wrk(url, seconds, 25, close=True), wrk(url, seconds, 25, close=False)
    )
    return closing, keepalive


def describe(closing: WrkResult, keepalive: WrkResult) -> str:
    failed = closing.errors + closing.non_2xx + keepalive.errors + keepalive.non_2xx
    total = closing.requests + keepalive.requests
    return (
        f"{failed} failed of {total:,} (new conn {closing.errors}+{closing.non_2xx}, "
        f"keep-alive {keepalive.errors}+{keepalive.non_2xx})"
    )


async def churn(seconds: float, changes: int, reloads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
        work = Path(tmp)
        (work / "manifests").mkdir()
        async with http_backends("127.0.40", 8) as pool:
            app = work / "manifests" / "app.yaml"
            write_manifest(app, service("app", pool[:4]))
            async with controller(work) as c:
                url = f"http://127.0.0.1:{c.http_port}/app/"
                before = await c.reloads()
                events = ["reload" if (i + 1) % ((changes + reloads) // reloads) == 0 else "change"
                          for i in range(changes + reloads)]  # fmt: skip
                gap = (seconds - 4) / len(events)

                async def driver() -> int:
                    await asyncio.sleep(2)
                    extra = work / "manifests" / "extra.yaml"
                    done = 0
                    for i, kind in enumerate(events):
                        if kind == "change":
                            # Rolling replacement: 4 of 8 endpoints, shifted by one.
                            chosen = [pool[(i + k) % len(pool)] for k in range(4)]
                            write_manifest(app, service("app", chosen))
                        elif extra.exists():
                            extra.unlink()  # a Service removed: structural, reloads
                        else:
                            write_manifest(extra, service("extra", [pool[0]]))
                        done += 1
                        await asyncio.sleep(gap)
                    return done

                (closing, keepalive), _ = await asyncio.gather(load(url, seconds), driver())
                ours = await c.reloads() - before
        row(
            "no drops under churn",
            f"controller: {changes} endpoint changes + {ours} reloads, {seconds:.0f} s",
            describe(closing, keepalive),
            "0 failed",
        )
    await churn_baseline(seconds, changes + reloads)


HAND_ORIGIN = """global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend origin
    bind {bind}
    http-request return status 200 content-type text/plain string ok
"""


async def churn_baseline(seconds: float, restarts: int) -> None:
    """The original controller's way: rewrite the config, `haproxy -sf <old pid>`."""
    with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
        work = Path(tmp)
        async with http_backends("127.0.41", 8) as pool:
            port = free_port()
            cfg = work / "haproxy.cfg"
            pid_file = work / "haproxy.pid"

            def write(chosen: list[tuple[str, int]]) -> None:
                servers = "".join(f"    server s{i} {a}:{p}\n" for i, (a, p) in enumerate(chosen))
                cfg.write_text(
                    "global\n    pidfile " + str(pid_file) + "\ndefaults\n    mode http\n"
                    "    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"
                    f"frontend http\n    bind 127.0.0.1:{port}\n    default_backend app\n"
                    f"backend app\n    balance roundrobin\n{servers}"
                )

            write(pool[:4])
            first = await asyncio.create_subprocess_exec("haproxy", "-D", "-f", str(cfg))
            if await first.wait() != 0:
                raise SystemExit("the baseline HAProxy did not start")
            gap = (seconds - 4) / restarts

            async def driver() -> None:
                await asyncio.sleep(2)
                for i in range(restarts):
                    write([pool[(i + k) % len(pool)] for k in range(4)])
                    old = pid_file.read_text().split()
                    proc = await asyncio.create_subprocess_exec(
                        "haproxy", "-D", "-f", str(cfg), "-sf", *old
                    )
                    await proc.wait()
                    await asyncio.sleep(gap)

            try:
                (closing, keepalive), _ = await asyncio.gather(
                    load(f"http://127.0.0.1:{port}/", seconds), driver()
                )
            finally:
                for pid in pid_file.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGTERM)
        row(
            "no drops under churn",
            f"baseline: haproxy -sf x{restarts}, {seconds:.0f} s",
            describe(closing, keepalive),
            "(baseline)",
        )


# -------------------------------------------------------------------------- overhead


@contextlib.contextmanager
def haproxy(cfg: Path) -> Iterator[None]:
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait()


async def wait_serving(url: str, *, host: str | None = None) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(600):
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(url, headers={"Host": host} if host else None) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise SystemExit(f"{url} not serving")


def generated_config(work: Path, services: int, origin: tuple[str, int], port: int) -> Path:
    objects = filler(services - 1) + service("probe", [origin])
    store = Store(KNOWN_KINDS)
    for kind in KNOWN_KINDS:
        store.replace(kind, [o for o in objects if o["kind"] == kind])
    settings = Settings(
        run_dir=work,
        http_port=port,
        stats_port=free_port(),
        bind_address="127.0.0.1",
        passive_health=passive_health_fits(2 * services),
    )
    rendered = render(translate(store.snapshot(), settings).model, settings)
    (work / "server-state").write_text("1\n")
    return write_files(rendered, work / f"gen{services}", "haproxy.cfg")


def hand_config(work: Path, origin: tuple[str, int], port: int) -> Path:
    path = work / "hand.cfg"
    path.write_text(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n"
        "    timeout server 30s\n"
        f"frontend http\n    bind 127.0.0.1:{port}\n    option forwardfor\n"
        "    use_backend probe if { path /probe } || { path_beg /probe/ }\n"
        "backend probe\n    balance roundrobin\n"
        "    http-request replace-path ^/probe(?:/|$)(.*) /\\1\n"
        f"    server s1 {origin[0]}:{origin[1]}\n"
    )
    return path


async def overhead(sizes: list[int], seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
        work = Path(tmp)
        origin = ("127.0.50.1", free_port())
        (work / "origin.cfg").write_text(HAND_ORIGIN.format(bind=f"{origin[0]}:{origin[1]}"))
        with haproxy(work / "origin.cfg"):
            for size in sizes:
                port_gen, port_hand = free_port(), free_port()
                gen = generated_config(work, size, origin, port_gen)
                hand = hand_config(work, origin, port_hand)
                gen_rps: list[float] = []
                hand_rps: list[float] = []
                with haproxy(gen), haproxy(hand):
                    url_gen = f"http://127.0.0.1:{port_gen}/probe/x"
                    url_hand = f"http://127.0.0.1:{port_hand}/probe/x"
                    await wait_serving(url_gen)
                    await wait_serving(url_hand)
                    for _ in range(rounds):  # alternate, so drift hits both alike
                        gen_rps.append((await wrk(url_gen, seconds, 20, close=False)).rps)
                        hand_rps.append((await wrk(url_hand, seconds, 20, close=False)).rps)
                g, h = statistics.median(gen_rps), statistics.median(hand_rps)
                row(
                    "data-plane overhead",
                    f"{size:,} services, median of {rounds} x {seconds:.0f} s",
                    f"{g:,.0f} vs hand-written {h:,.0f} req/s = {g / h:.2f}",
                    "ratio >= 0.95",
                )


# ------------------------------------------------------------------------------ main


async def amain(quick: bool, only: str | None) -> None:
    if only == "convergence":  # the same sizes as the full run
        await convergence(10, 200)
        await convergence(1000, 200)
        await convergence(10000, 100)
        await convergence(10, 200, via="api")
        await convergence(1000, 200, via="api")
        await convergence(10000, 200, via="api")
        inside_ratio()
        return
    if only == "churn":
        await churn(15, 50, 5)
        return
    if only == "overhead":
        await overhead([1, 10000], 3, 7)
        return
    if quick:
        await convergence(10, 20)
        await convergence(1000, 20)
        await convergence(10000, 3)
        await convergence(10, 20, via="api")
        await convergence(1000, 20, via="api")
        await convergence(10000, 20, via="api")
        inside_ratio()
        await churn(15, 50, 5)
        await overhead([1, 10000], 2, 1)
    else:
        await convergence(10, 200)
        await convergence(1000, 200)
        await convergence(10000, 100)
        await convergence(10, 200, via="api")
        await convergence(1000, 200, via="api")
        await convergence(10000, 200, via="api")
        inside_ratio()
        await churn(60, 200, 20)
        await overhead([1, 10000], 3, 7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument(
        "--only", choices=["convergence", "churn", "overhead"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(amain(args.quick, args.only))
    widths = [max(len(r[i]) for r in [("benchmark", "case", "result", "target"), *ROWS])
              for i in range(4)]  # fmt: skip
    print(f"\nzero-downtime benchmarks, {os.cpu_count()} cores, loopback only"
          f"{' (--quick)' if args.quick else ''}, {time.monotonic() - started:.0f} s")  # fmt: skip
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        print(f"passive health off in configs of more than {hard // 2:,} servers "
              f"(hard nofile limit {hard:,})")  # fmt: skip
    for r in [("benchmark", "case", "result", "target"), tuple("-" * w for w in widths), *ROWS]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
