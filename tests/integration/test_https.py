"""HTTPS end to end: the real controller and HAProxy, real TLS with certificates made
here (trustme), backends on 127.0.0.0/8, clients that check the certificate they see."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
from pathlib import Path

import pytest
import trustme
from harness import Backends, Controller, request, running, wait_for, write_manifest
from objects import cert_secret, service, slices

P = "serviceloadbalancer/"


def trusting(*cas: trustme.CA, client: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for ca in cas:
        ca.configure_trust(context)
    if client is not None:
        client.configure_cert(context)
    return context


def default_cert(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "default.pem"
    ca.issue_cert("default.example").private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


async def test_termination_by_sni_passthrough_redirect_and_hsts(
    tmp_path: Path, backends: Backends
) -> None:
    ca, pod_ca = trustme.CA(), trustme.CA()
    a = await backends.http("a-1", "127.0.5.1")
    b = await backends.http("b-1", "127.0.5.2")
    plain = await backends.http("plain-1", "127.0.5.3")
    pod = await backends.https("p-1", "127.0.5.4", pod_ca.issue_cert("p.example", "*.pw.example"))
    wild = await backends.http("w-1", "127.0.5.5")
    c = Controller(
        tmp_path, extra_args=["--tls-secrets", "--ssl-cert", str(default_cert(ca, tmp_path))]
    )
    c.manifests.mkdir(parents=True)
    term = {P + "lb.sslTerm": "true"}
    write_manifest(
        c.manifests / "apps.yaml",
        [
            service("a", 80, annotations={
                **term, P + "lb.ssl-secret": "a-tls", P + "lb.host": "a.example",
                P + "lb.sslRedirect": "true", P + "lb.hsts": "600"}),
            *slices("a", [a]),
            cert_secret("a-tls", ca.issue_cert("a.example")),
            service("b", 80, annotations={**term, P + "lb.ssl-secret": "b-tls",
                                            P + "lb.host": "b.example"}),
            *slices("b", [b]),
            cert_secret("b-tls", ca.issue_cert("b.example")),
            service("plain", 80),
            *slices("plain", [plain]),
            service("p", 443, annotations={P + "lb.sslPassthrough": "true",
                                             P + "lb.host": "p.example"}),
            *slices("p", [pod]),
            service("pw", 443, annotations={P + "lb.sslPassthrough": "true",
                                              P + "lb.host": "*.pw.example"}),
            *slices("pw", [pod]),
            service("w", 80, annotations={P + "lb.host": "*.w.example"}),
            *slices("w", [wild]),
        ],
    )  # fmt: skip
    client = trusting(ca, pod_ca)
    with running(c):
        await c.wait_healthy()
        port = c.https_port
        # SNI picks the certificate; the Host header picks the route, as over HTTP.
        got = await request(port, "/x", tls=client, sni="a.example")
        assert got.peer_names == ("a.example",)
        assert got.status == 200 and got.body.startswith("backend=a-1 path=/x ")
        assert got.headers["strict-transport-security"] == "max-age=600"
        got = await request(port, "/y", tls=client, sni="b.example")
        assert got.peer_names == ("b.example",)
        assert got.status == 200 and got.body.startswith("backend=b-1 path=/y ")
        assert "strict-transport-security" not in got.headers
        # No name matches: the --ssl-cert certificate; paths route as over HTTP.
        got = await request(port, "/b/z", tls=client, sni="default.example")
        assert got.peer_names == ("default.example",)
        assert got.body.startswith("backend=b-1 path=/z ")
        # A Service without lb.sslTerm is not served over HTTPS.
        got = await request(port, "/plain/", tls=client, sni="default.example")
        assert got.status == 404
        # Passthrough on the same port: the pod's own certificate, end to end.
        got = await request(port, "/secret", tls=client, sni="p.example")
        assert got.peer_names == ("p.example", "*.pw.example")
        assert got.status == 200 and got.body.startswith("backend=p-1 path=/secret ")
        # A wildcard SNI name: one label in its place.
        got = await request(port, "/", tls=client, sni="any.pw.example")
        assert got.status == 200 and got.body.startswith("backend=p-1")
        lax = trusting(ca)
        lax.check_hostname = False
        got = await request(port, "/", tls=lax, sni="a.b.pw.example")  # terminated here
        assert got.peer_names == ("default.example",) and got.status == 404
        # A wildcard Host over HTTP: one label, and an exact host would win.
        got = await request(c.http_port, "/w/", host="x.w.example")
        assert got.body.startswith("backend=w-1 path=/w/ ")
        got = await request(c.http_port, "/", host="x.y.w.example")
        assert got.status == 404
        # Redirect: plain HTTP to a's routes gets a 308 to HTTPS; b's and plain's do not.
        got = await request(c.http_port, "/q?x=1", host="a.example")
        assert got.status == 308
        assert got.headers["location"] == f"https://a.example:{port}/q?x=1"
        got = await request(c.http_port, "/a/q", host=f"127.0.0.1:{c.http_port}")
        assert got.headers["location"] == f"https://127.0.0.1:{port}/a/q"
        assert "strict-transport-security" not in got.headers  # not over plain HTTP
        got = await request(c.http_port, "/b/q")
        assert got.status == 200 and got.body.startswith("backend=b-1")
        # TLS 1.2 is still served (the floor; older ones are refused by config, and the
        # client's own OpenSSL would not offer them anyway).
        tls12 = trusting(ca)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        got = await request(port, "/x", tls=tls12, sni="a.example")
        assert got.status == 200
        # Key material: private files, never in the log.
        certs = c.run_dir / "certs"
        assert stat.S_IMODE(certs.stat().st_mode) == 0o700
        files = sorted(certs.iterdir())
        assert len(files) == 2
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert "PRIVATE KEY" not in c.log()


async def test_client_certificate_required(tmp_path: Path, backends: Backends) -> None:
    ca, clients = trustme.CA(), trustme.CA()
    web = await backends.headers("web-1", "127.0.5.10")
    ca_file = tmp_path / "clients.pem"
    clients.cert_pem.write_to_path(str(ca_file))
    c = Controller(tmp_path, extra_args=[
        "--ssl-cert", str(default_cert(ca, tmp_path)), "--ssl-ca-cert", str(ca_file)])  # fmt: skip
    c.manifests.mkdir(parents=True)
    write_manifest(
        c.manifests / "apps.yaml",
        [service("web", 80, annotations={P + "lb.sslTerm": "true"}), *slices("web", [web])],
    )
    with running(c):
        await c.wait_healthy()
        good = trusting(ca, client=clients.issue_cert("alice@example.org"))
        got = await request(
            c.https_port, "/web/hi", tls=good, sni="default.example", source="127.0.5.99"
        )
        # The client's address survives the hop between the two HTTPS frontends.
        assert got.status == 200 and json.loads(got.body) == {
            "backend": "web-1",
            "path": "/hi",
            "X-Forwarded-For": "127.0.5.99",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "default.example",
            "X-Forwarded-Prefix": "/web",
        }
        for context in (trusting(ca), trusting(ca, client=trustme.CA().issue_cert("eve"))):
            # TLS 1.3 reports the refusal after the handshake: on the first read.
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await request(c.https_port, "/web/hi", tls=context, sni="default.example")


async def test_rotated_and_removed_secret(tmp_path: Path, backends: Backends) -> None:
    """A new certificate in the Secret is served with no failed request from a client
    running throughout; a deleted Secret takes HTTPS away (and its key file), not HTTP."""
    ca = trustme.CA()
    web = await backends.http("web-1", "127.0.5.20")
    c = Controller(tmp_path, extra_args=["--tls-secrets"])
    c.manifests.mkdir(parents=True)
    svc = service("web", 80, annotations={P + "lb.sslTerm": "true", P + "lb.ssl-secret": "w"})
    first, second = ca.issue_cert("web.example"), ca.issue_cert("web.example")
    write_manifest(c.manifests / "apps.yaml", [svc, *slices("web", [web]), cert_secret("w", first)])
    client = trusting(ca)
    with running(c):
        await c.wait_healthy()
        before = await request(c.https_port, "/web/", tls=client, sni="web.example")
        assert before.status == 200
        serials: list[str] = []
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def keep_asking() -> None:
            for _ in range(5000):  # bounded in count; `stop` ends it much earlier
                if stop.is_set():
                    return
                try:
                    got = await request(c.https_port, "/web/", tls=client, sni="web.example")
                    assert got.status == 200, got
                    serials.append(got.peer_serial)
                except (AssertionError, OSError, ssl.SSLError, TimeoutError) as err:
                    failures.append(err)

        asker = asyncio.create_task(keep_asking())
        await wait_for(lambda: _true(len(serials) >= 5), what="requests before the rotation")
        old_files = set((c.run_dir / "certs").iterdir())
        write_manifest(
            c.manifests / "apps.yaml", [svc, *slices("web", [web]), cert_secret("w", second)]
        )

        async def rotated() -> bool:
            return bool(serials) and serials[-1] != before.peer_serial

        await wait_for(rotated, what="the new certificate served")
        await wait_for(lambda: _true(len(serials) >= 10 + serials.index(serials[-1])),
                       what="requests after the rotation")  # fmt: skip
        stop.set()
        await asyncio.wait_for(asker, 30)
        assert failures == [], failures[:3]
        assert len(set(serials)) == 2
        await wait_for(
            lambda: _true(not old_files & set((c.run_dir / "certs").iterdir())),
            what="the old key file removed",
        )
        # The Secret goes away: its key file too; HTTPS stops, HTTP keeps working.
        write_manifest(c.manifests / "apps.yaml", [svc, *slices("web", [web])])
        await wait_for(
            lambda: _true(not any((c.run_dir / "certs").iterdir())), what="key files removed"
        )
        status, body, _ = await c.get("/web/x")
        assert status == 200 and body.startswith("backend=web-1")
        assert "HTTPS not served: Secret default/w not found" in c.log()
    assert "PRIVATE KEY" not in c.log()


async def _true(value: bool) -> bool:
    return value
