"""The autoscaler against real load: how soon it scales up, and whether it flaps.

The real controller (reading the fake API server) and its HAProxy serve a real backend on
127.0.0.0/8; wrk sends the load through HAProxy; `service-loadbalancer autoscale` (a
subprocess) reads HAProxy's stats page and writes the Deployment's scale subresource.

Table 1: time from the start of the load to the first scale-up written, at --interval
(15 s, the default, in the full run); the ratio is to the interval, the rule's own clock
(a rate needs one round, so expect up to one interval plus a read). Median of --runs.

Table 2: scale writes over a 60 s cycle (30 s of bursty load, wrk on 5 s / off 5 s, then
30 s of none) at --interval 2: the HPA rule with a 20 s scale-down window, against the
same rule without the window (the baseline, which follows every burst), both reading the
same HAProxy in the same run (each writes to its own fake API server). The issue's
target: at most 2 writes per direction, no flapping.

`--quick` shortens everything (a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # objects
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from autoscale_harness import AutoscaleProcess
from fake_apiserver import FakeAPIServer
from harness import Backends, Controller
from objects import deployment, service, slices

P = "serviceloadbalancer/autoscale."
ANNOTATIONS = {P + "target-rps": "50", P + "min": "1", P + "max": "4"}
MAX_WAIT = 120.0


async def wrk(url: str, seconds: float) -> None:
    """wrk for `seconds` (1 thread, 4 connections), its output dropped."""
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", "-c4", f"-d{max(1, round(seconds))}s", url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def replicas(api: FakeAPIServer, name: str) -> int:
    obj = api.get("Deployment", "default", name)
    assert obj is not None
    return int(obj["spec"]["replicas"])


async def until(predicate: object, what: str, limit: float = MAX_WAIT) -> None:
    deadline = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        await asyncio.sleep(0.05)


async def add_service(api: FakeAPIServer, name: str, endpoint: tuple[str, int]) -> None:
    await api.create(service(name, 80, annotations=ANNOTATIONS))
    for obj in slices(name, [endpoint]):
        await api.create(obj)
    await api.create(deployment(name, replicas=1))


async def scale_up_times(
    workdir: Path, backends: Backends, runs: int, interval: float
) -> list[float]:
    endpoint = await backends.http("web", "127.0.16.1")
    api = FakeAPIServer(workdir)
    await api.start()
    kubeconfig = api.kubeconfig(workdir / "kubeconfig")
    c = Controller(workdir, use_manifests=False, extra_args=["--kubeconfig", str(kubeconfig)])
    scaler = AutoscaleProcess(workdir, ["--kubeconfig", str(kubeconfig), "--stats-url",
                                        f"http://127.0.0.1:{c.stats_port}/",
                                        "--interval", str(interval)])  # fmt: skip
    times: list[float] = []
    try:
        for i in range(runs):
            await add_service(api, f"web-{i}", endpoint)
        c.start()
        await c.wait_healthy()
        for i in range(runs):
            await until_served(c, f"/web-{i}")
        scaler.start()
        # Two rounds in: the autoscaler has its first read, so it is in its steady state.
        await until(lambda: scaler.log().count("INFO") >= 2, "the autoscaler's first rounds")
        for i in range(runs):
            name = f"web-{i}"
            started = time.monotonic()
            load = asyncio.create_task(wrk(f"http://127.0.0.1:{c.http_port}/{name}", MAX_WAIT))
            try:
                await until(lambda n=name: replicas(api, n) > 1, f"{name} scaled up")
                times.append(time.monotonic() - started)
            finally:
                load.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await load
            await asyncio.sleep(1.0)  # the connections close
    finally:
        scaler.stop()
        c.stop()
        await api.stop()
    return times


async def until_served(c: Controller, path: str) -> None:
    deadline = time.monotonic() + MAX_WAIT
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if (await c.get(path))[0] == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{path} not served:\n{c.log()}")


def writes(metrics: str) -> dict[str, int]:
    counts = {"up": 0, "down": 0}
    for line in metrics.splitlines():
        if line.startswith("slb_autoscale_scale_writes_total{"):
            direction = line.split('direction="', 1)[1].split('"', 1)[0]
            counts[direction] += int(float(line.rsplit(" ", 1)[1]))
    return counts


async def flapping(
    workdir: Path, backends: Backends, cycle: float, window: float
) -> dict[str, dict[str, int]]:
    endpoint = await backends.http("cycle", "127.0.16.2")
    for label in ("rule", "baseline"):
        (workdir / label).mkdir(parents=True, exist_ok=True)
    apis = {label: FakeAPIServer(workdir / label) for label in ("rule", "baseline")}
    scalers: dict[str, AutoscaleProcess] = {}
    for api in apis.values():
        await api.start()
        await add_service(api, "web", endpoint)
    rule_config = apis["rule"].kubeconfig(workdir / "rule" / "kubeconfig")
    c = Controller(workdir, use_manifests=False, extra_args=["--kubeconfig", str(rule_config)])
    result: dict[str, dict[str, int]] = {}
    try:
        c.start()
        await c.wait_healthy()
        await until_served(c, "/web")
        for label, api in apis.items():
            config = api.kubeconfig(workdir / label / "kubeconfig")
            scalers[label] = AutoscaleProcess(workdir / label, [
                "--kubeconfig", str(config), "--stats-url", f"http://127.0.0.1:{c.stats_port}/",
                "--interval", "2",
                "--scale-down-stabilization", str(window if label == "rule" else 0),
            ])  # fmt: skip
            scalers[label].start()
        await until(lambda: all(s.log().count("INFO") >= 2 for s in scalers.values()),
                    "the autoscalers' first rounds")  # fmt: skip
        half = cycle / 2
        started = time.monotonic()
        while time.monotonic() - started < half:  # bursts: 5 s on, 5 s off
            await wrk(f"http://127.0.0.1:{c.http_port}/web", min(5.0, half / 6))
            await asyncio.sleep(min(5.0, half / 6))
        await asyncio.sleep(max(0.0, cycle - (time.monotonic() - started)))
        for label, scaler in scalers.items():
            result[label] = writes(await scaler.metrics())
            result[label]["final"] = replicas(apis[label], "web")
    finally:
        for scaler in scalers.values():
            scaler.stop()
        c.stop()
        for api in apis.values():
            await api.stop()
    return result


async def amain(quick: bool, runs: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: make wrk")
    backends = Backends()
    interval = 2.0 if quick else 15.0
    cycle, window = (20.0, 6.0) if quick else (60.0, 20.0)
    try:
        with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
            times = await scale_up_times(Path(tmp), backends, runs, interval)
        with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
            cycles = await flapping(Path(tmp), backends, cycle, window)
    finally:
        await backends.close()
    median = statistics.median(times)
    print(f"\nload start to first scale-up, --interval {interval:g} (median of {runs} runs)")
    print(f"{'':<34} {'seconds':>8} {'ratio to interval':>18}")
    print(f"{'interval (the baseline)':<34} {interval:>8.2f} {1.0:>18.2f}")
    print(f"{'first scale-up written':<34} {median:>8.2f} {median / interval:>18.2f}")
    print(f"  runs: {', '.join(f'{t:.2f}' for t in times)}")
    print(f"\nscale writes over a {cycle:g} s cycle ({cycle / 2:g} s of bursty wrk load, then "
          f"none), --interval 2")  # fmt: skip
    print(f"{'rule':<44} {'up':>4} {'down':>5} {'final':>6}")
    labels = {"baseline": "no scale-down window (baseline)",
              "rule": f"HPA rule, {window:g} s scale-down window"}  # fmt: skip
    for label in ("baseline", "rule"):
        r = cycles[label]
        print(f"{labels[label]:<44} {r['up']:>4} {r['down']:>5} {r['final']:>6}")
    ok = cycles["rule"]["up"] <= 2 and cycles["rule"]["down"] <= 2
    print(f"target (at most 2 writes per direction): {'met' if ok else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--runs", type=int, default=None, help="runs of table 1 (3; quick 1)")
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(amain(args.quick, args.runs or (1 if args.quick else 3)))
    print(f"\nbenchmarks/autoscale.py{' (--quick)' if args.quick else ''}, "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
