"""HAProxy's own memory with our config versus a hand-written one with the same servers.

For N Services x 10 endpoints (N = 1,000 and 10,000; `--quick`: 100 and 1,000) our
config is built with the package's own translate + render, written with its map files,
and served by a real HAProxy started as the product starts it (master-worker: `haproxy
-W -S <run>/master.sock -f <cfg> -p <run>/haproxy.pid`, see haproxy/process.py; the
stats credentials in its environment, as `Settings.haproxy_env()` gives them). Once a
request is answered and the worker's RSS has settled, the worker and the master are
read from /proc: VmRSS (status), Pss and Private (smaps_rollup). The baseline is a
minimal hand-written config with the same backends and servers (one frontend that
answers itself, `backend bN` + `server sM ip:port`, nothing else), measured in the same
run. Each case is started 3 times; the table shows medians.

Then, at the largest N only, variants that change memory or might: nbthread (1, 2 and
4, and 8 for ours; the main rows run the default, one thread per CPU), 1 endpoint per
Service (to split the cost between Services and endpoints), server names like ours,
per-backend and per-server options that our template uses or could use (added to the
hand-written config one at a time; `check` at 1,000 Services, as 100,000 checks need
more file descriptors than the test machine allows), our config with one of its
settings taken out, our config with Services that ask for stickiness or `balance
source`, and the peak of a reload (master, old and new worker together; an idle
keep-alive client holds the old worker, as `option idle-close-on-response` lets it).

Below the table: the target (ours <= 1.15 x hand-written), and the sizing rule fitted to
the rows: MiB per 1,000 endpoints plus a fixed part, per Service and per endpoint, per
thread, and the reload peak as a multiple of the memory at rest.

Nothing is sent anywhere but 127.0.0.1 (one request per start to our frontend). The
servers are 127.x.y.z addresses; only the `check` variant connects to them, on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service_loadbalancer.haproxy.files import write_files
from service_loadbalancer.haproxy.master import HAProxyError, parse_show_proc
from service_loadbalancer.haproxy.render import CONFIG_FILE, SERVER_STATE_FILE, render
from service_loadbalancer.kube.objects import KNOWN_KINDS
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Snapshot, Store
from service_loadbalancer.translate import translate

ENDPOINTS = 10
#: Whether our config has passive health (a check per server), decided once per run
#: for the largest size: HAProxy reserves a file descriptor per checked server and
#: refuses to start when the hard nofile limit is lower.
RUN = {"passive_health": True}


def passive_health_fits(servers: int) -> bool:
    """Whether the hard nofile limit holds a descriptor per server, twice over."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return hard == resource.RLIM_INFINITY or servers <= hard // 2


PORT = 8080
DEADLINE = 120.0  # seconds for one start (parsing 100,000 servers takes about 2 s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def address(service: int, endpoint: int) -> str:
    """The same endpoint addresses for our config and the hand-written one."""
    return f"127.{(service >> 8) & 255}.{service & 255}.{endpoint + 1}"


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class Built:
    config: Path
    env: dict[str, str]
    http_port: int
    #: Where the master socket, the pid file and HAProxy's log go.
    run: Path


#: (case directory, services, endpoints per Service) -> a config ready to start.
Builder = Callable[[Path, int, int], Built]


def snapshot(
    services: int, endpoints: int, spec: dict[str, Any], notes: dict[str, str]
) -> Snapshot:
    objects: list[dict[str, Any]] = []
    for i in range(services):
        meta = {"name": f"svc{i}", "namespace": f"ns{i % 50}"}
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {**meta, "annotations": dict(notes)},
                "spec": {
                    "clusterIP": "10.0.0.1",
                    "ports": [{"port": 80, "targetPort": PORT}],
                    **spec,
                },
            }
        )
        objects.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"svc{i}-abcde",
                    "namespace": meta["namespace"],
                    "labels": {"kubernetes.io/service-name": meta["name"]},
                },
                "addressType": "IPv4",
                "ports": [{"name": "", "port": PORT}],
                "endpoints": [
                    {"addresses": [address(i, e)], "conditions": {"ready": True}}
                    for e in range(endpoints)
                ],
            }
        )
    store = Store(KNOWN_KINDS)
    for kind in KNOWN_KINDS:
        store.replace(kind, [o for o in objects if o["kind"] == kind])
    return store.snapshot()


def ours(
    *,
    spec: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    edit: Callable[[str], str] | None = None,
) -> Builder:
    """Our config, rendered by the package; `edit` changes its text (variants only)."""

    def build(directory: Path, services: int, endpoints: int) -> Built:
        run = directory / "run"
        run.mkdir(parents=True)
        settings = Settings(
            run_dir=run,
            haproxy_config=directory / CONFIG_FILE,
            http_port=free_port(),
            stats_port=free_port(),
            bind_address="127.0.0.1",
            stats_user="bench",
            stats_password=secrets.token_urlsafe(12),
            passive_health=RUN["passive_health"],
        )
        translation = translate(
            snapshot(services, endpoints, spec or {}, annotations or {}), settings
        )
        if translation.problems:
            raise SystemExit(f"translate reported problems: {translation.problems[:3]}")
        path = write_files(render(translation.model, settings), directory, CONFIG_FILE)
        if edit is not None:
            path.write_text(edit(path.read_text()))
        (run / SERVER_STATE_FILE).write_text("1\n")  # as the controller leaves it: no servers
        return Built(path, settings.haproxy_env(), settings.http_port, run)

    return build


def hand(
    *,
    glob: str = "",
    defaults: str = "",
    backend: str = "",
    server: str = "",
    names: Callable[[int, int], str] = lambda service, endpoint: f"s{endpoint}",
) -> Builder:
    """The hand-written baseline, plus the given lines (`{i}` is the backend's index,
    `{s}` the server's name in `server`)."""

    def build(directory: Path, services: int, endpoints: int) -> Built:
        directory.mkdir(parents=True)
        port = free_port()
        lines = ["global", *indent(glob), "defaults", "    mode http", "    timeout connect 5s"]
        lines += ["    timeout client 60s", "    timeout server 60s", *indent(defaults)]
        lines += [
            "frontend http",
            f"    bind 127.0.0.1:{port}",
            "    http-request return status 200",
        ]
        for i in range(services):
            lines += [f"backend b{i}", *indent(backend.replace("{i}", str(i)))]
            for e in range(endpoints):
                name = names(i, e)
                lines.append(
                    f"    server {name} {address(i, e)}:{PORT}{server.replace('{s}', name)}"
                )
        path = directory / CONFIG_FILE
        path.write_text("\n".join(lines).replace("@DIR@", str(directory)) + "\n")
        (directory / SERVER_STATE_FILE).write_text("1\n")
        return Built(path, {}, port, directory)

    return build


def indent(text: str) -> list[str]:
    return [f"    {line}" for line in text.splitlines() if line]


def nbthread(n: int) -> Callable[[str], str]:
    return lambda text: text.replace("global\n", f"global\n    nbthread {n}\n", 1)


def without(pattern: str) -> Callable[[str], str]:
    return lambda text: re.sub(rf"^.*{pattern}.*\n", "", text, flags=re.MULTILINE)


# ------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Sample:
    worker_rss: float  # MiB
    master_rss: float
    pss: float  # master + worker(s)
    private: float
    threads: int


def proc_fields(pid: int, name: str) -> dict[str, int]:
    """/proc/<pid>/<name> as key -> first number (kB for the memory fields)."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if rest.split() and rest.split()[0].isdigit():
                values[key] = int(rest.split()[0])
    return values


def rss(pid: int) -> float:
    return proc_fields(pid, "status")["VmRSS"] / 1024


def sample(master: int, workers: list[int]) -> Sample:
    rollups = [proc_fields(pid, "smaps_rollup") for pid in [master, *workers]]
    return Sample(
        worker_rss=sum(rss(w) for w in workers),
        master_rss=rss(master),
        pss=sum(r["Pss"] for r in rollups) / 1024,
        private=sum(r["Private_Clean"] + r["Private_Dirty"] for r in rollups) / 1024,
        threads=proc_fields(workers[0], "status")["Threads"],
    )


async def master_cli(sock: Path, command: str) -> str:
    """One command on the master CLI (it answers once we half-close, see process.py)."""
    reader, writer = await asyncio.open_unix_connection(sock)
    try:
        writer.write(command.encode() + b"\n")
        writer.write_eof()
        return (await reader.read()).decode(errors="replace")
    finally:
        writer.close()


async def http_get(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """One keep-alive request to 127.0.0.1:port; returns the open connection."""
    deadline = time.monotonic() + 10
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise SystemExit(f"unexpected answer: {head[:40]!r}")
    if found := re.search(rb"(?i)content-length: *(\d+)", head):
        await reader.readexactly(int(found[1]))
    return reader, writer


class HAProxy:
    """One master-worker HAProxy on a built config, with the product's command line."""

    def __init__(self, built: Built) -> None:
        self.built, self.run = built, built.run
        self.sock = built.run / "master.sock"
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> HAProxy:
        self.sock.unlink(missing_ok=True)
        # HAProxy's notices go to a log beside the config (shown if it fails), not to us.
        log = os.open(self.run / "haproxy.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *("haproxy", "-W", "-S", str(self.sock), "-f", str(self.built.config)),
                *("-p", str(self.run / "haproxy.pid")),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **self.built.env},
                start_new_session=True,
            )
        finally:
            os.close(log)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        children = self.children()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for pid in children:  # reaped by the master, unless it was killed
            for _ in range(200):
                if not self.ours(pid):
                    break
                await asyncio.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def ours(self, pid: int) -> bool:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return os.fsencode(self.sock) in argv

    def children(self) -> list[int]:
        assert self.proc is not None
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            return [int(p) for p in text.split()]
        return []

    def failed(self) -> SystemExit:
        tail = (self.run / "haproxy.log").read_text(errors="replace").splitlines()[-5:]
        return SystemExit(f"HAProxy on {self.built.config} did not serve:\n" + "\n".join(tail))

    async def workers(self, *, besides: tuple[int, ...] = ()) -> tuple[int, list[int]]:
        """(reloads, current workers) once `show proc` lists a worker not in `besides`."""
        assert self.proc is not None
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and self.proc.returncode is None:
            with contextlib.suppress(OSError, HAProxyError):
                status = parse_show_proc(await master_cli(self.sock, "show proc"))
                if set(status.workers) - set(besides):
                    return status.reloads, list(status.workers)
            await asyncio.sleep(0.05)
        raise self.failed()

    async def settle(self, workers: list[int]) -> None:
        """Until the workers' RSS stops moving (pools filled by the first request)."""
        last = -1.0
        for _ in range(25):
            now = sum(rss(w) for w in workers)
            if abs(now - last) < 0.1:
                return
            last = now
            await asyncio.sleep(0.2)


async def start_and_sample(built: Built) -> Sample:
    async with HAProxy(built) as h:
        assert h.proc is not None
        _, workers = await h.workers()
        _, writer = await http_get(built.http_port)
        writer.close()
        await h.settle(workers)
        return sample(h.proc.pid, workers)


async def reload_peak(built: Built) -> Sample:
    """The peak of master + all workers across a reload, while an idle keep-alive client
    holds the old worker. RSS and Pss peak apart: the master parses the new config, forks
    the new worker (which shares its pages until the master re-executes in wait mode),
    so a sum of RSS counts those pages twice; the Pss sum does not."""
    async with HAProxy(built) as h:
        assert h.proc is not None
        master = h.proc.pid
        _, old = await h.workers()
        _, writer = await http_get(built.http_port)
        await h.settle(old)
        by_rss = by_pss = sample(master, old)
        done = asyncio.Event()

        async def sampler() -> None:
            nonlocal by_rss, by_pss
            while not done.is_set():
                with contextlib.suppress(OSError, KeyError, IndexError):
                    now = sample(master, h.children())
                    if now.master_rss + now.worker_rss > by_rss.master_rss + by_rss.worker_rss:
                        by_rss = now
                    by_pss = max(by_pss, now, key=lambda s: s.pss)
                await asyncio.sleep(0.01)

        task = asyncio.create_task(sampler(), name="rss-sampler")
        with contextlib.suppress(OSError):
            await master_cli(h.sock, "reload")  # 2.6 answers nothing; the master re-executes
        _, new = await h.workers(besides=tuple(old))
        await h.settle(new)
        done.set()
        await task
        if not set(old) <= set(h.children()):
            raise SystemExit("the old worker left before the end of the reload")
        writer.close()
        return Sample(
            by_rss.worker_rss, by_rss.master_rss, by_pss.pss, by_pss.private, by_rss.threads
        )


# ------------------------------------------------------------------------------ main


@dataclass(frozen=True)
class Case:
    name: str
    build: Builder
    endpoints: int = ENDPOINTS
    reload: bool = False
    #: Measured at the largest size up to this one (HAProxy reserves an FD per check).
    max_services: int | None = None


def cases() -> tuple[list[Case], list[Case]]:
    """(measured at every size, measured at the largest size only)."""
    main = [Case("hand-written", hand()), Case("ours", ours())]
    strip = "http-request replace-path"
    variants = [
        Case("hand-written, nbthread 1", hand(glob="nbthread 1")),
        Case("hand-written, nbthread 2", hand(glob="nbthread 2")),
        Case("hand-written, nbthread 4", hand(glob="nbthread 4")),
        Case("ours, nbthread 1", ours(edit=nbthread(1))),
        Case("ours, nbthread 2", ours(edit=nbthread(2))),
        Case("ours, nbthread 4", ours(edit=nbthread(4))),
        Case("ours, nbthread 8", ours(edit=nbthread(8))),
        Case("hand-written, 1 server per backend", hand(), endpoints=1),
        Case("ours, 1 endpoint per Service", ours(), endpoints=1),
        # One option at a time on the hand-written config.
        Case(
            "hand, servers named as ours (s_<ip>_<port>)",
            hand(names=lambda i, e: f"s_{address(i, e).replace('.', '_')}_{PORT}"),
        ),
        Case("hand, distinct short server names (s<i>_<e>)", hand(names=lambda i, e: f"s{i}_{e}")),
        Case("hand + balance leastconn", hand(backend="balance leastconn")),
        Case("hand + balance source (map-based)", hand(backend="balance source")),
        Case(
            "hand + balance source, hash-type consistent",
            hand(backend="balance source\nhash-type consistent"),
        ),
        Case(
            "hand + stick-table 100k, stick on src",
            hand(backend="stick-table type ip size 100k expire 10800s\nstick on src"),
        ),
        Case(
            "hand + cookie SERVERID, server cookie",
            hand(backend="cookie SERVERID insert indirect nocache", server=" cookie {s}"),
        ),
        Case(
            "hand + load-server-state-from-file",
            hand(
                glob="server-state-file @DIR@/server-state",
                defaults="load-server-state-from-file global",
            ),
        ),
        Case(
            "hand + option idle-close-on-response", hand(defaults="option idle-close-on-response")
        ),
        Case(
            "hand + replace-path regex per backend",
            hand(
                backend=r"http-request replace-path ^/(?:ns{i}/svc{i}|svc{i})(?:/|$)(.*) /\1 "
                "if { var(txn.route),field(2,|) -m str 1 }"
            ),
        ),
        Case(
            "hand + set-path field() per backend (no regex)",
            hand(
                backend="http-request set-path /%[path,field(3,/,0)] "
                "if { var(txn.route),field(2,|) -m str 1 }"
            ),
        ),
        Case("hand + default-server maxconn 100", hand(defaults="default-server maxconn 100")),
        # A check holds a socket: 100,000 of them need more FDs than this machine allows.
        Case(
            "hand + default-server check inter 1h",
            hand(defaults="default-server check inter 1h"),
            max_services=1000,
        ),
        # Our config with one of its settings taken out, or asked for by the Services.
        Case("ours without replace-path (no prefix strip)", ours(edit=without(strip))),
        Case(
            "ours without load-server-state-from-file",
            ours(edit=without("load-server-state-from-file")),
        ),
        Case("ours without option idle-close-on-response", ours(edit=without("idle-close"))),
        Case(
            "ours, every Service sessionAffinity ClientIP",
            ours(spec={"sessionAffinity": "ClientIP"}),
        ),
        Case(
            "ours, every Service ClientIP + cookie",
            ours(
                spec={"sessionAffinity": "ClientIP"},
                annotations={"serviceloadbalancer/lb.cookie-sticky-session": "true"},
            ),
        ),
        Case(
            "ours, every Service lb.algorithm source",
            ours(annotations={"serviceloadbalancer/lb.algorithm": "source"}),
        ),
        Case("ours, reload peak (master + old + new worker)", ours(), reload=True),
    ]
    return main, variants


@dataclass(frozen=True)
class Row:
    case: str
    services: int
    endpoints: int
    result: Sample
    reload: bool = False

    @property
    def total(self) -> float:
        return self.result.worker_rss + self.result.master_rss


async def measure(work: Path, case: Case, services: int, repeat: int) -> Row:
    slug = re.sub(r"[^a-z0-9]+", "-", case.name.lower()).strip("-")[:40]
    directory = work / f"{slug}-{services}"
    built = case.build(directory, services, case.endpoints)
    samples = []
    for _ in range(repeat):
        samples.append(await (reload_peak if case.reload else start_and_sample)(built))
    shutil.rmtree(directory, ignore_errors=True)

    def med(get: Callable[[Sample], float]) -> float:
        return statistics.median(get(s) for s in samples)

    result = Sample(
        worker_rss=med(lambda s: s.worker_rss),
        master_rss=med(lambda s: s.master_rss),
        pss=med(lambda s: s.pss),
        private=med(lambda s: s.private),
        threads=int(med(lambda s: s.threads)),
    )
    row = Row(case.name, services, services * case.endpoints, result, case.reload)
    print(f"  {case.name} | {services:,} | {row.total:.1f} MiB", file=sys.stderr, flush=True)
    return row


def report(rows: list[Row], sizes: list[int], repeat: int, quick: bool, seconds: float) -> None:
    version = subprocess.run(
        ["haproxy", "-v"], check=True, capture_output=True, text=True
    ).stdout.split()[2]
    hands = {r.services: r for r in rows if r.case == "hand-written"}
    header = (
        "case",
        "services",
        "servers",
        "threads",
        "worker RSS",
        "master RSS",
        "RSS MiB",
        "Pss MiB",
        "Private MiB",
        "MiB/1k endpoints",
        "vs hand-written",
    )
    table = [
        (
            r.case,
            f"{r.services:,}",
            f"{r.endpoints:,}",
            str(r.result.threads),
            f"{r.result.worker_rss:.1f}",
            f"{r.result.master_rss:.1f}",
            f"{r.total:.1f}",
            f"{r.result.pss:.1f}",
            f"{r.result.private:.1f}",
            "-" if r.reload else f"{r.total / r.endpoints * 1000:.2f}",
            "-" if r.reload else f"{r.total / hands[r.services].total:.3f}",
        )
        for r in rows
    ]
    widths = [max(len(t[i]) for t in [header, *table]) for i in range(len(header))]
    print(
        f"\nHAProxy memory, HAProxy {version}, {os.cpu_count()} cores, {ENDPOINTS} endpoints "
        f"per Service, median of {repeat} start(s){' (--quick)' if quick else ''}, "
        f"{seconds:.0f} s, passive health "
        + ("on" if RUN["passive_health"] else "off (hard nofile limit below twice the endpoints)")
    )
    print(
        "RSS MiB = worker VmRSS + master VmRSS after the first request; Pss and Private "
        "(smaps_rollup) are master + worker too; ratios and MiB/1k endpoints use RSS MiB"
    )
    for t in [header, tuple("-" * w for w in widths), *table]:
        print(
            " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(t, widths, strict=True))
            )
        )
    by = {(r.case, r.services): r for r in rows}
    print()
    for size in sizes:
        ratio = by["ours", size].total / hands[size].total
        verdict = "met" if ratio <= 1.15 else "NOT met"
        print(f"target: ours <= 1.15 x hand-written at {size:,} Services: {ratio:.3f} ({verdict})")
    small, large = sizes[0], sizes[-1]
    fits: dict[str, tuple[float, float]] = {}  # name -> (MiB, MiB per 1,000 endpoints)
    for name in ("hand-written", "ours"):
        a, b = by[name, small], by[name, large]
        slope = (b.total - a.total) / ((b.endpoints - a.endpoints) / 1000)
        fixed = a.total - slope * a.endpoints / 1000
        fits[name] = (fixed, slope)
        print(
            f"sizing, {name}: {slope:.2f} MiB per 1,000 endpoints + {fixed:.0f} MiB "
            f"({ENDPOINTS} per Service; fitted to {small:,} and {large:,} Services)"
        )
    fixed = fits["ours"][0]
    if (one := by.get(("ours, 1 endpoint per Service", large))) is not None:
        ten = by["ours", large]
        endpoint = (ten.total - one.total) / ((ten.endpoints - one.endpoints) / 1000)
        service = (one.total - fixed - endpoint * one.endpoints / 1000) / (large / 1000)
        print(
            f"sizing, ours: {fixed:.0f} MiB + {service:.1f} MiB per 1,000 Services "
            f"+ {endpoint:.2f} MiB per 1,000 endpoints (1 and {ENDPOINTS} endpoints per "
            f"Service at {large:,})"
        )
    threads = [r for r in rows if r.case.startswith("ours, nbthread ") and r.services == large]
    if len(threads) >= 2:
        few = min(threads, key=lambda r: r.result.threads)
        many = max(threads, key=lambda r: r.result.threads)
        per_thread = (many.total - few.total) / (many.result.threads - few.result.threads)
        per_thread /= few.endpoints / 1000
        base = (few.total - fixed) / (few.endpoints / 1000) - per_thread * few.result.threads
        print(
            f"nbthread: each thread adds {per_thread:.2f} MiB per 1,000 endpoints: ours is about "
            f"{fixed:.0f} MiB + ({base:.2f} + {per_thread:.2f} x nbthread) MiB per 1,000 endpoints "
            f"(nbthread "
            f"{few.result.threads} to {many.result.threads} at {large:,} Services; the default "
            "is one thread per CPU)"
        )
    if (peak := by.get(("ours, reload peak (master + old + new worker)", large))) is not None:
        rest = by["ours", large].result.pss
        print(
            f"reload: master + old + new worker peak at {peak.result.pss:.0f} MiB Pss = "
            f"{peak.result.pss / rest:.2f} x ours at rest ({rest:.0f} MiB Pss); their RSS sum "
            f"({peak.total:.0f} MiB) counts pages the master shares with the new worker twice"
        )


async def amain(sizes: list[int], repeat: int, variants: bool) -> list[Row]:
    main, extra = cases()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
        work = Path(tmp)
        for size in sizes:
            for case in main:
                rows.append(await measure(work, case, size, repeat))
        if variants:
            for case in extra:
                limit = case.max_services or sizes[-1]
                size = max([s for s in sizes if s <= limit], default=sizes[0])
                rows.append(await measure(work, case, size, repeat))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 Services, 1 start")
    parser.add_argument("--sizes", help="Service counts, comma separated (default 1000,10000)")
    parser.add_argument("--repeat", type=int, help="starts per case (default 3; --quick 1)")
    parser.add_argument("--no-variants", action="store_true", help="only ours and hand-written")
    args = parser.parse_args()
    sizes = sorted(
        int(s) for s in (args.sizes or ("100,1000" if args.quick else "1000,10000")).split(",")
    )
    repeat = args.repeat or (1 if args.quick else 3)
    RUN["passive_health"] = passive_health_fits(max(sizes) * ENDPOINTS)
    started = time.monotonic()
    rows = asyncio.run(amain(sizes, repeat, not args.no_variants))
    report(rows, sizes, repeat, args.quick, time.monotonic() - started)


if __name__ == "__main__":
    main()
