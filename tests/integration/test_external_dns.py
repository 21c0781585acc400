"""ExternalName Services, end to end: the real controller and HAProxy, a DNS server run
by the test on a loopback address, and two backends on loopback addresses the record
points to in turn. HAProxy resolves the name itself and follows the change."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dns_server import DnsServer
from harness import Backends, Controller, backend_names, request, running, wait_for, write_manifest
from objects import port, service

from service_loadbalancer.demo import start_http_backend

NAME = "db.example.test"


@pytest.fixture
async def dns() -> AsyncIterator[DnsServer]:
    server = DnsServer()
    yield server
    server.close()


def external(name: str, number: int, target: int) -> dict[str, object]:
    svc = service("db", port(number, target=target), type_="ExternalName")
    del svc["spec"]["selector"], svc["spec"]["clusterIP"]
    svc["spec"]["externalName"] = name
    return svc


def external_controller(
    tmp_path: Path, dns_at: tuple[str, int], port_number: int, *deny: str
) -> Controller:
    """A controller that may serve ExternalNames, resolved by the test's DNS server, with
    `--deny-external-cidrs` given when `deny` is (else its default), serving db -> NAME."""
    dns_host, dns_port = dns_at
    extra = ["--allow-external-names", "--dns-servers", f"{dns_host}:{dns_port}"]
    if deny:
        extra += ["--deny-external-cidrs", *deny]
    c = Controller(tmp_path, extra_args=extra)
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "db.yaml", [external(NAME, 80, port_number)])
    return c


async def served_by(c: Controller, name: str) -> bool:
    got = await request(c.http_port, "/db")
    return got.status == 200 and backend_names([got.body]) == [name]


async def test_external_name_follows_dns(
    tmp_path: Path, backends: Backends, dns: DnsServer
) -> None:
    _, shared_port = await backends.http("db-1", "127.0.9.1")
    # The second backend on the same port: only the address changes with the record.
    backends.runners.append(await start_http_backend("db-2", "127.0.9.2", shared_port))
    dns.records[NAME] = "127.0.9.1"
    # The test's servers are on loopback, which the default denies.
    c = external_controller(tmp_path, await dns.start("127.0.9.53"), shared_port, "")
    with running(c):
        await c.wait_healthy()
        await wait_for(lambda: served_by(c, "db-1"), within=30, what="traffic to db-1")
        assert dns.queries > 0
        dns.records[NAME] = "127.0.9.2"
        await wait_for(lambda: served_by(c, "db-2"), within=30, what="traffic to follow DNS")
        # And it stays there: every request now reaches the new address.
        for _ in range(5):
            assert await served_by(c, "db-2")


async def test_external_name_resolving_into_a_denied_network_is_taken_out(
    tmp_path: Path, backends: Backends, dns: DnsServer
) -> None:
    """The record moves into --deny-external-cidrs: the server is taken out of service
    (503) and the Service reported; it moves back: served again, and resolved."""
    _, shared_port = await backends.http("db-1", "127.0.9.11")
    backends.runners.append(await start_http_backend("db-denied", "127.0.9.130", shared_port))
    dns.records[NAME] = "127.0.9.11"
    dns_at = await dns.start("127.0.9.54")
    c = external_controller(tmp_path, dns_at, shared_port, "127.0.9.128/25,link-local")
    refused = (
        f"externalName {NAME} resolves to 127.0.9.130, which --deny-external-cidrs "
        "refuses (127.0.9.128/25); not served while it does"
    )

    async def status() -> int:
        return (await request(c.http_port, "/db")).status

    with running(c):
        await c.wait_healthy()
        await wait_for(lambda: served_by(c, "db-1"), within=30, what="traffic to db-1")
        dns.records[NAME] = "127.0.9.130"

        async def taken_out() -> bool:
            return f"skipped: Service default/db: {refused}" in c.log() and await status() == 503

        await wait_for(taken_out, within=30, what=f"the denied address refused; log:\n{c.log()}")
        for _ in range(5):  # and it stays out
            assert await status() == 503
        dns.records[NAME] = "127.0.9.11"

        async def back() -> bool:
            return f"resolved: Service default/db: {refused}" in c.log() and await served_by(
                c, "db-1"
            )

        await wait_for(back, within=30, what="traffic to db-1 again")


async def test_loopback_is_denied_by_default(
    tmp_path: Path, backends: Backends, dns: DnsServer
) -> None:
    _, number = await backends.http("local", "127.0.9.21")
    dns.records[NAME] = "127.0.9.21"
    c = external_controller(tmp_path, await dns.start("127.0.9.55"), number)
    with running(c):
        await c.wait_healthy()

        async def refused() -> bool:
            return (
                "resolves to 127.0.9.21, which --deny-external-cidrs refuses (127.0.0.0/8)"
                in c.log()
                and (await request(c.http_port, "/db")).status == 503
            )

        await wait_for(refused, within=30, what=f"loopback refused; log:\n{c.log()}")


async def test_external_name_is_reported_without_the_flag(tmp_path: Path) -> None:
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "db.yaml", [external(NAME, 80, 80)])
    with running(c):
        await c.wait_healthy()

        async def reported() -> bool:
            return "--allow-external-names" in c.log()

        await wait_for(reported, what="the ExternalName problem in the log")
        assert (await request(c.http_port, "/db")).status == 404
    with contextlib.suppress(FileNotFoundError):
        assert "resolvers" not in (c.run_dir / "haproxy.cfg").read_text()
