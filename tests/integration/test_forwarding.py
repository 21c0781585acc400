"""Forwarding headers and per-Service timeouts, end to end: the real controller and
HAProxy, backends on 127.0.0.0/8 that report what they received, clients bound to their
own loopback addresses (some inside --trusted-proxies, some not)."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import trustme
from harness import Backends, Controller, request, running, write_manifest
from objects import service, slices

P = "serviceloadbalancer/"
UNTRUSTED = "127.0.8.99"
TRUSTED = "127.0.8.200"  # in --trusted-proxies 127.0.8.128/25
FORGED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Prefix": "/evil",
}


async def test_forwarding_headers_replace_untrusted_and_keep_trusted(
    tmp_path: Path, backends: Backends
) -> None:
    ca = trustme.CA()
    web = await backends.headers("web-1", "127.0.8.1")
    store = await backends.headers("store-1", "127.0.8.2")
    shop = await backends.headers("shop-1", "127.0.8.3")
    cert = tmp_path / "default.pem"
    ca.issue_cert("default.example").private_key_and_cert_chain_pem.write_to_path(str(cert))
    c = Controller(
        tmp_path, extra_args=["--ssl-cert", str(cert), "--trusted-proxies", "127.0.8.128/25"]
    )
    c.manifests.mkdir(parents=True)
    write_manifest(
        c.manifests / "apps.yaml",
        [
            service("web", 80, annotations={P + "lb.sslTerm": "true"}),
            *slices("web", [web]),
            service("store", 80, annotations={P + "lb.aclMatch": "/buy"}),
            *slices("store", [store]),
            service("shop", 80, annotations={P + "lb.host": "shop.example"}),
            *slices("shop", [shop]),
        ],
    )
    tls = ssl.create_default_context()
    ca.configure_trust(tls)

    async def seen(path: str, **kw: Any) -> dict[str, str]:
        got = await request(kw.pop("port", c.http_port), path, **kw)
        assert got.status == 200, got
        body: dict[str, str] = json.loads(got.body)
        return body

    with running(c):
        await c.wait_healthy()
        host = f"lb.example:{c.http_port}"
        ours = {
            "backend": "web-1",
            "path": "/a?q=1",
            "X-Forwarded-For": UNTRUSTED,
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": host,
            "X-Forwarded-Prefix": "/web",
        }
        # An untrusted client: ours, whether or not it sent its own.
        for sent in ({}, FORGED):
            got = await seen("/web/a?q=1", host=host, source=UNTRUSTED, headers=sent)
            assert got == ours, sent
        got = await seen("/default/web/a?q=1", host=host, source=UNTRUSTED, headers=FORGED)
        assert got == {**ours, "X-Forwarded-Prefix": "/default/web"}
        # Nothing stripped (lb.aclMatch, lb.host): no X-Forwarded-Prefix, even a forged one.
        got = await seen("/buy/x", host=host, source=UNTRUSTED, headers=FORGED)
        assert got == {
            **{k: v for k, v in ours.items() if k != "X-Forwarded-Prefix"},
            "backend": "store-1",
            "path": "/buy/x",
        }
        got = await seen("/web/x", host="shop.example", source=UNTRUSTED, headers=FORGED)
        assert got == {
            "backend": "shop-1",
            "path": "/web/x",
            "X-Forwarded-For": UNTRUSTED,
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "shop.example",
        }
        # Over HTTPS: Proto https, the client's address carried over PROXY v2.
        https = {"port": c.https_port, "tls": tls, "sni": "default.example"}
        got = await seen("/web/a?q=1", source=UNTRUSTED, headers=FORGED, **https)
        assert got == {
            **ours,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "default.example",
        }
        # A trusted proxy: its headers are kept, its address appended to X-Forwarded-For.
        kept = {
            "backend": "web-1",
            "path": "/a?q=1",
            **FORGED,
            "X-Forwarded-For": f"{FORGED['X-Forwarded-For']}, {TRUSTED}",
        }
        got = await seen("/web/a?q=1", host=host, source=TRUSTED, headers=FORGED)
        assert got == kept
        got = await seen("/web/a?q=1", source=TRUSTED, headers=FORGED, **https)
        assert got == kept
        # ... and where it sent none, ours are set.
        got = await seen("/web/a?q=1", host=host, source=TRUSTED)
        assert got == {**ours, "X-Forwarded-For": TRUSTED}


async def test_timeout_server_gives_504_but_spares_websockets(
    tmp_path: Path, backends: Backends
) -> None:
    """A 4 s answer: 504 with lb.timeout-server 2s, 200 with the defaults; a WebSocket
    idle for longer than 2 s (the time the slow answers take) still works."""
    pod = await backends.slow("slow-1", "127.0.8.10", delay=4.0)
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(
        c.manifests / "apps.yaml",
        [
            service("hasty", 80, annotations={
                P + "lb.timeout-server": "2s", P + "lb.timeout-connect": "500ms"}),
            *slices("hasty", [pod]),
            service("patient", 80),
            *slices("patient", [pod]),
            service("broken", 80, annotations={P + "lb.timeout-server": "2 s"}),
            *slices("broken", [pod]),
        ],
    )  # fmt: skip
    with running(c):
        await c.wait_healthy()
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{c.http_port}/hasty/ws") as ws,
        ):
            await ws.send_str("before")
            assert (await ws.receive_str(timeout=10)) == "slow-1: before"
            hasty, patient = await asyncio.gather(
                request(c.http_port, "/hasty/x"), request(c.http_port, "/patient/x")
            )
            assert hasty.status == 504
            assert patient.status == 200 and patient.body.startswith("backend=slow-1 path=/x ")
            # The WebSocket has now been idle longer than the hasty server timeout.
            await ws.send_str("after")
            assert (await ws.receive_str(timeout=10)) == "slow-1: after"
        # An invalid value skips the Service, with a problem that says why.
        assert (await request(c.http_port, "/broken/x")).status == 404
        assert f"not served: annotation {P}lb.timeout-server: '2 s' is not a time" in c.log()
