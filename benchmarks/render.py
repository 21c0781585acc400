"""Translate + render time and `haproxy -c` time for many Services.

Prints one table: for 100, 1,000 and 10,000 Services with 10 ready endpoints each,
the median time to translate the snapshot, to render the config, and for HAProxy to
check it, with the per-service cost as a ratio to the 100-Service baseline measured in
the same run (1.0 means linear scaling). Medians, since the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from service_loadbalancer.gcpause import gc_paused
from service_loadbalancer.haproxy.files import write_files
from service_loadbalancer.haproxy.render import render
from service_loadbalancer.kube.objects import KNOWN_KINDS
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Snapshot, Store
from service_loadbalancer.translate import translate

ENDPOINTS = 10


def make_snapshot(services: int) -> Snapshot:
    svcs: list[dict[str, Any]] = []
    slices: list[dict[str, Any]] = []
    for i in range(services):
        ns = f"ns{i % 50}"
        name = f"svc{i}"
        svcs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80, "targetPort": 8080}]},
            }
        )
        slices.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-abcde",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "", "port": 8080}],
                "endpoints": [
                    {
                        "addresses": [f"127.{(i >> 8) & 255}.{i & 255}.{e + 1}"],
                        "conditions": {"ready": True},
                    }
                    for e in range(ENDPOINTS)
                ],
            }
        )
    store = Store(KNOWN_KINDS)
    store.replace("Service", svcs)
    store.replace("EndpointSlice", slices)
    store.replace("Endpoints", [])
    return store.snapshot()


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"render benchmark: {ENDPOINTS} endpoints per Service, median of {args.repeat} runs,")
    print(f"{os.cpu_count()} cores; ratio = per-Service cost / per-Service cost at {sizes[0]}")
    header = (
        f"{'services':>9} {'translate s':>12} {'render s':>10} {'haproxy -c s':>13} "
        f"{'config MB':>10} {'ratio (t+r)':>12} {'ratio (-c)':>11}"
    )
    print(header)
    print("-" * len(header))
    base: tuple[float, float] | None = None
    with tempfile.TemporaryDirectory(prefix="slb-bench-") as tmp:
        settings = Settings(run_dir=Path(tmp), http_port=18080, stats_port=18081)
        for size in sizes:
            snapshot = make_snapshot(size)
            t_times, r_times, c_times = [], [], []
            rendered = None
            for _ in range(args.repeat):
                with gc_paused():  # as the reconciler runs them
                    t, translation = timed(translate, snapshot, settings)
                    r, rendered = timed(render, translation.model, settings)
                t_times.append(t)
                r_times.append(r)
            assert rendered is not None
            path = write_files(rendered, Path(tmp) / f"cfg{size}", "haproxy.cfg")
            for _ in range(max(1, args.repeat // 2)):
                c, proc = timed(
                    subprocess.run,
                    ["haproxy", "-c", "-q", "-f", str(path)],
                )
                if proc.returncode != 0:
                    raise SystemExit(f"haproxy -c refused the config for {size} services")
                c_times.append(c)
            t_med, r_med, c_med = (statistics.median(x) for x in (t_times, r_times, c_times))
            per = ((t_med + r_med) / size, c_med / size)
            base = base or per
            mb = sum(len(v) for v in rendered.files.values()) / 1e6
            print(
                f"{size:>9} {t_med:>12.3f} {r_med:>10.3f} {c_med:>13.3f} {mb:>10.2f} "
                f"{per[0] / base[0]:>12.2f} {per[1] / base[1]:>11.2f}"
            )


if __name__ == "__main__":
    main()
