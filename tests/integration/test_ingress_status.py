"""Ingress status end to end: the Ingresses we serve get status.loadBalancer with our
addresses (written by the leader through the status subresource of the fake API server);
one that stops being ours has it cleared; an Ingress of another class is never touched,
not even its status written by another controller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fake_apiserver import FakeAPIServer
from harness import Backends, wait_for
from lbsvc import kube_controller, serving
from objects import ingress, ingress_class, ingress_path, ingress_rule, port, service, slices

OTHERS = [{"ip": "127.0.0.9"}]  # what another controller wrote: data only, never dialled


def status_of(api: FakeAPIServer, name: str) -> list[dict[str, Any]]:
    obj = api.get("Ingress", "default", name) or {}
    return list(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


async def until_status(api: FakeAPIServer, name: str, expected: list[dict[str, Any]]) -> None:
    async def check() -> bool:
        return status_of(api, name) == expected

    await wait_for(check, what=f"status of Ingress {name}: {expected}")


def web(class_name: str) -> dict[str, Any]:
    return ingress(
        "web", ingress_rule("web.example", ingress_path("/", "web", 8080)), class_name=class_name
    )


async def test_status_written_for_ours_cleared_when_not_and_others_left_alone(
    tmp_path: Path, api: FakeAPIServer, backends: Backends
) -> None:
    pod = await backends.methods("web-1", "127.0.91.1")
    await api.create(ingress_class())
    await api.create(service("web", port(8080, name="http", target=8080)))
    for obj in slices("web", [pod], port_name="http"):
        await api.create(obj)
    await api.create(web("service-loadbalancer"))
    theirs = ingress(
        "theirs", ingress_rule("theirs.example", ingress_path("/", "web", 8080)),
        class_name="nginx",
    )  # fmt: skip
    await api.create({**theirs, "status": {"loadBalancer": {"ingress": OTHERS}}})

    controller = kube_controller(tmp_path / "c", api, "--publish-address", "127.0.0.1")
    async with serving(controller):
        await controller.wait_healthy()
        # Ours: our address, without ipMode (an Ingress's status has no such field).
        await until_status(api, "web", [{"ip": "127.0.0.1"}])
        assert status_of(api, "theirs") == OTHERS

        # No longer ours (its class changed): the status we wrote is taken back.
        await api.update({**web("nginx"), "status": (api.get("Ingress", "default", "web")
                                                       or {}).get("status", {})})  # fmt: skip
        await until_status(api, "web", [])
        assert status_of(api, "theirs") == OTHERS
        writes = [r for r in api.requests if r.startswith("PUT") and "/ingresses/" in r]
        assert all("/theirs/" not in r for r in writes), writes
