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
async def backends() -> AsyncIterator[Backends]:
    b = Backends()
    yield b
    await b.close()


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


async def test_external_name_follows_dns(
    tmp_path: Path, backends: Backends, dns: DnsServer
) -> None:
    _, shared_port = await backends.http("db-1", "127.0.9.1")
    # The second backend on the same port: only the address changes with the record.
    backends.runners.append(await start_http_backend("db-2", "127.0.9.2", shared_port))
    dns.records[NAME] = "127.0.9.1"
    dns_host, dns_port = await dns.start("127.0.9.53")
    c = Controller(
        tmp_path,
        extra_args=["--allow-external-names", "--dns-servers", f"{dns_host}:{dns_port}"],
    )
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "db.yaml", [external(NAME, 80, shared_port)])

    async def served_by(name: str) -> bool:
        got = await request(c.http_port, "/db")
        return got.status == 200 and backend_names([got.body]) == [name]

    with running(c):
        await c.wait_healthy()
        await wait_for(lambda: served_by("db-1"), within=30, what="traffic to db-1")
        assert dns.queries > 0
        dns.records[NAME] = "127.0.9.2"
        await wait_for(lambda: served_by("db-2"), within=30, what="traffic to follow DNS")
        # And it stays there: every request now reaches the new address.
        for _ in range(5):
            assert await served_by("db-2")


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
