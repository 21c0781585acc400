"""Services of type LoadBalancer end to end: the real controller reading the fake API
server, the real HAProxy, real TCP backends on 127.0.0.0/8, real clients with their own
source addresses (127.0.0.x)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web
from fake_apiserver import FakeAPIServer
from harness import Backends, Controller, free_port, wait_for
from lbsvc import (
    LEASE,
    echo,
    holder,
    ingress_of,
    kill,
    kube_controller,
    lb_service,
    metric,
    reload_count,
    replica,
    serving,
    terminate,
    until_echo,
)
from objects import slices

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}".format(*LEASE)


async def until_ingress(api: FakeAPIServer, name: str, expected: list[dict[str, Any]]) -> None:
    async def check() -> bool:
        return ingress_of(api, name) == expected

    await wait_for(check, what=f"status of {name}: {expected}")


def pod(name: str, node: str, *, ready: bool = True, owner: str = "lb-rs") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "lb-system",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": owner,
                    "uid": "u-" + owner,
                    "controller": True,
                }
            ],
        },
        "spec": {"nodeName": node, "containers": [{"name": "lb", "image": "x"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def node(name: str, *addresses: tuple[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": t, "address": a} for t, a in addresses]},
    }


async def test_addresses_from_the_nodes_running_our_ready_pods(
    tmp_path: Path, api: FakeAPIServer, backends: Backends
) -> None:
    db = await backends.tcp("db", "127.0.1.1")
    lb_port = free_port()
    for obj in [
        lb_service("db", lb_port, db[1]),
        *slices("db", [db]),
        node("node-a", ("InternalIP", "127.0.2.1"), ("Hostname", "node-a")),
        node("node-b", ("InternalIP", "127.0.2.2"), ("ExternalIP", "127.0.3.2")),
        node("node-c", ("InternalIP", "127.0.2.3")),
        node("node-d", ("InternalIP", "127.0.2.4")),
        pod("lb-a", "node-a"),
        pod("lb-b", "node-b"),
        pod("lb-c", "node-c", ready=False),
        pod("other", "node-d", owner="someone-else"),
    ]:
        await api.create(obj)
    controller = kube_controller(
        tmp_path / "c", api, env={"POD_NAME": "lb-a", "POD_NAMESPACE": "lb-system"}
    )
    async with serving(controller):
        await controller.wait_healthy()
        await until_echo(lb_port, "db: hello")
        a = {"ip": "127.0.2.1", "ipMode": "Proxy"}
        b = {"ip": "127.0.3.2", "ipMode": "Proxy"}  # ExternalIP before InternalIP
        c = {"ip": "127.0.2.3", "ipMode": "Proxy"}
        await until_ingress(api, "db", [a, b])
        # A pod becomes ready: its node joins; one goes away: its node leaves.
        await api.update(pod("lb-c", "node-c"))
        await until_ingress(api, "db", [a, c, b])
        await api.delete("Pod", "lb-system", "lb-b")
        await until_ingress(api, "db", [a, c])


async def test_served_on_its_port_source_ranges_other_class_and_type_change(
    tmp_path: Path, api: FakeAPIServer, backends: Backends
) -> None:
    db = await backends.tcp("db", "127.0.1.1")
    other = await backends.tcp("other", "127.0.1.2")
    lb_port, other_port = free_port(), free_port()
    for obj in [
        lb_service("db", lb_port, db[1]),
        *slices("db", [db]),
        lb_service("other", other_port, other[1], klass="example.com/metallb"),
        *slices("other", [other]),
    ]:
        await api.create(obj)
    controller = kube_controller(tmp_path / "c", api, "--publish-address", "127.0.0.1")
    async with serving(controller):
        await controller.wait_healthy()
        await until_echo(lb_port, "db: hello")
        # Endpoint churn goes through the Runtime API: no reload.
        reloads = reload_count(await controller.metrics())
        db2 = await backends.tcp("db2", "127.0.1.3")
        for obj in slices("db", [db, db2]):
            await api.apply(obj)

        async def both() -> bool:
            seen = {await echo(lb_port) for _ in range(6)}
            return seen == {"db: hello", "db2: hello"}

        await wait_for(both, what="both endpoints behind the load balancer")
        assert reload_count(await controller.metrics()) == reloads
        await until_ingress(api, "db", [{"ip": "127.0.0.1", "ipMode": "Proxy"}])
        # Another class is not ours: no port, no status.
        assert await echo(other_port) == ""
        assert ingress_of(api, "other") == []

        # Source ranges: only 127.0.0.2 may connect; 127.0.0.3 is refused.
        await api.update(lb_service("db", lb_port, db[1], ranges=["127.0.0.2/32"]))
        await until_echo(lb_port, "", source="127.0.0.3")
        assert await echo(lb_port, source="127.0.0.2") == "db: hello"

        # No longer a load balancer: the port closes.
        await api.update(lb_service("db", lb_port, db[1], type_="ClusterIP"))
        await until_echo(lb_port, "")
        await until_ingress(api, "db", [])
        assert ingress_of(api, "other") == []


async def until_leader(api: FakeAPIServer, c: Controller, address: str, name: str) -> None:
    async def check() -> bool:
        return holder(api) == name and await metric(c, address, "slb_leader") == 1.0

    # A lease held by a replica that died must expire first: 15 s, plus a retry of 2 s.
    await wait_for(check, within=40, what=f"{name} holding the Lease")


async def test_two_replicas_one_writer_handover_on_sigterm_and_takeover_after_sigkill(
    tmp_path: Path, api: FakeAPIServer, backends: Backends
) -> None:
    db = await backends.tcp("db", "127.0.1.1")
    lb_port = free_port()
    for obj in [lb_service("db", lb_port, db[1]), *slices("db", [db])]:
        await api.create(obj)
    a = replica(tmp_path, api, "lb-a", "127.0.0.2")
    b = replica(tmp_path, api, "lb-b", "127.0.0.3")
    try:
        a.start()
        await until_leader(api, a, "127.0.0.2", "lb-a")
        b.start()
        # Both serve traffic; only the leader writes status.
        await until_echo(lb_port, "db: hello", address="127.0.0.2")
        await until_echo(lb_port, "db: hello", address="127.0.0.3")
        await until_ingress(api, "db", [{"ip": "127.0.0.2", "ipMode": "Proxy"}])

        async def b_follows() -> bool:
            return await metric(b, "127.0.0.3", "slb_leader") == 0.0

        await wait_for(b_follows, what="b running as a follower")
        # b tries the Lease again and again, and a keeps it. Counted, not slept: a reads
        # and renews (a GET and a PUT) each round, b only reads while a holds it, so
        # GETs - PUTs - 1 (a's round under way) is a count of b's tries.
        tries = Counter[str]()

        async def count(request: web.Request) -> None:
            if request.path == LEASE_PATH:
                tries[request.method] += 1

        api.hooks.append(count)
        await wait_for(
            lambda: _true(tries["GET"] - tries["PUT"] - 1 >= 2), what="b trying the Lease twice"
        )
        api.hooks.remove(count)
        assert holder(api) == "lb-a"
        assert ingress_of(api, "db") == [{"ip": "127.0.0.2", "ipMode": "Proxy"}]
        assert "is now the leader" not in b.log()

        # SIGTERM: a releases the Lease on its way out, b takes over on its next try.
        await terminate(a)
        assert "released" in a.log()
        await until_leader(api, b, "127.0.0.3", "lb-b")
        await until_ingress(api, "db", [{"ip": "127.0.0.3", "ipMode": "Proxy"}])

        # a comes back as a follower; SIGKILL b: a takes over once the lease expired
        # and writes the status with its own address.
        a.start()
        await until_echo(lb_port, "db: hello", address="127.0.0.2")
        kill(b)
        await until_leader(api, a, "127.0.0.2", "lb-a")
        await until_ingress(api, "db", [{"ip": "127.0.0.2", "ipMode": "Proxy"}])
        lease = api.get("Lease", *LEASE) or {}
        assert lease["spec"]["leaseTransitions"] == 2
    finally:
        for c in (a, b):
            if c.proc is not None and c.proc.poll() is None:
                try:
                    await terminate(c)
                except AssertionError:
                    kill(c)


async def _true(value: bool) -> bool:
    return value
