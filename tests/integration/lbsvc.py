"""Helpers for the type=LoadBalancer tests and benchmark (benchmarks/leader.py): the
controller against the fake API server, LB Services, replicas on their own addresses,
TCP echo clients with their own source address, the Lease and the status as stored."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fake_apiserver import FakeAPIServer
from harness import Controller, wait_for
from objects import port, service

LEASE = ("lb-system", "service-loadbalancer-leader")


def kube_controller(workdir: Path, api: FakeAPIServer, *extra: str, **kw: Any) -> Controller:
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = api.kubeconfig(workdir / "kubeconfig")
    return Controller(
        workdir,
        use_manifests=False,
        # A short drain: nothing here waits on sessions at stop, and a stop must not
        # wait out the default 30 s for a connection a client left half-open.
        extra_args=["--kubeconfig", str(kubeconfig), "--drain-timeout", "1", *extra],
        **kw,
    )


@contextlib.asynccontextmanager
async def serving(c: Controller) -> AsyncIterator[Controller]:
    """Start the controller; at the end SIGTERM it without blocking the loop (which
    serves the fake API server and the backends), and SIGKILL what is left."""
    c.start()
    try:
        yield c
    finally:
        if c.proc is not None and c.proc.poll() is None:
            try:
                await terminate(c)
            except AssertionError:
                kill(c)


def lb_service(
    name: str,
    number: int,
    target: int,
    *,
    klass: str | None = None,
    ranges: list[str] | None = None,
    type_: str = "LoadBalancer",
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    svc = service(name, port(number, target=target), type_=type_)
    svc["metadata"]["creationTimestamp"] = created
    if klass is not None:
        svc["spec"]["loadBalancerClass"] = klass
    if ranges is not None:
        svc["spec"]["loadBalancerSourceRanges"] = ranges
    return svc


async def echo(port_: int, *, address: str = "127.0.0.1", source: str | None = None) -> str:
    """One line through a TCP connection: what came back ("" if the connection was
    refused or closed without an answer)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port_, local_addr=(source, 0) if source else None),
            5,
        )
    except OSError:
        return ""
    try:
        writer.write(b"hello\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
    except (OSError, TimeoutError):
        return ""
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def until_echo(port_: int, expected: str, **kw: Any) -> None:
    async def check() -> bool:
        return await echo(port_, **kw) == expected

    await wait_for(check, what=f"port {port_} answering {expected!r} ({kw})")


def reload_count(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("slb_haproxy_reloads_total")
    )


def ingress_of(api: FakeAPIServer, name: str) -> list[dict[str, Any]]:
    svc = api.get("Service", "default", name) or {}
    return list(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


def replica(tmp_path: Path, api: FakeAPIServer, name: str, address: str) -> Controller:
    """One load-balancer replica on its own address (its own run directory, ports and
    pod name), publishing that address so the status says who wrote it."""
    return kube_controller(
        tmp_path / name,
        api,
        "--bind-address", address,
        "--publish-address", address,
        env={"POD_NAME": name, "POD_NAMESPACE": "lb-system"},
    )  # fmt: skip


async def metric(c: Controller, address: str, name: str) -> float | None:
    """A metric of the replica's /metrics (served on its --bind-address), or None."""
    reader, writer = await asyncio.open_connection(address, c.healthz_port)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        text = (await reader.read()).decode()
    finally:
        writer.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def holder(api: FakeAPIServer) -> str:
    lease = api.get("Lease", *LEASE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


async def terminate(c: Controller) -> None:
    """SIGTERM and wait without blocking the loop (the fake API server runs on it, and
    the replica releases its Lease there on the way out)."""
    assert c.proc is not None
    c.proc.terminate()

    async def exited() -> bool:
        assert c.proc is not None
        return c.proc.poll() is not None

    await wait_for(exited, within=30, what="the replica to stop")


def kill(c: Controller) -> None:
    """SIGKILL the controller and its HAProxy: a node that vanished."""
    assert c.proc is not None
    c.proc.kill()
    c.proc.wait()
    for pid in c.haproxy_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
