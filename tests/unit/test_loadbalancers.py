"""type=LoadBalancer Services: which are ours (class rules), their listeners, port
claims (oldest wins), source ranges, unsupported protocols, and which get status or have
it cleared. Tables over translate(); every rendered config goes through `haproxy -c`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme
from factories import block, render_checked, snapshot
from objects import endpoint_slice, port, service

from service_loadbalancer.flag_values import parse_tcp_services
from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import Mode, TcpFrontend, Translation
from service_loadbalancer.settings import Settings
from service_loadbalancer.translate import translate

DEFAULT = Settings(http_port=8080, https_port=8443)


def lb(
    name: str,
    *ports: RawObject | int,
    namespace: str = "default",
    klass: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
    ranges: list[Any] | None = None,
    status: list[dict[str, Any]] | None = None,
    type_: str = "LoadBalancer",
    annotations: dict[str, str] | None = None,
) -> RawObject:
    svc = service(name, *ports, namespace=namespace, type_=type_, annotations=annotations)
    svc["metadata"]["creationTimestamp"] = created
    if klass is not None:
        svc["spec"]["loadBalancerClass"] = klass
    if ranges is not None:
        svc["spec"]["loadBalancerSourceRanges"] = ranges
    if status is not None:
        svc["status"] = {"loadBalancer": {"ingress": status}}
    return svc


def key(name: str, namespace: str = "default") -> ObjectKey:
    return ObjectKey("Service", namespace, name)


def run(*objects: RawObject, settings: Settings = DEFAULT) -> Translation:
    return translate(snapshot(*objects), settings)


def reasons(t: Translation) -> list[str]:
    return [f"{p.subject.name}: {p.reason}" for p in t.problems]


def test_a_load_balancer_gets_a_listener_and_keeps_its_routes() -> None:
    t = run(lb("db", port(5432, target=5432)), endpoint_slice("db", "10.0.0.1"))
    assert t.model.tcp_frontends == (TcpFrontend(5432, "tcp_default_db_5432"),)
    modes = {b.name: b.mode for b in t.model.backends}
    assert modes == {"http_default_db_5432": Mode.HTTP, "tcp_default_db_5432": Mode.TCP}
    assert t.model.load_balancers == (key("db"),)
    assert any(r.path == "/db:5432" for r in t.model.http_routes)
    assert not t.problems


@pytest.mark.parametrize(
    ("spec_class", "flag", "ours"),
    [
        (None, None, True),
        ("example.com/other", None, False),
        (None, "example.com/ours", False),
        ("example.com/ours", "example.com/ours", True),
        ("example.com/other", "example.com/ours", False),
    ],
)
def test_class_rules(spec_class: str | None, flag: str | None, ours: bool) -> None:
    settings = Settings(http_port=8080, https_port=8443, load_balancer_class=flag)
    t = run(lb("db", 5432, klass=spec_class), settings=settings)
    assert bool(t.model.tcp_frontends) is ours
    assert bool(t.model.load_balancers) is ours


def test_cluster_ip_service_is_no_load_balancer() -> None:
    t = run(lb("db", 5432, type_="ClusterIP"))
    assert not t.model.tcp_frontends
    assert not t.model.load_balancers


def test_the_oldest_gets_a_contested_port_and_the_other_no_status() -> None:
    old = lb("b-old", 5432, created="2025-01-01T00:00:00Z")
    new = lb("a-new", 5432, created="2026-01-01T00:00:00Z")
    t = run(new, old)
    assert t.model.tcp_frontends == (TcpFrontend(5432, "tcp_default_b-old_5432"),)
    assert t.model.load_balancers == (key("b-old"),)
    assert any(
        "a-new: TCP port 5432 is already served for default/b-old (created earlier)" in r
        for r in reasons(t)
    )


def test_tcp_services_flag_wins_over_a_load_balancer() -> None:
    settings = Settings(
        http_port=8080, https_port=8443, tcp_services=parse_tcp_services("mysql:3306")
    )
    t = run(service("mysql", 3306), lb("db", 3306, created="2000-01-01T00:00:00Z"),
            settings=settings)  # fmt: skip
    assert t.model.tcp_frontends == (TcpFrontend(3306, "tcp_default_mysql_3306"),)
    assert t.model.load_balancers == ()


def test_http_port_is_served_by_the_shared_frontend() -> None:
    t = run(lb("web", 8080, 9000))
    assert t.model.tcp_frontends == (TcpFrontend(9000, "tcp_default_web_9000"),)
    assert t.model.load_balancers == (key("web"),)


def test_shared_port_without_a_route_there_gets_no_status(tmp_path: Path) -> None:
    """A port equal to --http-port/--https-port is served only through the Service's
    own routes there: without them (--service-routes=false; HTTPS without a usable
    certificate) nothing of the Service answers, so no status, and a problem says why."""
    no_routes = Settings(http_port=8080, https_port=8443, service_routes=False)
    t = run(lb("web", 8080), endpoint_slice("web", "10.0.0.1"), settings=no_routes)
    assert t.model.load_balancers == () and t.model.tcp_frontends == ()
    assert reasons(t) == [
        "web: port 8080 is the --http-port, where this Service has no Service route "
        "(--service-routes=false); no status"
    ]
    term = {"serviceloadbalancer/lb.sslTerm": "true", "serviceloadbalancer/lb.ssl-secret": "nope"}
    secrets = Settings(http_port=8080, https_port=8443, tls_secrets=True)
    svc = lb("tls", port(8443, target=8080), annotations=term)
    t = run(svc, endpoint_slice("tls", "10.0.0.1"), settings=secrets)
    assert t.model.load_balancers == () and not t.model.https
    assert "tls: port 8443 is the --https-port, where this Service has no HTTPS" in "".join(
        reasons(t)
    )
    render_checked(t.model, secrets, tmp_path)
    # With a certificate the same Service is served there, and gets status.
    default = tmp_path / "default.pem"
    trustme.CA().issue_cert("d.example").private_key_and_cert_chain_pem.write_to_path(str(default))
    svc = lb("tls", port(8443, target=8080), annotations={"serviceloadbalancer/lb.sslTerm": "true"})
    with_cert = Settings(http_port=8080, https_port=8443, ssl_cert=default)
    t = run(svc, endpoint_slice("tls", "10.0.0.1"), settings=with_cert)
    assert t.model.load_balancers == (key("tls"),) and t.model.terminates
    render_checked(t.model, with_cert, tmp_path)


def test_reserved_port_gets_no_status() -> None:
    t = run(lb("web", 1936))
    assert not t.model.tcp_frontends
    assert t.model.load_balancers == ()
    assert t.model.unpublished == ()  # no status to clear


def test_udp_is_reported_and_gets_no_status() -> None:
    t = run(lb("dns", port(53, protocol="UDP"), port(5353)))
    assert "dns: port 53/UDP: only TCP is supported" in reasons(t)
    assert t.model.tcp_frontends == (TcpFrontend(5353, "tcp_default_dns_5353"),)
    assert t.model.load_balancers == ()


def test_source_ranges_on_listener_and_backends(tmp_path: Path) -> None:
    t = run(lb("db", 5432, ranges=["10.1.2.3/8", "127.0.0.2/32", "10.0.0.0/8"]))
    sources = ("10.0.0.0/8", "127.0.0.2/32")
    assert t.model.tcp_frontends == (TcpFrontend(5432, "tcp_default_db_5432", sources),)
    assert {b.allowed_sources for b in t.model.backends} == {sources}
    config = render_checked(t.model, DEFAULT, tmp_path).config
    frontend = block(config, "frontend tcp_5432")
    assert "tcp-request connection reject unless { src 10.0.0.0/8 127.0.0.2/32 }" in frontend
    assert "http-request deny deny_status 403 unless { src 10.0.0.0/8 127.0.0.2/32 }" in block(
        config, "backend http_default_db_5432"
    )


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "nonsense", "10.0.0.1", 7, "10.0.0.0/8%x"])
def test_invalid_source_range_skips_the_service(bad: object) -> None:
    t = run(lb("db", 5432, ranges=[bad]))
    assert not t.model.backends
    assert any("loadBalancerSourceRanges entry" in r for r in reasons(t))


OURS = [{"ip": "127.0.0.5", "ipMode": "Proxy"}]
THEIRS = [{"ip": "192.0.2.1", "ipMode": "VIP"}]


@pytest.mark.parametrize(
    ("svc", "cleared"),
    [
        (lb("db", 5432, type_="ClusterIP", status=OURS), True),
        (lb("db", 5432, type_="ClusterIP", status=THEIRS), False),
        (lb("db", 5432, klass="example.com/other", status=OURS), False),
        (lb("db", 1936, status=OURS), True),  # ours, but not served
        (lb("db", 5432, status=OURS), False),  # served: status stays
        (lb("db", 5432, type_="ClusterIP"), False),  # nothing to clear
    ],
)
def test_status_to_clear(svc: RawObject, cleared: bool) -> None:
    assert run(svc).model.unpublished == ((key("db"),) if cleared else ())


def test_namespace_selection_bounds_what_is_touched() -> None:
    settings = Settings(http_port=8080, https_port=8443, namespaces=("a",))
    t = run(lb("db", 5432, namespace="b"), settings=settings)
    assert not t.model.load_balancers


@pytest.mark.parametrize(
    "status", [[1], "x", {"loadBalancer": [1]}, {"loadBalancer": {"ingress": "x"}}]
)
def test_hostile_status_is_no_status(status: object) -> None:
    svc = lb("db", 5432, type_="ClusterIP")
    svc["status"] = status
    assert run(svc).model.unpublished == ()


def test_hostile_spec_with_our_status_is_cleared() -> None:
    svc = lb("db", 5432, status=OURS)
    svc["spec"] = [1]
    t = run(svc)
    assert t.model.unpublished == (key("db"),)
    assert not t.model.backends
