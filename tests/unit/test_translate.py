"""translate(): snapshot + settings -> (model, problems), as tables.

Each rule of the translate.py docstring and of the routing spec has its table here:
paths, namespaces and short-name collisions, annotations, TCP services, endpoints,
forward/target services, the API server Service, listener clashes and bad input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from factories import snapshot
from objects import endpoint, endpoint_slice, endpoints, ep_port, port, service, subset

from service_loadbalancer.flag_values import parse_tcp_services
from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import (
    Algorithm,
    Backend,
    HttpRoute,
    LoadBalancer,
    Mode,
    Problem,
    Protocol,
    Server,
    Stickiness,
    TcpFrontend,
    Translation,
)
from service_loadbalancer.routes import TCP_FLAG
from service_loadbalancer.settings import ServiceRef, Settings
from service_loadbalancer.translate import translate

P = "serviceloadbalancer/"

Route = tuple[str | None, str, str, bool]  # host, path, backend, strip


def run(*objects: RawObject, settings: Settings | None = None) -> Translation:
    return translate(snapshot(*objects), settings or Settings())


def routes(model: LoadBalancer) -> set[Route]:
    return {(r.host, r.path, r.backend, r.strip) for r in model.http_routes}


def backend(model: LoadBalancer, name: str) -> Backend:
    found = [b for b in model.backends if b.name == name]
    assert len(found) == 1, f"no backend {name} in {[b.name for b in model.backends]}"
    return found[0]


def svc_key(name: str, namespace: str = "default") -> ObjectKey:
    return ObjectKey("Service", namespace, name)


def problems_of(result: Translation, subject: ObjectKey) -> list[str]:
    return [p.reason for p in result.problems if p.subject == subject]


def assert_problem(result: Translation, subject: ObjectKey, *fragments: str) -> None:
    reasons = problems_of(result, subject)
    assert any(all(f in r for f in fragments) for r in reasons), (
        f"no problem for {subject} containing {fragments}; got {result.problems}"
    )


def server(address: str, port_number: int) -> Server:
    name = f"s_{address.replace('.', '_').replace(':', '_')}_{port_number}"
    return Server(name=name, address=address, port=port_number)


# --- Paths ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteCase:
    objects: tuple[RawObject, ...]
    routes: set[Route]
    backends: tuple[str, ...]
    settings: Settings = field(default_factory=Settings)


ROUTE_CASES = {
    "port-80-short-and-long": RouteCase(
        (service("web", 80),),
        {
            (None, "/web", "http_default_web_80", True),
            (None, "/default/web", "http_default_web_80", True),
        },
        ("http_default_web_80",),
    ),
    "port-8080-has-suffix": RouteCase(
        (service("web", 8080),),
        {
            (None, "/web:8080", "http_default_web_8080", True),
            (None, "/default/web:8080", "http_default_web_8080", True),
        },
        ("http_default_web_8080",),
    ),
    "two-ports-two-backends": RouteCase(
        (service("web", port(80, name="http"), port(9090, name="metrics")),),
        {
            (None, "/web", "http_default_web_80", True),
            (None, "/default/web", "http_default_web_80", True),
            (None, "/web:9090", "http_default_web_9090", True),
            (None, "/default/web:9090", "http_default_web_9090", True),
        },
        ("http_default_web_80", "http_default_web_9090"),
    ),
    "other-namespace-unique-name-gets-short-form": RouteCase(
        (service("api", 80, namespace="team"),),
        {
            (None, "/api", "http_team_api_80", True),
            (None, "/team/api", "http_team_api_80", True),
        },
        ("http_team_api_80",),
    ),
    "udp-port-ignored": RouteCase(
        (service("dns", port(53, name="dns", protocol="UDP"), port(80, name="http")),),
        {
            (None, "/dns", "http_default_dns_80", True),
            (None, "/default/dns", "http_default_dns_80", True),
        },
        ("http_default_dns_80",),
    ),
    "sctp-port-ignored": RouteCase(
        (service("x", port(9999, protocol="SCTP")),),
        set(),
        (),
    ),
    "udp-only-service-has-nothing": RouteCase(
        (service("dns", port(53, protocol="UDP")),),
        set(),
        (),
    ),
    "explicit-tcp-protocol": RouteCase(
        (service("web", port(80, protocol="TCP")),),
        {
            (None, "/web", "http_default_web_80", True),
            (None, "/default/web", "http_default_web_80", True),
        },
        ("http_default_web_80",),
    ),
    "namespace-filter-keeps-only-listed": RouteCase(
        (service("a", namespace="one"), service("b", namespace="two")),
        {
            (None, "/a", "http_one_a_80", True),
            (None, "/one/a", "http_one_a_80", True),
        },
        ("http_one_a_80",),
        Settings(namespaces=("one",)),
    ),
    "target-service-by-name-any-namespace": RouteCase(
        (service("web", namespace="one"), service("api", namespace="one")),
        {
            (None, "/web", "http_one_web_80", True),
            (None, "/one/web", "http_one_web_80", True),
        },
        ("http_one_web_80",),
        Settings(target_service=ServiceRef("web")),
    ),
    "target-service-with-namespace": RouteCase(
        (service("web", namespace="one"), service("web", namespace="two")),
        {
            (None, "/web", "http_two_web_80", True),
            (None, "/two/web", "http_two_web_80", True),
        },
        ("http_two_web_80",),
        Settings(target_service=ServiceRef("web", "two")),
    ),
}


@pytest.mark.parametrize("case", ROUTE_CASES.values(), ids=ROUTE_CASES.keys())
def test_http_routes(case: RouteCase) -> None:
    result = run(*case.objects, settings=case.settings)
    assert routes(result.model) == case.routes
    assert tuple(b.name for b in result.model.backends) == case.backends
    assert all(b.mode is Mode.HTTP for b in result.model.backends)
    assert result.model.tcp_frontends == ()
    assert result.problems == ()


@pytest.mark.parametrize(
    ("number", "prefixes"),
    [
        (80, ("/default/web", "/web")),
        (8080, ("/default/web:8080", "/web:8080")),
    ],
    ids=["port-80", "port-8080"],
)
def test_strip_prefixes_longest_first(number: int, prefixes: tuple[str, ...]) -> None:
    result = run(service("web", number))
    (only,) = result.model.backends
    assert only.strip_prefixes == prefixes


def test_routes_are_sorted_and_deterministic() -> None:
    objects = (
        service("b", 80, 8080),
        service("a", 80, namespace="z"),
        service("c", annotations={P + "lb.host": "c.example.com"}),
    )
    first = run(*objects)
    again = run(*reversed(objects))
    assert first == again
    keys = [(r.host or "", r.path) for r in first.model.http_routes]
    assert keys == sorted(keys)
    assert [b.name for b in first.model.backends] == sorted(b.name for b in first.model.backends)


# --- Namespaces and the short form -----------------------------------------------------


@dataclass(frozen=True)
class CollisionCase:
    services: tuple[tuple[str, str], ...]  # (namespace, name), all port 80
    short_owner: str | None  # namespace holding /web, or None
    losers: tuple[str, ...]  # namespaces reported
    held_by: str  # fragment of the reason


COLLISION_CASES = {
    "default-wins": CollisionCase(
        (("default", "web"), ("team", "web")), "default", ("team",), "held by default/web"
    ),
    "default-wins-over-two": CollisionCase(
        (("a", "web"), ("default", "web"), ("z", "web")),
        "default",
        ("a", "z"),
        "held by default/web",
    ),
    "no-default-nobody-wins": CollisionCase(
        (("a", "web"), ("b", "web")), None, ("a", "b"), "held by nobody"
    ),
    "single-non-default": CollisionCase((("team", "web"),), "team", (), ""),
}


@pytest.mark.parametrize("case", COLLISION_CASES.values(), ids=COLLISION_CASES.keys())
def test_short_name_collisions(case: CollisionCase) -> None:
    result = run(*(service(name, namespace=ns) for ns, name in case.services))
    got = routes(result.model)
    for ns, name in case.services:  # every Service keeps its long form
        assert (None, f"/{ns}/{name}", f"http_{ns}_{name}_80", True) in got
    short = {r for r in got if r[1] == "/web"}
    if case.short_owner is None:
        assert short == set()
    else:
        assert short == {(None, "/web", f"http_{case.short_owner}_web_80", True)}
    reported = sorted(p.subject.namespace for p in result.problems)
    assert reported == sorted(case.losers)
    for ns in case.losers:
        assert_problem(result, svc_key("web", ns), case.held_by, f"served at /{ns}/web only")


def test_short_form_owner_strips_both_prefixes_loser_only_long() -> None:
    result = run(service("web"), service("web", namespace="team"))
    assert backend(result.model, "http_default_web_80").strip_prefixes == (
        "/default/web",
        "/web",
    )
    assert backend(result.model, "http_team_web_80").strip_prefixes == ("/team/web",)


def test_acl_match_service_does_not_take_part_in_short_name_collision() -> None:
    result = run(
        service("web", namespace="a", annotations={P + "lb.aclMatch": "/a-web"}),
        service("web", namespace="b"),
    )
    assert routes(result.model) == {
        (None, "/a-web", "http_a_web_80", False),
        (None, "/web", "http_b_web_80", True),
        (None, "/b/web", "http_b_web_80", True),
    }
    assert result.problems == ()


def test_short_form_clashing_with_namespace_path_goes_to_first() -> None:
    # Service "team" in default wants /team; Service "web" in team wants /team/web.
    # Different keys, both served: the map's longest prefix keeps them apart.
    result = run(service("team"), service("web", namespace="team"))
    assert {r[1] for r in routes(result.model)} == {"/team", "/default/team", "/web", "/team/web"}
    assert result.problems == ()


# --- Annotations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "default", "expected"),
    [
        (None, Algorithm.ROUNDROBIN, Algorithm.ROUNDROBIN),
        (None, Algorithm.LEASTCONN, Algorithm.LEASTCONN),
        ("roundrobin", Algorithm.FIRST, Algorithm.ROUNDROBIN),
        ("leastconn", Algorithm.ROUNDROBIN, Algorithm.LEASTCONN),
        ("first", Algorithm.ROUNDROBIN, Algorithm.FIRST),
        ("source", Algorithm.ROUNDROBIN, Algorithm.SOURCE),
    ],
    ids=[
        "default-roundrobin",
        "default-from-settings",
        "roundrobin",
        "leastconn",
        "first",
        "source",
    ],
)
def test_algorithm(annotation: str | None, default: Algorithm, expected: Algorithm) -> None:
    annotations = {P + "lb.algorithm": annotation} if annotation else None
    result = run(
        service("web", 80, 8080, annotations=annotations),
        settings=Settings(balance_algorithm=default),
    )
    assert [b.algorithm for b in result.model.backends] == [expected, expected]
    assert result.problems == ()


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (
            {P + "lb.host": "web.example.com"},
            {
                ("web.example.com", "/", "http_default_web_80", False),
                (None, "/web", "http_default_web_80", True),
                (None, "/default/web", "http_default_web_80", True),
            },
        ),
        (
            {P + "lb.host": "Web.Example.COM"},
            {
                ("web.example.com", "/", "http_default_web_80", False),
                (None, "/web", "http_default_web_80", True),
                (None, "/default/web", "http_default_web_80", True),
            },
        ),
        (
            {P + "lb.aclMatch": "/api/v1/"},
            {(None, "/api/v1", "http_default_web_80", False)},
        ),
        (
            {P + "lb.aclMatch": "/"},
            {(None, "/", "http_default_web_80", False)},
        ),
        (
            {P + "lb.host": "web.example.com", P + "lb.aclMatch": "/api"},
            {
                ("web.example.com", "/api", "http_default_web_80", False),
                (None, "/api", "http_default_web_80", False),
            },
        ),
    ],
    ids=["host", "host-lowercased", "acl-match-normalised", "acl-match-root", "host-and-acl"],
)
def test_host_and_acl_match(annotations: dict[str, str], expected: set[Route]) -> None:
    result = run(service("web", annotations=annotations))
    assert routes(result.model) == expected
    (only,) = result.model.backends
    strip = {r[1] for r in expected if r[3]}
    assert set(only.strip_prefixes) == strip
    assert result.problems == ()


def test_host_on_two_ports_goes_to_first_port() -> None:
    result = run(service("web", 80, 8080, annotations={P + "lb.host": "w.example.com"}))
    host_routes = {r for r in routes(result.model) if r[0] is not None}
    assert host_routes == {("w.example.com", "/", "http_default_web_80", False)}
    assert_problem(
        result, svc_key("web"), "route w.example.com/ (port 8080)", "taken by default/web port 80"
    )


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("lb.aclMatch", "/shared"),
        ("lb.host", "shared.example.com"),
    ],
    ids=["same-acl-match", "same-host"],
)
def test_route_clash_first_by_namespace_name_wins(annotation: str, value: str) -> None:
    result = run(
        service("b", annotations={P + annotation: value}),
        service("a", annotations={P + annotation: value}, namespace="z"),
        service("a", annotations={P + annotation: value}),
    )
    owner = "http_default_a_80"
    clashing = {r for r in routes(result.model) if r[1] == value or r[0] == value}
    assert {r[2] for r in clashing} == {owner}
    for loser in (svc_key("b"), svc_key("a", "z")):
        assert_problem(result, loser, "is already taken by default/a port 80", "skipped")
    # the losers keep their backends (and, with lb.host, their path routes)
    assert {b.name for b in result.model.backends} == {owner, "http_default_b_80", "http_z_a_80"}


@dataclass(frozen=True)
class StickyCase:
    affinity: str | None
    cookie: str | None
    timeout: object
    tcp: bool
    stickiness: Stickiness
    expire: int
    problem: str | None = None


STICKY_CASES = {
    "none": StickyCase(None, None, None, False, Stickiness.NONE, 10800),
    "affinity-none-explicit": StickyCase("None", None, None, False, Stickiness.NONE, 10800),
    "client-ip-source": StickyCase("ClientIP", None, None, False, Stickiness.SOURCE_IP, 10800),
    "client-ip-timeout": StickyCase("ClientIP", None, 600, False, Stickiness.SOURCE_IP, 600),
    "client-ip-max-timeout": StickyCase(
        "ClientIP", None, 86400, False, Stickiness.SOURCE_IP, 86400
    ),
    "client-ip-cookie": StickyCase("ClientIP", "true", None, False, Stickiness.COOKIE, 10800),
    "client-ip-cookie-false": StickyCase(
        "ClientIP", "false", None, False, Stickiness.SOURCE_IP, 10800
    ),
    "cookie-without-client-ip": StickyCase(
        None, "true", None, False, Stickiness.NONE, 10800, "needs spec.sessionAffinity: ClientIP"
    ),
    "tcp-client-ip": StickyCase("ClientIP", None, 60, True, Stickiness.SOURCE_IP, 60),
    "tcp-client-ip-cookie-is-source": StickyCase(
        "ClientIP", "true", None, True, Stickiness.SOURCE_IP, 10800
    ),
    "timeout-zero-ignored": StickyCase(
        "ClientIP", None, 0, False, Stickiness.SOURCE_IP, 10800, "timeout 0 ignored"
    ),
    "timeout-too-long-ignored": StickyCase(
        "ClientIP", None, 86401, False, Stickiness.SOURCE_IP, 10800, "timeout 86401 ignored"
    ),
    "timeout-string-ignored": StickyCase(
        "ClientIP", None, "1h", False, Stickiness.SOURCE_IP, 10800, "timeout '1h' ignored"
    ),
}


@pytest.mark.parametrize("case", STICKY_CASES.values(), ids=STICKY_CASES.keys())
def test_stickiness(case: StickyCase) -> None:
    annotations = {P + "lb.cookie-sticky-session": case.cookie} if case.cookie else None
    settings = Settings(tcp_services=parse_tcp_services("db:5432")) if case.tcp else Settings()
    result = run(
        service(
            "db",
            5432,
            annotations=annotations,
            session_affinity=case.affinity,
            affinity_timeout=case.timeout,
        ),
        settings=settings,
    )
    (only,) = result.model.backends
    assert only.mode is (Mode.TCP if case.tcp else Mode.HTTP)
    assert only.stickiness is case.stickiness
    assert only.stickiness_timeout == case.expire
    if case.problem is None:
        assert result.problems == ()
    else:
        assert_problem(result, svc_key("db"), case.problem)


def test_unknown_annotation_is_reported_and_service_served() -> None:
    result = run(service("web", annotations={P + "lb.agorithm": "first", "other/x": "y"}))
    assert {b.name for b in result.model.backends} == {"http_default_web_80"}
    assert result.problems == (
        Problem(svc_key("web"), "unknown annotation 'serviceloadbalancer/lb.agorithm' is ignored"),
    )


INVALID_ANNOTATIONS = {
    "algorithm-unknown": ("lb.algorithm", "random"),
    "algorithm-upper": ("lb.algorithm", "ROUNDROBIN"),
    "algorithm-injection": ("lb.algorithm", "roundrobin\n    server evil 1.2.3.4:80"),
    "host-underscore": ("lb.host", "my_host.example.com"),
    "host-with-port": ("lb.host", "example.com:80"),
    "host-wildcard-inside": ("lb.host", "a.*.example.com"),
    "host-space": ("lb.host", "a b"),
    "acl-relative": ("lb.aclMatch", "api"),
    "acl-dot-segment": ("lb.aclMatch", "/api/../admin"),
    "acl-double-slash": ("lb.aclMatch", "//api"),
    "acl-fetch": ("lb.aclMatch", "/%[src]"),
    "acl-brace": ("lb.aclMatch", "/{x}"),
    "cookie-yes": ("lb.cookie-sticky-session", "yes"),
    "cookie-empty": ("lb.cookie-sticky-session", ""),
    "timeout-server-no-unit": ("lb.timeout-server", "30"),
    "timeout-server-too-long": ("lb.timeout-server", "25h"),
    "timeout-connect-injection": ("lb.timeout-connect", "5s\n    timeout server 1ms"),
}


@pytest.mark.parametrize(
    ("name", "value"), INVALID_ANNOTATIONS.values(), ids=INVALID_ANNOTATIONS.keys()
)
def test_invalid_annotation_skips_only_that_service(name: str, value: str) -> None:
    result = run(
        service("bad", 80, 8080, annotations={P + name: value}, session_affinity="ClientIP"),
        service("good"),
        endpoint_slice("bad", "10.0.0.1"),
        endpoint_slice("good", "10.0.0.2"),
        settings=Settings(tcp_services=parse_tcp_services("bad:8080")),
    )
    assert [b.name for b in result.model.backends] == ["http_default_good_80"]
    assert backend(result.model, "http_default_good_80").servers == (server("10.0.0.2", 8080),)
    assert {r[2] for r in routes(result.model)} == {"http_default_good_80"}
    assert result.model.tcp_frontends == ()
    reasons = problems_of(result, svc_key("bad"))
    assert len(reasons) == 1
    assert reasons[0].startswith(f"not served: annotation {P}{name}: ")
    assert "\n" not in reasons[0]
    # the TCP entry that named the skipped Service is reported as unmatched
    assert_problem(result, TCP_FLAG, "no Service port matches bad:8080")
    assert {p.subject for p in result.problems} == {svc_key("bad"), TCP_FLAG}


def test_timeouts_reach_every_backend_of_the_service_in_milliseconds() -> None:
    annotations = {P + "lb.timeout-server": "2s", P + "lb.timeout-connect": "1500ms"}
    result = run(
        service("web", 80, 3306, annotations=annotations),
        service("plain"),
        settings=Settings(tcp_services=parse_tcp_services("web:3306")),
    )
    assert result.problems == ()
    timeouts = {b.name: (b.timeout_server_ms, b.timeout_connect_ms) for b in result.model.backends}
    assert timeouts == {
        "http_default_web_80": (2000, 1500),
        "tcp_default_web_3306": (2000, 1500),
        "http_default_plain_80": (None, None),
    }
    # The same time in another unit is the same model: no reload for a rewording.
    again = run(
        service("web", 80, 3306, annotations={P + "lb.timeout-server": "2000ms",
                                              P + "lb.timeout-connect": "1500ms"}),
        service("plain"),
        settings=Settings(tcp_services=parse_tcp_services("web:3306")),
    )  # fmt: skip
    assert again.model == result.model


# --- TCP services -----------------------------------------------------------------------


def test_tcp_service_gets_frontend_on_its_port_other_ports_stay_http() -> None:
    result = run(
        service("mysql", port(3306, name="mysql"), port(80, name="admin")),
        endpoint_slice(
            "mysql",
            "10.0.0.5",
            ports=[ep_port(3306, name="mysql"), ep_port(8080, name="admin")],
        ),
        settings=Settings(tcp_services=parse_tcp_services("mysql:3306")),
    )
    model = result.model
    assert model.tcp_frontends == (TcpFrontend(3306, "tcp_default_mysql_3306"),)
    tcp = backend(model, "tcp_default_mysql_3306")
    assert tcp.mode is Mode.TCP
    assert tcp.servers == (server("10.0.0.5", 3306),)
    assert tcp.strip_prefixes == ()
    assert routes(model) == {
        (None, "/mysql", "http_default_mysql_80", True),
        (None, "/default/mysql", "http_default_mysql_80", True),
    }
    assert backend(model, "http_default_mysql_80").servers == (server("10.0.0.5", 8080),)
    assert result.problems == ()


def test_tcp_service_with_namespace_only_matches_there() -> None:
    result = run(
        service("pg", 5432, namespace="db"),
        service("pg", 5432, namespace="other"),
        settings=Settings(tcp_services=parse_tcp_services("mysql:3306,db/pg:5432")),
    )
    assert result.model.tcp_frontends == (TcpFrontend(5432, "tcp_db_pg_5432"),)
    assert backend(result.model, "http_other_pg_5432").mode is Mode.HTTP
    # other/pg is the only HTTP Service named pg: it keeps the short form
    assert (None, "/pg:5432", "http_other_pg_5432", True) in routes(result.model)
    assert result.problems == (Problem(TCP_FLAG, "no Service port matches mysql:3306"),)


@pytest.mark.parametrize(
    ("namespaces", "winner", "short"),
    [
        (("team", "default"), "default", "team"),
        (("b", "a", "c"), "a", None),
    ],
    ids=["default-wins", "first-namespace-wins"],
)
def test_tcp_service_name_in_several_namespaces(
    namespaces: tuple[str, ...], winner: str, short: str | None
) -> None:
    result = run(
        *(service("mysql", 3306, namespace=ns) for ns in namespaces),
        settings=Settings(tcp_services=parse_tcp_services("mysql:3306")),
    )
    assert result.model.tcp_frontends == (TcpFrontend(3306, f"tcp_{winner}_mysql_3306"),)
    losers = sorted(set(namespaces) - {winner})
    for ns in losers:
        assert backend(result.model, f"http_{ns}_mysql_3306").mode is Mode.HTTP
        assert (None, f"/{ns}/mysql:3306", f"http_{ns}_mysql_3306", True) in routes(result.model)
        assert_problem(
            result,
            svc_key("mysql", ns),
            f"also matches {winner}/mysql, which gets it",
            "served as HTTP",
        )
    # the short form goes to the only HTTP Service of the name; when the losers are
    # several (none in default), nobody gets it and each is told so
    short_routes = {r[2] for r in routes(result.model) if r[1] == "/mysql:3306"}
    assert short_routes == ({f"http_{short}_mysql_3306"} if short else set())
    if short is None:
        for ns in losers:
            assert_problem(result, svc_key("mysql", ns), "short path /mysql is held by nobody")
    assert {p.subject for p in result.problems} == {svc_key("mysql", ns) for ns in losers}
    assert len(result.problems) == len(losers) * (1 if short else 2)


@pytest.mark.parametrize(
    ("settings", "reserved"),
    [
        (Settings(http_port=80), "--http-port"),
        (Settings(stats_port=80, http_port=8000), "--stats-port"),
        (Settings(healthz_port=80, http_port=8000), "--healthz-port"),
    ],
    ids=["http-port", "stats-port", "healthz-port"],
)
def test_tcp_service_on_reserved_port(settings: Settings, reserved: str) -> None:
    settings = dataclasses.replace(settings, tcp_services=parse_tcp_services("web:80"))
    result = run(service("web", 80), settings=settings)
    assert result.model.tcp_frontends == ()
    assert backend(result.model, "tcp_default_web_80").mode is Mode.TCP
    assert routes(result.model) == set()
    assert result.problems == (
        Problem(svc_key("web"), f"TCP port 80 is the {reserved}; not served"),
    )


def test_two_tcp_services_on_one_port_first_by_namespace_name_wins() -> None:
    result = run(
        service("b", 3306),
        service("a", 3306, namespace="z"),
        service("a", 3306),
        settings=Settings(tcp_services=parse_tcp_services("b:3306,z/a:3306,default/a:3306")),
    )
    assert result.model.tcp_frontends == (TcpFrontend(3306, "tcp_default_a_3306"),)
    assert_problem(result, svc_key("b"), "TCP port 3306 is already served for default/a")
    assert_problem(result, svc_key("a", "z"), "TCP port 3306 is already served for default/a")
    assert len(result.problems) == 2


def test_tcp_service_with_no_matching_port_is_reported() -> None:
    result = run(
        service("mysql", 3306),
        settings=Settings(tcp_services=parse_tcp_services("mysql:3307")),
    )
    assert result.model.tcp_frontends == ()
    assert backend(result.model, "http_default_mysql_3306").mode is Mode.HTTP
    assert result.problems == (Problem(TCP_FLAG, "no Service port matches mysql:3307"),)


# --- The API server Service -------------------------------------------------------------


def kubernetes() -> RawObject:
    return service("kubernetes", port(443, name="https", target=6443), cluster_ip="10.96.0.1")


def kubernetes_slice() -> RawObject:
    return endpoint_slice("kubernetes", "192.0.2.10", ports=[ep_port(6443, name="https")])


@pytest.mark.parametrize(
    ("tcp", "frontends"),
    [
        ("", ()),
        ("kubernetes:443", (TcpFrontend(443, "tcp_default_kubernetes_443"),)),
        ("default/kubernetes:443", (TcpFrontend(443, "tcp_default_kubernetes_443"),)),
    ],
    ids=["hidden", "named", "named-with-namespace"],
)
def test_default_kubernetes_only_with_tcp_services(
    tcp: str, frontends: tuple[TcpFrontend, ...]
) -> None:
    result = run(
        kubernetes(),
        kubernetes_slice(),
        settings=Settings(tcp_services=parse_tcp_services(tcp)),
    )
    assert result.model.tcp_frontends == frontends
    assert routes(result.model) == set()
    assert [b.name for b in result.model.backends] == [f.backend for f in frontends]
    if frontends:
        assert result.model.backends[0].servers == (server("192.0.2.10", 6443),)
    assert result.problems == ()


def test_kubernetes_in_other_namespace_is_an_ordinary_service() -> None:
    result = run(service("kubernetes", 80, namespace="team"))
    assert routes(result.model) == {
        (None, "/kubernetes", "http_team_kubernetes_80", True),
        (None, "/team/kubernetes", "http_team_kubernetes_80", True),
    }


def test_default_kubernetes_never_http_even_when_named_with_other_port() -> None:
    result = run(
        kubernetes(),
        kubernetes_slice(),
        settings=Settings(tcp_services=parse_tcp_services("kubernetes:6443")),
    )
    assert routes(result.model) == set()
    assert result.model.backends == ()


# --- Endpoints ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyCase:
    endpoints: tuple[RawObject, ...]
    servers: tuple[str, ...]


READY_CASES = {
    "ready-true": ReadyCase((endpoint("10.0.0.1", ready=True),), ("10.0.0.1",)),
    "ready-false-skipped": ReadyCase((endpoint("10.0.0.1", ready=False),), ()),
    "ready-nil-is-ready": ReadyCase((endpoint("10.0.0.1", ready=None),), ("10.0.0.1",)),
    "no-conditions-is-ready": ReadyCase((endpoint("10.0.0.1", conditions=False),), ("10.0.0.1",)),
    "mixed": ReadyCase(
        (
            endpoint("10.0.0.3"),
            endpoint("10.0.0.1", ready=False),
            endpoint("10.0.0.2", ready=None),
        ),
        ("10.0.0.2", "10.0.0.3"),
    ),
    "first-address-only": ReadyCase((endpoint("10.0.0.1", "10.0.0.9"),), ("10.0.0.1",)),
    "no-addresses": ReadyCase((endpoint(),), ()),
    "all-not-ready": ReadyCase(
        (endpoint("10.0.0.1", ready=False), endpoint("10.0.0.2", ready=False)), ()
    ),
}


@pytest.mark.parametrize("case", READY_CASES.values(), ids=READY_CASES.keys())
def test_slice_ready_endpoints(case: ReadyCase) -> None:
    result = run(service("web"), endpoint_slice("web", *case.endpoints))
    (only,) = result.model.backends
    assert only.servers == tuple(server(a, 8080) for a in case.servers)
    # a Service without ready endpoints keeps its routes and an empty backend
    assert routes(result.model) == {
        (None, "/web", "http_default_web_80", True),
        (None, "/default/web", "http_default_web_80", True),
    }
    assert result.problems == ()


def test_core_endpoints_ready_addresses_only() -> None:
    result = run(
        service("web"),
        endpoints(
            "web",
            subset("10.0.1.2", "10.0.1.1", not_ready=["10.0.1.3"]),
            subset(not_ready=["10.0.1.4"]),
        ),
    )
    (only,) = result.model.backends
    assert only.servers == (server("10.0.1.1", 8080), server("10.0.1.2", 8080))


def test_no_endpoints_at_all_keeps_route_and_empty_backend() -> None:
    result = run(service("web"))
    (only,) = result.model.backends
    assert only.servers == ()
    assert (None, "/web", "http_default_web_80", True) in routes(result.model)
    assert result.problems == ()


def test_slices_win_over_core_endpoints() -> None:
    result = run(
        service("web"),
        endpoint_slice("web", "10.0.0.1"),
        endpoints("web", subset("10.0.9.9")),
    )
    assert result.model.backends[0].servers == (server("10.0.0.1", 8080),)


def test_slices_of_several_slices_merge_and_dedupe() -> None:
    result = run(
        service("web"),
        endpoint_slice("web", "10.0.0.2", "10.0.0.1", name="web-1"),
        endpoint_slice("web", "10.0.0.1", "10.0.0.3", name="web-2"),
    )
    assert result.model.backends[0].servers == tuple(
        server(a, 8080) for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    )


def test_slices_of_other_services_and_namespaces_are_not_used() -> None:
    result = run(
        service("web"),
        endpoint_slice("web", "10.0.0.1", namespace="team"),
        endpoint_slice("api", "10.0.0.2"),
    )
    assert result.model.backends[0].servers == ()


def test_slice_without_service_label_is_ignored() -> None:
    orphan = endpoint_slice("web", "10.0.0.1")
    orphan["metadata"]["labels"] = {}
    result = run(service("web"), orphan)
    assert result.model.backends[0].servers == ()


@pytest.mark.parametrize(
    ("address_type", "addresses", "servers"),
    [
        ("IPv4", ("10.0.0.1",), (server("10.0.0.1", 8080),)),
        ("IPv6", ("fd00::1",), (Server("s_fd00__1_8080", "fd00::1", 8080),)),
        ("IPv6", ("FD00:0:0::0001",), (Server("s_fd00__1_8080", "fd00::1", 8080),)),
        ("FQDN", ("web.example.com",), ()),
    ],
    ids=["ipv4", "ipv6", "ipv6-normalised", "fqdn-skipped"],
)
def test_slice_address_types(
    address_type: str, addresses: tuple[str, ...], servers: tuple[Server, ...]
) -> None:
    result = run(service("web"), endpoint_slice("web", *addresses, address_type=address_type))
    assert result.model.backends[0].servers == servers
    assert result.problems == ()


def test_dual_stack_slices_both_used() -> None:
    result = run(
        service("web"),
        endpoint_slice("web", "10.0.0.1", name="web-v4"),
        endpoint_slice("web", "fd00::1", name="web-v6", address_type="IPv6"),
    )
    assert {s.address for s in result.model.backends[0].servers} == {"10.0.0.1", "fd00::1"}


@dataclass(frozen=True)
class PortMatchCase:
    service_port: RawObject
    ep_ports: tuple[RawObject, ...]
    server_port: int | None  # None: no server


PORT_MATCH_CASES = {
    "unnamed-both": PortMatchCase(port(80, target=8080), (ep_port(8080),), 8080),
    "by-name": PortMatchCase(
        port(80, name="http", target="web"),
        (ep_port(9090, name="metrics"), ep_port(8080, name="http")),
        8080,
    ),
    "name-mismatch": PortMatchCase(
        port(80, name="http", target=8080), (ep_port(8080, name="grpc"),), None
    ),
    "unnamed-service-numeric-target": PortMatchCase(
        port(80, target=8080), (ep_port(9090, name="other"), ep_port(8080, name="web")), 8080
    ),
    "unnamed-service-numeric-target-mismatch": PortMatchCase(
        port(80, target=8080), (ep_port(9999, name="web"),), None
    ),
    "named-target-string-unnamed-endpoint": PortMatchCase(
        port(80, name="http", target="web"), (ep_port(8080),), None
    ),
}


@pytest.mark.parametrize("case", PORT_MATCH_CASES.values(), ids=PORT_MATCH_CASES.keys())
@pytest.mark.parametrize("kind", ["EndpointSlice", "Endpoints"])
def test_endpoint_port_matching(case: PortMatchCase, kind: str) -> None:
    if kind == "EndpointSlice":
        eps = endpoint_slice("web", "10.0.0.1", ports=case.ep_ports)
    else:
        eps = endpoints("web", subset("10.0.0.1", ports=case.ep_ports))
    result = run(service("web", case.service_port), eps)
    expected = () if case.server_port is None else (server("10.0.0.1", case.server_port),)
    assert result.model.backends[0].servers == expected


def test_multi_port_service_servers_per_port() -> None:
    result = run(
        service("web", port(80, name="http", target=8080), port(9090, name="metrics")),
        endpoint_slice(
            "web", "10.0.0.1", ports=[ep_port(9090, name="metrics"), ep_port(8080, name="http")]
        ),
    )
    assert backend(result.model, "http_default_web_80").servers == (server("10.0.0.1", 8080),)
    assert backend(result.model, "http_default_web_9090").servers == (server("10.0.0.1", 9090),)


def test_named_service_port_matches_unnamed_endpoint_port_by_number() -> None:
    result = run(
        service("web", port(80, name="http", target=8080)),
        endpoints("web", subset("10.0.0.1", ports=[ep_port(8080)])),
    )
    assert result.model.backends[0].servers == (server("10.0.0.1", 8080),)


@pytest.mark.parametrize(
    ("address", "ep_port_number", "fragment"),
    [
        ("not-an-ip", 8080, "address 'not-an-ip' is not an IP address; skipped"),
        ("10.0.0.256", 8080, "address '10.0.0.256' is not an IP address; skipped"),
        ("10.0.0.1/24", 8080, "is not an IP address"),
        ("10.0.0.1", None, "port None of 10.0.0.1 is not a port number; skipped"),
        ("10.0.0.1", 0, "port 0 of 10.0.0.1 is not a port number"),
        ("10.0.0.1", 70000, "port 70000 of 10.0.0.1 is not a port number"),
        ("10.0.0.1", "8080", "port '8080' of 10.0.0.1 is not a port number"),
        ("10.0.0.1", True, "port True of 10.0.0.1 is not a port number"),
    ],
    ids=[
        "name",
        "octet-too-big",
        "cidr",
        "port-nil",
        "port-zero",
        "port-too-big",
        "port-string",
        "port-bool",
    ],
)
def test_bad_endpoint_is_skipped_and_reported(
    address: str, ep_port_number: object, fragment: str
) -> None:
    bad = endpoint_slice("web", address, name="web-bad", ports=[ep_port(ep_port_number)])
    good = endpoint_slice("web", "10.0.0.7", name="web-good")
    result = run(service("web"), bad, good)
    assert result.model.backends[0].servers == (server("10.0.0.7", 8080),)
    assert_problem(result, ObjectKey("EndpointSlice", "default", "web"), fragment)


@pytest.mark.parametrize(
    "address",
    ["fe80::1%eth0", "fe80::1%x\n    http-request return status 200"],
    ids=["zone", "zone-injection"],
)
def test_ipv6_zone_address_is_rejected(address: str) -> None:
    result = run(
        service("web"),
        endpoint_slice("web", address, "fd00::2", address_type="IPv6"),
    )
    assert result.model.backends[0].servers == (Server("s_fd00__2_8080", "fd00::2", 8080),)
    assert_problem(result, ObjectKey("EndpointSlice", "default", "web"), "has an IPv6 zone")


# --- forward_services and headless Services ----------------------------------------------


@pytest.mark.parametrize(
    ("cluster_ip", "servers"),
    [
        ("10.96.0.10", ((("10.96.0.10", 80), ("10.96.0.10", 9090)))),
        ("None", ((("10.0.0.1", 8080), ("10.0.0.1", 9090)))),
        (None, ((("10.0.0.1", 8080), ("10.0.0.1", 9090)))),
        ("", ((("10.0.0.1", 8080), ("10.0.0.1", 9090)))),
    ],
    ids=["cluster-ip", "headless", "no-cluster-ip", "empty-cluster-ip"],
)
def test_forward_services(
    cluster_ip: str | None, servers: tuple[tuple[str, int], tuple[str, int]]
) -> None:
    result = run(
        service(
            "web",
            port(80, name="http", target=8080),
            port(9090, name="metrics"),
            cluster_ip=cluster_ip,
        ),
        endpoint_slice(
            "web", "10.0.0.1", ports=[ep_port(8080, name="http"), ep_port(9090, name="metrics")]
        ),
        settings=Settings(forward_services=True),
    )
    assert [b.servers for b in result.model.backends] == [
        (server(*servers[0]),),
        (server(*servers[1]),),
    ]
    assert result.problems == ()


def test_headless_service_uses_endpoints_without_forwarding() -> None:
    result = run(
        service("web", cluster_ip="None"),
        endpoint_slice("web", "10.0.0.1", "10.0.0.2"),
    )
    assert result.model.backends[0].servers == (
        server("10.0.0.1", 8080),
        server("10.0.0.2", 8080),
    )


# --- Bad Services -------------------------------------------------------------------------


def _no_spec() -> RawObject:
    raw = service("bad")
    del raw["spec"]
    return raw


def _annotations_list() -> RawObject:
    raw = service("bad")
    raw["metadata"]["annotations"] = ["a"]
    return raw


def _ports(*ports: Any) -> RawObject:
    return _raw_ports(list(ports))


def _raw_ports(value: object) -> RawObject:
    raw = service("bad")
    raw["spec"]["ports"] = value
    return raw


BAD_SERVICES: dict[str, tuple[RawObject, ObjectKey, str]] = {
    "upper-case-name": (service("Bad"), svc_key("Bad"), "must be DNS labels"),
    "underscore-namespace": (
        service("bad", namespace="my_ns"),
        svc_key("bad", "my_ns"),
        "must be DNS labels",
    ),
    "name-too-long": (service("a" * 64), svc_key("a" * 64), "must be DNS labels"),
    "name-with-space": (service("a b"), svc_key("a b"), "must be DNS labels"),
    "no-spec": (_no_spec(), svc_key("bad"), "has no spec"),
    "external-name": (
        service("bad", type_="ExternalName"),
        svc_key("bad"),
        "type ExternalName is not served",
    ),
    "annotations-not-mapping": (
        _annotations_list(),
        svc_key("bad"),
        "metadata.annotations is not a mapping",
    ),
    "no-ports": (_ports(), svc_key("bad"), "has no ports"),
    "ports-not-list": (_raw_ports({"port": 80}), svc_key("bad"), "has no ports"),
}


@pytest.mark.parametrize(
    ("obj", "subject", "fragment"), BAD_SERVICES.values(), ids=BAD_SERVICES.keys()
)
def test_bad_service_is_skipped_others_served(
    obj: RawObject, subject: ObjectKey, fragment: str
) -> None:
    result = run(obj, service("good"))
    assert [b.name for b in result.model.backends] == ["http_default_good_80"]
    assert result.problems == (Problem(subject, problems_of(result, subject)[0]),)
    assert_problem(result, subject, fragment)


@pytest.mark.parametrize(
    ("bad_port", "fragment"),
    [
        (port(0), "port 0 is not a port number"),
        (port(65536), "port 65536 is not a port number"),
        (port("80"), "port '80' is not a port number"),
        (port(True), "port True is not a port number"),
        (port(None), "port None is not a port number"),
        ("80", "spec.ports has an entry that is not a mapping"),
    ],
    ids=["zero", "too-big", "string", "bool", "missing", "not-a-mapping"],
)
def test_bad_port_is_skipped_other_ports_served(bad_port: object, fragment: str) -> None:
    result = run(_ports(bad_port, port(8080, name="ok")))
    assert [b.name for b in result.model.backends] == ["http_default_bad_8080"]
    assert result.problems == (Problem(svc_key("bad"), problems_of(result, svc_key("bad"))[0]),)
    assert_problem(result, svc_key("bad"), fragment)


def test_namespace_defaults_to_default() -> None:
    raw = service("web")
    del raw["metadata"]["namespace"]
    result = run(raw)
    assert [b.name for b in result.model.backends] == ["http_default_web_80"]


@pytest.mark.parametrize(
    ("name", "namespace"), [("web\n", "default"), ("web", "team\n")], ids=["name", "namespace"]
)
def test_trailing_newline_in_name_is_rejected(name: str, namespace: str) -> None:
    result = run(service(name, namespace=namespace), service("good"))
    assert [b.name for b in result.model.backends] == ["http_default_good_80"]
    assert_problem(result, svc_key(name, namespace), "must be DNS labels")


def test_source_problems_pass_through_sorted_and_deduplicated() -> None:
    file_problem = Problem(ObjectKey("File", "", "dir/x.yaml"), "not YAML")
    snap = snapshot(service("Bad"), problems={"files": [file_problem, file_problem]})
    result = translate(snap, Settings())
    assert result.problems == tuple(
        sorted([file_problem, Problem(svc_key("Bad"), result.problems[1].reason)])
    )
    assert result.problems[0] == file_problem


def test_problems_are_deduplicated_across_ports() -> None:
    result = run(
        service("web", port(80, name="a"), port(81, name="b")),
        endpoint_slice("web", "bogus", ports=[ep_port(8080, name="a"), ep_port(8081, name="b")]),
    )
    assert result.problems == (
        Problem(
            ObjectKey("EndpointSlice", "default", "web"),
            "address 'bogus' is not an IP address; skipped",
        ),
    )


def test_empty_snapshot() -> None:
    assert run() == Translation(model=LoadBalancer(), problems=())


def test_model_equal_for_equal_input_and_hashable() -> None:
    objects = (
        service("web", 80, 8080, session_affinity="ClientIP"),
        endpoint_slice("web", "10.0.0.2", "10.0.0.1"),
        service("db", 5432),
    )
    settings = Settings(tcp_services=parse_tcp_services("db:5432"))
    first = run(*objects, settings=settings)
    second = run(*objects, settings=settings)
    assert first == second
    assert hash(first.model.http_routes) == hash(second.model.http_routes)
    assert isinstance(first.model.http_routes[0], HttpRoute)


def test_full_scenario() -> None:
    """One snapshot that uses everything at once, checked against the whole model."""
    result = run(
        service("web", port(80, name="http", target=8080)),
        endpoint_slice(
            "web", "10.0.0.1", endpoint("10.0.0.2", ready=False), ports=[ep_port(8080, name="http")]
        ),
        service("web", 80, namespace="team", annotations={P + "lb.algorithm": "leastconn"}),
        service(
            "api",
            8080,
            namespace="team",
            annotations={P + "lb.host": "api.example.com", P + "lb.aclMatch": "/v1"},
        ),
        service("mysql", port(3306, name="mysql")),
        endpoints("mysql", subset("10.0.0.5", ports=[ep_port(3306, name="mysql")])),
        kubernetes(),
        settings=Settings(tcp_services=parse_tcp_services("mysql:3306")),
    )
    assert result.model == LoadBalancer(
        backends=(
            Backend(
                name="http_default_web_80",
                mode=Mode.HTTP,
                service=svc_key("web"),
                port=80,
                algorithm=Algorithm.ROUNDROBIN,
                servers=(server("10.0.0.1", 8080),),
                strip_prefixes=("/default/web", "/web"),
            ),
            Backend(
                name="http_team_api_8080",
                mode=Mode.HTTP,
                service=svc_key("api", "team"),
                port=8080,
                algorithm=Algorithm.ROUNDROBIN,
                servers=(),
            ),
            Backend(
                name="http_team_web_80",
                mode=Mode.HTTP,
                service=svc_key("web", "team"),
                port=80,
                algorithm=Algorithm.LEASTCONN,
                servers=(),
                strip_prefixes=("/team/web",),
            ),
            Backend(
                name="tcp_default_mysql_3306",
                mode=Mode.TCP,
                service=svc_key("mysql"),
                port=3306,
                algorithm=Algorithm.ROUNDROBIN,
                servers=(server("10.0.0.5", 3306),),
            ),
        ),
        http_routes=(
            HttpRoute("/default/web", "http_default_web_80", strip=True),
            HttpRoute("/team/web", "http_team_web_80", strip=True),
            HttpRoute("/v1", "http_team_api_8080"),
            HttpRoute("/web", "http_default_web_80", strip=True),
            HttpRoute("/v1", "http_team_api_8080", host="api.example.com"),
        ),
        tcp_frontends=(TcpFrontend(3306, "tcp_default_mysql_3306"),),
    )
    assert result.problems == (
        Problem(
            svc_key("web", "team"),
            "short path /web is held by default/web; this Service is served at /team/web only",
        ),
    )


# --- protocols to the pods ------------------------------------------------------------------


def test_app_protocol_then_annotation_choose_http2_to_the_pods() -> None:
    h2c = {P + "lb.backend-protocol": "h2c"}
    result = run(
        service("k", port(80, name="a", protocol="TCP") | {"appProtocol": "kubernetes.io/h2c"},
                port(81, name="b") | {"appProtocol": "grpc"},
                port(82, name="c") | {"appProtocol": "h2c"},
                port(83, name="d") | {"appProtocol": "kubernetes.io/ws"},
                port(84, name="e") | {"appProtocol": "kubernetes.io/wss"},
                port(85, name="f") | {"appProtocol": "http"},
                port(86, name="g"),
                annotations=h2c),
        service("plain", port(80, name="a"), port(81, name="b") | {"appProtocol": "grpc"}),
        service("h1", 80, annotations={P + "lb.backend-protocol": "h1"}),
        service("tcp", 3306, annotations=h2c),
        settings=Settings(tcp_services=parse_tcp_services("tcp:3306")),
    )  # fmt: skip
    # kubernetes.io/wss is WebSocket over TLS: TLS to the pods, unverified here.
    assert result.problems == (
        Problem(svc_key("k"), "TLS to the pods of port 84 is not verified (no --backend-ca)"),
    )
    protocols = {b.name: b.protocol for b in result.model.backends}
    H1, H2 = Protocol.H1, Protocol.H2C
    assert protocols == {
        "http_default_k_80": H2, "http_default_k_81": H2, "http_default_k_82": H2,
        "http_default_k_83": H1, "http_default_k_84": Protocol.HTTPS, "http_default_k_85": H1,
        "http_default_k_86": H2,  # no appProtocol: the annotation
        "http_default_plain_80": H1, "http_default_plain_81": H2,
        "http_default_h1_80": H1,
        "tcp_default_tcp_3306": H1,  # TCP passes bytes: no HTTP protocol
    }  # fmt: skip


def test_tls_to_the_pods_by_app_protocol_or_annotation() -> None:
    ca = Settings(backend_ca=Path("/etc/slb/pods-ca.pem"))
    objects = (
        service("k", port(80, name="a") | {"appProtocol": "kubernetes.io/https"},
                port(81, name="b") | {"appProtocol": "HTTPS"},
                port(82, name="c") | {"appProtocol": "h2"},
                port(83, name="d"),
                annotations={P + "lb.backend-protocol": "h2", P + "lb.host": "k.example"}),
        service("wild", annotations={P + "lb.backend-protocol": "https",
                                     P + "lb.host": "*.w.example"}),
        service("plain", annotations={P + "lb.backend-protocol": "https"}),
        service("pass", 443, annotations={P + "lb.backend-protocol": "https",
                                          P + "lb.sslPassthrough": "true",
                                          P + "lb.host": "p.example"}),
    )  # fmt: skip
    result = run(*objects, settings=ca)
    # (Only one port can have the Host route: the others say so.)
    assert all("already taken" in p.reason for p in result.problems)
    tls = {b.name: (b.protocol, b.tls_server_name) for b in result.model.backends}
    assert tls == {
        "http_default_k_80": (Protocol.HTTPS, "k.example"),
        "http_default_k_81": (Protocol.HTTPS, "k.example"),
        "http_default_k_82": (Protocol.H2, "k.example"),
        "http_default_k_83": (Protocol.H2, "k.example"),  # the annotation
        "http_default_wild_80": (Protocol.HTTPS, None),  # a wildcard: the client's Host
        "http_default_plain_80": (Protocol.HTTPS, None),
        "tcp_default_pass_443": (Protocol.H1, None),  # passed through: TLS is the pods'
    }
    # Without --backend-ca the same is served, and each Service is reported once.
    unverified = run(*objects)
    assert {b.name for b in unverified.model.backends} == set(tls)
    assert set(unverified.problems) - set(result.problems) == {
        Problem(svc_key(name), f"TLS to the pods of port {ports} is not verified (no --backend-ca)")
        for name, ports in (("k", "80, 81, 82, 83"), ("wild", "80"), ("plain", "80"))
    }  # fmt: skip


def test_tls_to_an_external_service_asks_for_its_name() -> None:
    svc = service(
        "db", port(443), annotations={P + "lb.backend-protocol": "https"}, type_="ExternalName"
    )
    svc["spec"]["externalName"] = "API.Example.com."
    result = run(svc, settings=Settings(allow_external_names=True, backend_ca=Path("/ca.pem")))
    assert result.problems == ()
    (only,) = result.model.backends
    assert (only.protocol, only.tls_server_name) == (Protocol.HTTPS, "api.example.com")


def test_bad_backend_protocol_skips_the_service() -> None:
    result = run(service("x", annotations={P + "lb.backend-protocol": "h3"}))
    assert result.model.backends == ()
    assert_problem(result, svc_key("x"), "is not one of h1, h2c, h2, https")
