"""A Service without a selector and EndpointSlices written by hand: the way to put a
load-balanced name in front of servers outside the cluster (or an IP address that an
ExternalName may not be). Served like any other Service, and slice edits are followed."""

from __future__ import annotations

from pathlib import Path

from harness import Backends, Controller, backend_names, request, running, wait_for, write_manifest
from objects import port, service, slices

from service_loadbalancer.kube.objects import RawObject


def selectorless() -> RawObject:
    svc = service("legacy", port(80, name="http"))
    del svc["spec"]["selector"]
    return svc


async def test_selectorless_service_with_handwritten_slices(
    tmp_path: Path, backends: Backends
) -> None:
    one = await backends.http("legacy-1", "127.0.9.21")
    two = await backends.http("legacy-2", "127.0.9.22")
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(
        c.manifests / "legacy.yaml", [selectorless(), *slices("legacy", [one], port_name="http")]
    )

    async def served_by(name: str) -> bool:
        got = await request(c.http_port, "/legacy")
        return got.status == 200 and backend_names([got.body]) == [name]

    with running(c):
        await c.wait_healthy()
        await wait_for(lambda: served_by("legacy-1"), what="traffic to the hand-written slice")
        write_manifest(
            c.manifests / "legacy.yaml",
            [selectorless(), *slices("legacy", [two], port_name="http")],
        )
        await wait_for(lambda: served_by("legacy-2"), what="traffic to follow the slice edit")
