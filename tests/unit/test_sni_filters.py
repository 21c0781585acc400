"""The crt-list's SNI filters: which certificate may be shown for which name (a table
over sni_filters and translate), the decision that a TLS claim without a usable
certificate does not block a newer Ingress, and long filter lists split over lines
that the real `haproxy -c` accepts. The handshakes themselves are checked against the
real HAProxy in tests/integration/test_ingress_tls.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from factories import assert_haproxy_accepts, snapshot
from objects import (
    cert_secret,
    ingress,
    ingress_class,
    ingress_path,
    ingress_rule,
    ingress_tls,
    service,
)

from service_loadbalancer.certificates import certificate_from_secret
from service_loadbalancer.haproxy.certs import write_certificates
from service_loadbalancer.haproxy.plan import reload_reasons
from service_loadbalancer.haproxy.render import (
    CERTS_DIR,
    CRT_FILTERS_PER_LINE,
    CRT_LIST,
    render,
)
from service_loadbalancer.model import Certificate, LoadBalancer
from service_loadbalancer.settings import Settings
from service_loadbalancer.sni_filters import FALLBACK_ONLY, sni_filters
from service_loadbalancer.translate import translate

P = "serviceloadbalancer/"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def cert(ca: trustme.CA, name: str, *hosts: str) -> Certificate:
    return certificate_from_secret(cert_secret(name, ca.issue_cert(*hosts)))


def test_table(ca: trustme.CA) -> None:
    ing = cert(ca, "ing", "a.test", "b.test")
    svc = cert(ca, "svc", "a.test", "*.w.test", "svc.test")
    both = cert(ca, "both", "c.test", "d.test")
    owners = {"a.test": ing.name, "x.w.test": None, "c.test": both.name, "e.test": None}
    certs, default = sni_filters([svc, both], [ing, both], owners)
    filters = {c.name: c.sni for c in certs}
    # An Ingress certificate: exactly the hosts it owns (b.test is not its: not listed).
    assert filters[ing.name] == ("a.test",)
    # A Service certificate: its own names minus the owned ones; `!` for a host only
    # one of its wildcards covers.
    assert filters[svc.name] == ("*.w.test", "svc.test", "!x.w.test")
    # Used by a Service and an Ingress: the Service's form, keeping what it owns.
    assert filters[both.name] == ("c.test", "d.test")
    # The default certificate: the hosts it serves for Ingresses.
    assert default == ("e.test", "x.w.test")
    # Nothing to serve by name: a fallback only.
    certs, default = sni_filters([cert(ca, "s2", "a.test")], [ing], {"a.test": ing.name})
    assert default == (FALLBACK_ONLY,)
    assert [c.sni for c in certs if c.name.startswith("default_s2_")] == [(FALLBACK_ONLY,)]


def test_a_claim_without_a_usable_certificate_does_not_block(ca: trustme.CA) -> None:
    """The oldest Ingress listing c.test has no Secret: the next one, with a good
    certificate, serves it (and its certificate alone is listed for it)."""
    objects = [
        ingress_class(),
        service("web"),
        ingress("gone", ingress_rule("c.test", ingress_path("/", "web")),
                tls=[ingress_tls("c.test", secret="missing")], created="2024-01-01T00:00:00Z"),
        ingress("new", ingress_rule("c.test", ingress_path("/new", "web")),
                tls=[ingress_tls("c.test", secret="ok")], created="2026-01-01T00:00:00Z"),
        cert_secret("ok", ca.issue_cert("c.test")),
    ]  # fmt: skip
    t = translate(snapshot(*objects), Settings(tls_secrets=True))
    assert all(r.https for r in t.model.ingress_routes)
    (only,) = t.model.certificates
    assert only.name.startswith("default_ok_") and only.sni == ("c.test",)
    problems = [p.reason for p in t.problems]
    assert any("Secret default/missing not found" in r for r in problems)
    assert not any("already given" in r for r in problems)


def test_many_hosts_are_split_over_lines_haproxy_accepts(ca: trustme.CA, tmp_path: Path) -> None:
    hosts = [f"h{i}.test" for i in range(2 * CRT_FILTERS_PER_LINE + 5)]
    default = tmp_path / "default.pem"
    ca.issue_cert("default.test").private_key_and_cert_chain_pem.write_to_path(str(default))
    settings = Settings(tls_secrets=True, ssl_cert=default, https_port=8443, http_port=8080,
                        run_dir=tmp_path / "run")  # fmt: skip
    objects = [
        ingress_class(),
        service("web"),
        cert_secret("wild", ca.issue_cert("*.test")),
        ingress("many", *(ingress_rule(h, ingress_path("/", "web")) for h in hosts),
                tls=[ingress_tls(*hosts, secret="wild"), ingress_tls("own.test")]),
        # A Service whose certificate names one of those hosts too.
        service("svc", annotations={P + "lb.sslTerm": "true", P + "lb.ssl-secret": "s"}),
        cert_secret("s", ca.issue_cert("h1.test", "svc.test")),
    ]  # fmt: skip
    t = translate(snapshot(*objects), settings)
    assert not [p for p in t.problems if "tls" in p.reason.lower()], t.problems
    rendered = render(t.model, settings)
    write_certificates(settings.run_dir / CERTS_DIR, rendered.certificates)
    assert_haproxy_accepts(rendered, settings)
    lines = rendered.files[CRT_LIST].splitlines()
    assert lines[0] == f"{default} own.test"
    wild = [line.split()[1:] for line in lines if "/default_wild_" in line]
    assert [len(w) for w in wild] == [CRT_FILTERS_PER_LINE, CRT_FILTERS_PER_LINE, 5]
    assert sorted(h for w in wild for h in w) == sorted(hosts)
    (svc,) = [line.split()[1:] for line in lines if "/default_s_" in line]
    assert svc == ["svc.test"]


def test_a_host_changing_hands_is_a_reload_reason(ca: trustme.CA) -> None:
    secret = cert_secret("tls", ca.issue_cert("a.test", "b.test"))

    def model(*hosts: str) -> LoadBalancer:
        objects = [
            ingress_class(),
            service("web"),
            secret,
            ingress("i", ingress_rule("b.test", ingress_path("/", "web")),
                    tls=[ingress_tls(*hosts, secret="tls")]),
        ]  # fmt: skip
        return translate(snapshot(*objects), Settings(tls_secrets=True)).model

    before, after = model("b.test"), model("a.test", "b.test")
    assert [c.sni for c in after.certificates] == [("a.test", "b.test")]
    assert [str(r) for r in reload_reasons(before, after)] == ["certificates changed (SNI filters)"]
