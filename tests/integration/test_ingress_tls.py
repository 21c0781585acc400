"""Which certificate the real HAProxy shows for which SNI name when several could: the
owner of a host (the oldest Ingress listing it with a usable certificate) wins over a
newer Ingress in another namespace, over a Service's lb.ssl-secret and over the default
certificate, all of which also name that host. Real controller, real HAProxy, real TLS
handshakes on 127.0.0.1; the client reads the certificate it was shown."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme
from harness import Backends, Controller, request, running, wait_for, write_manifest
from objects import (
    cert_secret,
    ingress,
    ingress_class,
    ingress_path,
    ingress_rule,
    ingress_tls,
    service,
    slices,
)

P = "serviceloadbalancer/"


def shown(ca: trustme.CA) -> ssl.SSLContext:
    """Trusts `ca` but accepts any name, so that the certificate shown can be read."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.check_hostname = False
    return context


async def test_the_owner_of_a_host_is_the_only_certificate_shown_for_it(
    tmp_path: Path, backends: Backends
) -> None:
    ca = trustme.CA()
    default = tmp_path / "default.pem"
    # The default certificate names an owned host too: it must not be chosen for it.
    ca.issue_cert("default.example", "a.test").private_key_and_cert_chain_pem.write_to_path(
        str(default)
    )
    old_pod = await backends.http("zz-1", "127.0.93.1")
    new_pod = await backends.http("aa-1", "127.0.93.2")
    svc_pod = await backends.http("svc-1", "127.0.93.3")
    c_pod = await backends.http("c-1", "127.0.93.4")
    c = Controller(tmp_path, extra_args=["--tls-secrets", "--ssl-cert", str(default)])
    c.manifests.mkdir(parents=True)
    write_manifest(
        c.manifests / "apps.yaml",
        [
            ingress_class(),
            service("web", 80, namespace="zz"), *slices("web", [old_pod], namespace="zz"),
            service("web", 80, namespace="aa"), *slices("web", [new_pod], namespace="aa"),
            service("web", 80, namespace="cc"), *slices("web", [c_pod], namespace="cc"),
            # zz/a is the oldest with a.test: its certificate (a.test only) is a.test's.
            cert_secret("zz", ca.issue_cert("a.test"), namespace="zz"),
            ingress("a", ingress_rule("a.test", ingress_path("/", "web")), namespace="zz",
                    tls=[ingress_tls("a.test", secret="zz")], created="2025-01-01T00:00:00Z"),
            # aa/b (newer, and first by name) names a.test too: only second.test is its.
            cert_secret("aa", ca.issue_cert("a.test", "second.test"), namespace="aa"),
            ingress("b", ingress_rule("second.test", ingress_path("/", "web")), namespace="aa",
                    tls=[ingress_tls("a.test", "second.test", secret="aa")],
                    created="2026-01-01T00:00:00Z"),
            # A Service certificate naming a.test: shown for its other names only.
            service("svc", 80, annotations={P + "lb.sslTerm": "true",
                                              P + "lb.ssl-secret": "svc-tls"}),
            *slices("svc", [svc_pod]),
            cert_secret("svc-tls", ca.issue_cert("a.test", "svc.test")),
            # The oldest claim on c.test has no Secret: it does not block the next one.
            ingress("gone", ingress_rule("c.test", ingress_path("/", "web")), namespace="cc",
                    tls=[ingress_tls("c.test", secret="missing")],
                    created="2024-01-01T00:00:00Z"),
            cert_secret("c-tls", ca.issue_cert("c.test"), namespace="cc"),
            ingress("c", ingress_rule("c.test", ingress_path("/c", "web")), namespace="cc",
                    tls=[ingress_tls("c.test", secret="c-tls")],
                    created="2026-02-01T00:00:00Z"),
        ],
    )  # fmt: skip
    context = shown(ca)
    with running(c):
        await c.wait_healthy()

        async def names(sni: str) -> tuple[str, ...]:
            return (await request(c.https_port, "/", sni=sni, tls=context)).peer_names

        async def c_served() -> bool:
            return await names("c.test") == ("c.test",)

        await wait_for(c_served, what=f"c.test over HTTPS; log:\n{c.log()}")
        for _ in range(3):  # not a toss-up: the same every time
            assert await names("a.test") == ("a.test",)
            assert await names("second.test") == ("a.test", "second.test")
            assert await names("svc.test") == ("a.test", "svc.test")
            assert await names("other.test") == ("default.example", "a.test")
        answer = await request(c.https_port, "/", sni="a.test", tls=context)
        assert answer.status == 200 and answer.body.startswith("backend=zz-1 ")
        answer = await request(c.https_port, "/c/x", sni="c.test", tls=context)
        assert answer.status == 200 and answer.body.startswith("backend=c-1 ")
        assert "Secret cc/missing not found" in c.log()
        lines = (c.run_dir / "certs.list").read_text().splitlines()
        assert lines[0] == f"{default} !*"
