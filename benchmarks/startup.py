"""Start-up with a large cluster: process start to the first serving config (issue 8).

For --services Services (10,000) with --endpoints ready endpoints each (10, in one
EndpointSlice per Service), the controller is started as a subprocess, and the clock runs
from just before it is spawned until a request through HAProxy to the last Service
(`/ns49/svc-09999`) is answered by one of its backends: real HTTP servers on 127.0.5.1 to
127.0.5.10 (the other Services' endpoints are 127.16.0.0/12 addresses nobody connects to,
as no health checks are configured). Sources, each its own row:

- `api`: the fake Kubernetes API server (tests/integration/fake_apiserver.py, HTTPS,
  bearer token) in pages of 500 (the controller's page size). It runs in a process of its
  own, loaded before the clock starts, so that its CPU can be told apart;
- `manifests`: a manifests directory with one JSON file per Service (a `List` holding the
  Service and its EndpointSlice);
- `one-file`: the same objects in one JSON file.

Printed: the median seconds and the ratio to the 5 s target, the controller's peak RSS
(VmHWM) against 300 MiB, and where the CPU went during the start-up (controller, its
`haproxy -c`, the HAProxy master and worker, the fake API server, this benchmark). Then,
on the config the controller rendered, HAProxy alone: `haproxy -c` and a master-worker
start until the same request is answered.

--profile DIR records each source once more under py-spy (CPU only, and with --idle for
the wall clock; raw and speedscope files in DIR) and prints the top functions of the main
thread by self time and the share of the start-up phases, the main thread's and those of
the worker thread that runs the full sync's translate and render (fullsync.prepare).
--sources picks the rows, --runs the runs per row (median), --no-alone skips HAProxy
alone; --quick: 1,000 Services, one run.

Everything binds to 127.0.0.0/8 with ports from the OS; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from fake_apiserver import FakeAPIServer
from harness import Controller, free_port

from service_loadbalancer.demo import start_http_backend

TARGET_SECONDS = 5.0
TARGET_RSS_MIB = 300.0
NAMESPACES = 50
MAX_WAIT = 300.0
POLL = 0.02
TICK = os.sysconf("SC_CLK_TCK")
SOURCES = ("api", "manifests", "one-file")
LABELS = {
    "api": "Kubernetes API, HTTPS, pages of 500",
    "manifests": "manifests dir, one JSON file per Service",
    "one-file": "manifests dir, one JSON file",
}


# --------------------------------------------------------------------------- the cluster


def name_of(i: int) -> tuple[str, str]:
    return f"ns{i % NAMESPACES}", f"svc-{i:05d}"


def route(services: int) -> str:
    namespace, name = name_of(services - 1)
    return f"/{namespace}/{name}"


def cluster(services: int, endpoints: int, real_port: int) -> list[dict[str, Any]]:
    """Service i and its EndpointSlice; the last Service's endpoints are the real
    backends (127.0.5.1.. on `real_port`), the others' are addresses nobody serves."""
    objects: list[dict[str, Any]] = []
    for i in range(services):
        namespace, name = name_of(i)
        last = i == services - 1
        port = real_port if last else 8080
        addresses = [
            f"127.0.5.{e + 1}" if last else f"127.{16 + e}.{(i >> 8) & 255}.{i & 255}"
            for e in range(endpoints)
        ]
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": f"10.96.{(i >> 8) & 255}.{i & 255}",
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}],
                },
            }
        )
        objects.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-x7k2p",
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": [a], "conditions": {"ready": True}, "nodeName": "node-1"}
                    for a in addresses
                ],
            }
        )
    return objects


def write_manifests(directory: Path, objects: list[dict[str, Any]], *, one_file: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if one_file:
        document = {"apiVersion": "v1", "kind": "List", "items": objects}
        (directory / "cluster.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
        return
    for svc, sl in zip(objects[::2], objects[1::2], strict=True):
        document = {"apiVersion": "v1", "kind": "List", "items": [svc, sl]}
        path = directory / f"{svc['metadata']['name']}.json"
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")


# --------------------------------------------------------------- the fake API server


async def serve_api(workdir: Path, services: int, endpoints: int, real_port: int) -> None:
    """The fake API server in this process until SIGTERM; prints its port once serving."""
    api = FakeAPIServer(workdir)
    api.bulk_load(cluster(services, endpoints, real_port))
    await api.start()
    api.kubeconfig(workdir / "kubeconfig")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(api.port, flush=True)
    await stop.wait()
    await api.stop()


@dataclass
class ApiProcess:
    proc: asyncio.subprocess.Process
    kubeconfig: Path

    @classmethod
    async def start(
        cls, workdir: Path, services: int, endpoints: int, real_port: int
    ) -> ApiProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve-api",
            str(workdir),
            "--services",
            str(services),
            "--endpoints",
            str(endpoints),
            "--real-port",
            str(real_port),
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), MAX_WAIT)
        if not line.strip().isdigit():
            raise RuntimeError("the fake API server did not start")
        return cls(proc, workdir / "kubeconfig")

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        await self.proc.wait()


# ------------------------------------------------------------------- process figures


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of `pid` (and of its reaped children: `haproxy -c`), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the ")": state is field 3, so utime (14) is index 11, cutime (16) index 13.
    own = int(fields[11]) + int(fields[12])
    reaped = int(fields[13]) + int(fields[14])
    return (reaped if children else own) / TICK


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def status_mib(pid: int, key: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")


def child_pids(pid: int) -> list[int]:
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, ...: the HAProxy master and its workers of a controller."""
    found: list[int] = []
    pending = child_pids(pid)
    while pending:
        child = pending.pop()
        found.append(child)
        pending += child_pids(child)
    return found


NO_PASSIVE_HEALTH = ["--passive-health", "false"]


def passive_health_fits(servers: int) -> bool:
    """Whether HAProxy can reserve a file descriptor per checked server (passive health)
    under this process's hard nofile limit, with as many left for connections; where not,
    the run says so and uses --passive-health=false (HAProxy would refuse to start)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return hard == resource.RLIM_INFINITY or servers <= hard // 2


# --------------------------------------------------------------------- one start-up


@dataclass
class Run:
    seconds: float
    rss_mib: float
    cpu: dict[str, float]
    http_port: int
    config_dir: Path


@dataclass
class Launcher(Controller):
    """harness.Controller with a command prefix (py-spy)."""

    prefix: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.manifests.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "service_loadbalancer.cli", *self.args()],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, **self.env},
        )

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """Under py-spy: SIGTERM to the controller, and py-spy writes its profile as the
        controller exits (a SIGTERM to py-spy itself would lose it)."""
        if self.prefix and self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.controller_pid(), signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout + 30)
        return super().stop(timeout=timeout)

    def controller_pid(self) -> int:
        """The controller's pid (under py-spy, py-spy's child)."""
        assert self.proc is not None
        if not self.prefix:
            return self.proc.pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = child_pids(self.proc.pid)
            if children:
                return children[0]
            time.sleep(0.01)
        raise RuntimeError("py-spy started no controller")


async def until_serving(c: Launcher, path: str, started: float) -> float:
    """Seconds since `started` until `path` through HAProxy is answered by a backend."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        while time.monotonic() - started < MAX_WAIT:
            assert c.proc is not None
            if c.proc.poll() is not None:
                raise RuntimeError(f"controller exited:\n{c.log()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"http://127.0.0.1:{c.http_port}{path}") as r:
                    body = await r.text()
                    if r.status == 200 and body.startswith("backend=last-"):
                        return time.monotonic() - started
            await asyncio.sleep(POLL)
    raise RuntimeError(f"not serving after {MAX_WAIT} s:\n{c.log()[-3000:]}")


async def one_run(
    workdir: Path,
    source: str,
    args: argparse.Namespace,
    real_port: int,
    objects: list[dict[str, Any]] | None,
    *,
    prefix: list[str] | None = None,
) -> Run:
    api: ApiProcess | None = None
    health = [] if passive_health_fits(args.services * args.endpoints) else NO_PASSIVE_HEALTH
    if source == "api":
        api = await ApiProcess.start(workdir, args.services, args.endpoints, real_port)
        extra = ["--kubeconfig", str(api.kubeconfig), *health]
        c = Launcher(workdir, use_manifests=False, extra_args=extra)
    else:
        assert objects is not None
        c = Launcher(workdir, extra_args=health)
        write_manifests(c.manifests, objects, one_file=source == "one-file")
    c.prefix = prefix or []
    path = route(args.services)
    try:
        api_cpu, own_cpu = (cpu_seconds(api.proc.pid) if api else 0.0), self_cpu()
        started = time.monotonic()
        c.start()
        seconds = await until_serving(c, path, started)
        pid = c.controller_pid()
        haproxy = descendants(pid)
        cpu = {
            "controller": cpu_seconds(pid),
            "haproxy -c": cpu_seconds(pid, children=True),
            "HAProxy": sum(cpu_seconds(p) for p in haproxy),
            "fake API server": cpu_seconds(api.proc.pid) - api_cpu if api else 0.0,
            "benchmark": self_cpu() - own_cpu,
        }
        await c.wait_healthy()
        rss = status_mib(pid, "VmHWM:")
        return Run(seconds, rss, cpu, c.http_port, c.run_dir)
    finally:
        c.stop(timeout=30)
        if api is not None:
            await api.stop()


# ---------------------------------------------------------------------- HAProxy alone


async def haproxy_alone(config_dir: Path, http_port: int, path: str) -> tuple[float, float]:
    """`haproxy -c` seconds, and seconds from spawning a master-worker HAProxy on the
    controller's rendered config until `path` is answered by a backend."""
    config = config_dir / "haproxy.cfg"
    started = time.monotonic()
    check = await asyncio.create_subprocess_exec("haproxy", "-c", "-q", "-f", str(config))
    if await check.wait() != 0:
        raise RuntimeError(f"haproxy -c refused {config}")
    check_seconds = time.monotonic() - started
    socket = config_dir / "alone.sock"
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "haproxy",
        "-W",
        "-S",
        str(socket),
        "-f",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            while time.monotonic() - started < MAX_WAIT:
                if proc.returncode is not None:
                    raise RuntimeError("HAProxy alone exited")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"http://127.0.0.1:{http_port}{path}") as r:
                        if r.status == 200 and (await r.text()).startswith("backend=last-"):
                            return check_seconds, time.monotonic() - started
                await asyncio.sleep(POLL)
        raise RuntimeError("HAProxy alone did not serve")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


# --------------------------------------------------------------------------- reports


def print_startup(results: dict[str, list[Run]], args: argparse.Namespace) -> None:
    runs = max(len(v) for v in results.values())
    print(
        f"\nfirst serving config, {args.services:,} Services x {args.endpoints} endpoints "
        f"(one EndpointSlice each), median of {runs} run(s), {os.cpu_count()} cores"
        + (
            ""
            if passive_health_fits(args.services * args.endpoints)
            else ", passive health off (the hard nofile limit is below twice the endpoints)"
        )
    )
    w = max(len(LABELS[row]) for row in results)
    header = (
        f"{'source':<{w}} {'seconds':>8} {'/ 5 s':>6} {'min':>6} {'max':>6} "
        f"{'peak RSS MiB':>13} {'/ 300':>6}"
    )
    print(header)
    print("-" * len(header))
    for source, values in results.items():
        seconds = [r.seconds for r in values]
        rss = statistics.median(r.rss_mib for r in values)
        med = statistics.median(seconds)
        print(
            f"{LABELS[source]:<{w}} {med:>8.2f} {med / TARGET_SECONDS:>6.2f} "
            f"{min(seconds):>6.2f} {max(seconds):>6.2f} {rss:>13.1f} {rss / TARGET_RSS_MIB:>6.2f}"
        )
    print("\nCPU seconds spent until serving (median), against the wall-clock seconds")
    names = list(next(iter(results.values()))[0].cpu)
    header = f"{'source':<{w}} {'wall':>6} " + " ".join(f"{n:>15}" for n in names)
    print(header)
    print("-" * len(header))
    for source, values in results.items():
        wall = statistics.median(r.seconds for r in values)
        cpus = " ".join(f"{statistics.median(r.cpu[n] for r in values):>15.2f}" for n in names)
        print(f"{LABELS[source]:<{w}} {wall:>6.2f} {cpus}")


def print_alone(alone: list[tuple[float, float]], services: int) -> None:
    if not alone:
        return
    check = statistics.median(a for a, _ in alone)
    start = statistics.median(b for _, b in alone)
    print(f"\nHAProxy alone on the rendered config ({services:,} Services), median of {len(alone)}")
    print(f"{'haproxy -c -f (s)':>18} {'haproxy -W start to serving (s)':>32}")
    print(f"{check:>18.2f} {start:>32.2f}")


# ------------------------------------------------------------------------ profiling


#: Inclusive shares of the start-up phases: (label, thread, a frame that marks the phase).
#: "main" phases are counted in the main thread's samples, "worker" ones in the other
#: threads' (asyncio.to_thread: the full sync's fullsync.prepare, the file writes). The
#: API path's JSON decode is orjson, C code that py-spy does not see as a frame of its own:
#: it is inside "API list".
PROFILE_PHASES = (
    ("imports", "main", "_find_and_load (<frozen importlib._bootstrap>"),
    ("API list (KubeSource._list)", "main", "KubeSource._list ("),
    ("manifests scan (scan_directory)", "main", "scan_directory ("),
    ("  parse (parse_manifests)", "main", "parse_manifests ("),
    ("    JSON parser (_strict_json)", "main", "_strict_json ("),
    ("    YAML compose (check_node/get_node)", "main", "get_node ("),
    ("    YAML construct", "main", "construct_document ("),
    ("    duplicate-key check (YAML)", "main", "_duplicate_key ("),
    ("    JSON-like copy (YAML)", "main", "_json_like ("),
    ("    object checks (_accept)", "main", "_accept (service_loadbalancer/sources/manifests.py"),
    ("store replace", "main", "Store.replace_many ("),
    ("store snapshot", "main", "Store.snapshot ("),
    ("full sync prepare (worker thread)", "worker", "prepare (service_loadbalancer/fullsync.py"),
    ("  translate", "worker", "translate (service_loadbalancer/translate.py"),
    ("  render", "worker", "render (service_loadbalancer/haproxy/render.py"),
    ("    jinja2 template", "worker", "root (<template>"),
    ("write candidate files (worker thread)", "worker", "write_files ("),
    ("haproxy -c (waiting)", "main", "check_config ("),
    ("save server state", "main", "Applier._save_server_state ("),
    ("HAProxy start (waiting, polling)", "main", "HAProxyProcess.start ("),
)

Stacks = list[tuple[list[str], int]]


def read_profile(raw: Path) -> tuple[Stacks, Stacks, int]:
    """py-spy raw (collapsed) stacks of the main thread and of the other threads, and the
    samples of no Python frame at all (interpreter start and shutdown)."""
    main: Stacks = []
    other: Stacks = []
    empty = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        frames = [f for f in stack.split(";") if f.strip()]
        if not frames:
            empty += int(samples)
        elif frames[0].startswith("_run_module_as_main"):
            main.append((frames, int(samples)))
        else:
            other.append((frames, int(samples)))
    return main, other, empty


def print_profile(raw: Path, title: str, count: int = 15) -> None:
    main, other, empty = read_profile(raw)
    total = sum(n for _, n in main)
    if not total:
        return
    others = sum(n for _, n in other)
    print(f"\n{title}: {total} main-thread samples at 200 Hz "
          f"({others} in other threads, {empty} without a Python frame)")  # fmt: skip
    by_leaf: collections.Counter[str] = collections.Counter()
    for frames, n in main:
        by_leaf[frames[-1]] += n
    print("  top functions of the main thread by self time (share of its samples)")
    for leaf, n in by_leaf.most_common(count):
        print(f"  {100 * n / total:5.1f} %  {leaf}")
    print("  phases (inclusive; share of main-thread samples, also for worker-thread phases)")
    for label, thread, marker in PROFILE_PHASES:
        stacks = main if thread == "main" else other
        n = sum(samples for frames, samples in stacks if any(marker in f for f in frames))
        if n:
            print(f"  {100 * n / total:5.1f} %  {n / 200:6.2f} s  {label}")


def find_py_spy(out: Path) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    out.mkdir(parents=True, exist_ok=True)
    return spy


async def profile(
    out: Path, source: str, args: argparse.Namespace, real_port: int, objects: Any
) -> None:
    spy = find_py_spy(out)
    for mode in ("cpu", "wall"):
        for fmt in ("raw", "speedscope"):
            suffix = "txt" if fmt == "raw" else "speedscope.json"
            target = out / f"{source}-{mode}.{suffix}"
            prefix = [spy, "record", "-r", "200", "-f", fmt, "-o", str(target)]
            prefix += ["--idle"] if mode == "wall" else []
            with tempfile.TemporaryDirectory(prefix="slb-startup-") as tmp:
                run = await one_run(
                    Path(tmp), source, args, real_port, objects, prefix=[*prefix, "--"]
                )
            if fmt == "raw":
                idle = "with" if mode == "wall" else "without"
                title = f"py-spy {idle} --idle, {LABELS[source]} ({run.seconds:.2f} s under py-spy)"
                print_profile(target, title)


# ------------------------------------------------------------------------------ main


async def bench(args: argparse.Namespace) -> None:
    real_port = free_port("127.0.5.1")
    backends = [
        await start_http_backend(f"last-{e + 1}", f"127.0.5.{e + 1}", real_port)
        for e in range(args.endpoints)
    ]
    sources = [s for s in args.sources.split(",") if s]
    objects = cluster(args.services, args.endpoints, real_port)
    results: dict[str, list[Run]] = {source: [] for source in sources}
    alone: list[tuple[float, float]] = []
    try:
        for _ in range(args.runs):
            for source in sources:
                with tempfile.TemporaryDirectory(prefix="slb-startup-") as tmp:
                    run = await one_run(Path(tmp), source, args, real_port, objects)
                    results[source].append(run)
                    if source == sources[0] and not args.no_alone:
                        path = route(args.services)
                        alone.append(await haproxy_alone(run.config_dir, run.http_port, path))
        print_startup(results, args)
        print_alone(alone, args.services)
        if args.profile:
            for source in sources:
                await profile(Path(args.profile), source, args, real_port, objects)
    finally:
        for runner in backends:
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sources", default=",".join(SOURCES), help="of " + ",".join(SOURCES))
    parser.add_argument("--quick", action="store_true", help="1,000 Services, one run")
    parser.add_argument("--profile", metavar="DIR", help="py-spy profiles into DIR")
    parser.add_argument("--no-alone", action="store_true", help="skip HAProxy alone")
    parser.add_argument("--serve-api", metavar="WORKDIR", help=argparse.SUPPRESS)
    parser.add_argument("--real-port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        asyncio.run(serve_api(Path(args.serve_api), args.services, args.endpoints, args.real_port))
        return
    unknown = set(args.sources.split(",")) - set(SOURCES) - {""}
    if unknown:
        parser.error(f"unknown --sources {','.join(sorted(unknown))}; of {','.join(SOURCES)}")
    if args.quick:
        args.services, args.runs = min(args.services, 1000), 1
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
