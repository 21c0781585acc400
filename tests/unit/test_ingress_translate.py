"""Ingress translation as tables: which Ingresses are ours (classes), how rules become
routes (path types, hosts, backends by number or name), who wins a conflict, what is
skipped and reported, and the spec.tls hosts. How the routes are looked up is
test_ingress_lookup.py's."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trustme
from factories import snapshot
from objects import (
    cert_secret,
    ingress,
    ingress_backend,
    ingress_class,
    ingress_path,
    ingress_rule,
    ingress_tls,
    port,
    service,
)

from service_loadbalancer.flag_values import parse_tcp_services
from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import IngressRoute, PathMatch, Translation
from service_loadbalancer.settings import Settings
from service_loadbalancer.translate import translate

WEB = "http_default_web_80"
API = "http_default_api_80"


def run(*objects: RawObject, **settings: Any) -> Translation:
    return translate(snapshot(*objects), dataclasses.replace(Settings(), **settings))


def routes(t: Translation) -> set[tuple[str, str, str, str]]:
    return {(r.host, r.path, r.match.value, r.backend) for r in t.model.ingress_routes}


def reasons(t: Translation, name: str = "") -> list[str]:
    return [
        p.reason
        for p in t.problems
        if p.subject.kind == "Ingress" and (not name or p.subject.name == name)
    ]


def simple(name: str = "ing", **kwargs: Any) -> RawObject:
    return ingress(name, ingress_rule("a.example", ingress_path("/", "web")), **kwargs)


SERVICES = (service("web"), service("api"))

# --- classes ----------------------------------------------------------------------------

OURS = ingress_class()
OURS_DEFAULT = ingress_class(default=True)
OTHER_CONTROLLER = ingress_class(controller="example.com/other")
NGINX = ingress_class("nginx", controller="k8s.io/ingress-nginx")
LEGACY = "kubernetes.io/ingress.class"
WITHOUT_CLASS = {"watch_ingress_without_class": True}


@pytest.mark.parametrize(
    ("ing", "classes", "settings", "served"),
    [
        # ingressClassName: ours by name, when the class is ours or absent
        (simple(), [OURS], {}, True),
        (simple(), [], {}, True),
        (simple(), [OTHER_CONTROLLER], {}, False),
        (simple(class_name="nginx"), [OURS, NGINX], {}, False),
        (simple(class_name="some-invalid-class-name"), [OURS], {}, False),
        # another class with our controller belongs to another instance of us
        (simple(class_name="lb-2"), [ingress_class("lb-2")], {}, False),
        (simple(class_name="lb-2"), [ingress_class("lb-2")], {"ingress_class": "lb-2"}, True),
        # no class: only when our class is the default, or with the flag
        (simple(class_name=None), [OURS], {}, False),
        (simple(class_name=None), [OURS_DEFAULT], {}, True),
        (simple(class_name=None), [ingress_class(controller="x.io/y", default=True)], {}, False),
        (simple(class_name=None), [], WITHOUT_CLASS, True),
        # a class name is never "no class", even with the flag
        (simple(class_name="nginx"), [], WITHOUT_CLASS, False),
        # the legacy annotation
        (simple(class_name=None, annotations={LEGACY: "service-loadbalancer"}), [], {}, True),
        (simple(class_name=None, annotations={LEGACY: "nginx"}), [OURS_DEFAULT], {}, False),
        (simple(class_name=None, annotations={LEGACY: "nginx"}), [], WITHOUT_CLASS, False),
    ],
)  # fmt: skip
def test_class_selection(
    ing: RawObject, classes: list[RawObject], settings: dict[str, Any], served: bool
) -> None:
    t = run(*SERVICES, ing, *classes, **settings)
    assert (ObjectKey("Ingress", "default", "ing") in t.ingresses) is served
    assert bool(t.model.ingress_routes) is served
    # not ours: not a word about it
    assert not reasons(t)


def test_a_class_of_another_controller_under_our_name_is_reported_on_the_flag() -> None:
    t = run(*SERVICES, simple(), OTHER_CONTROLLER)
    assert [p.subject for p in t.problems] == [ObjectKey("Flag", "", "--ingress-class")]
    assert "example.com/other" in t.problems[0].reason


def test_namespaces_limit_the_ingresses_too() -> None:
    t = run(service("web", namespace="shop"), simple(namespace="shop"), namespaces=("web",))
    assert not t.ingresses and not t.model.ingress_routes


# --- paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "path_type", "expected"),
    [
        ("/foo", "Exact", ("/foo", "exact")),
        ("/foo/", "Exact", ("/foo/", "exact")),
        ("/FOO", "Exact", ("/FOO", "exact")),
        ("/foo", "Prefix", ("/foo", "prefix")),
        ("/aaa/bbb/", "Prefix", ("/aaa/bbb", "prefix")),
        ("/", "Prefix", ("/", "prefix")),
        ("/", "Exact", ("/", "exact")),
        ("/foo", "ImplementationSpecific", ("/foo", "prefix")),
        ("/foo/", "ImplementationSpecific", ("/foo", "prefix")),
        (None, "ImplementationSpecific", ("/", "prefix")),
        ("/caf%C3%A9;v=1", "Prefix", ("/caf%C3%A9;v=1", "prefix")),
    ],
)
def test_path_normalisation(path: str | None, path_type: str, expected: tuple[str, str]) -> None:
    t = run(
        *SERVICES,
        ingress("ing", ingress_rule("h.example", ingress_path(path, "web", path_type=path_type))),
    )
    assert routes(t) == {("h.example", *expected, WEB)}
    assert not t.problems


@pytest.mark.parametrize(
    ("path", "path_type", "fragment"),
    [
        ("foo", "Prefix", "must be an absolute path"),
        ("", "Exact", "must be an absolute path"),
        ("/a//b", "Prefix", "must not contain '//'"),
        ("/a/../b", "Exact", "must not contain '/../'"),
        ("/a%2Fb", "Prefix", "must not contain '%2F'"),
        ("/a/.", "Prefix", "cannot end with '/.'"),
        ("/a", "Regex", "Unsupported value"),
        ("/a", None, "pathType: Required value"),
        ("/a b", "Prefix", "no request path can have"),
        ("/a\nb", "Exact", "no request path can have"),
        ("/a#b", "ImplementationSpecific", "no request path can have"),
        ("/" + "a" * 2000, "Prefix", "longer than"),
    ],
)
def test_bad_paths_are_skipped_and_reported(
    path: str, path_type: str | None, fragment: str
) -> None:
    bad = ingress_path(path, "web")
    bad["pathType"] = path_type
    t = run(*SERVICES, ingress("ing", ingress_rule("h.example", bad, ingress_path("/ok", "api"))))
    assert routes(t) == {("h.example", "/ok", "prefix", API)}
    (reason,) = reasons(t)
    assert reason.startswith("spec.rules[0].http.paths[0]") and fragment in reason


# --- hosts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("foo.bar.com", True),
        ("*.foo.com", True),
        (None, True),
        ("localhost", True),
        ("Foo.com", False),
        ("foo.*.com", False),
        ("*", False),
        ("10.0.0.1", False),
        ("foo.com/x", False),
        ("foo.com bar", False),
    ],
)
def test_hosts(host: str | None, ok: bool) -> None:
    t = run(*SERVICES, ingress("ing", ingress_rule(host, ingress_path("/", "web"))))
    assert routes(t) == ({(host or "", "/", "prefix", WEB)} if ok else set())
    assert bool(reasons(t)) is not ok


# --- backends ---------------------------------------------------------------------------


def test_backends_by_port_number_and_name() -> None:
    svc = service("multi", port(80, name="http"), port(8443, name="admin"))
    t = run(
        svc,
        ingress(
            "ing",
            ingress_rule(
                "h.example",
                ingress_path("/a", "multi", 8443),
                ingress_path("/b", "multi", "http"),
                ingress_path("/c", "multi", "nope"),
                ingress_path("/d", "multi", 81),
                ingress_path("/e", "missing", 80),
            ),
        ),
    )
    assert routes(t) == {
        ("h.example", "/a", "prefix", "http_default_multi_8443"),
        ("h.example", "/b", "prefix", "http_default_multi_80"),
    }
    assert reasons(t) == [
        "spec.rules[0].http.paths[2].backend: Service default/multi has no port 'nope'; skipped",
        "spec.rules[0].http.paths[3].backend: Service default/multi has no port 81; skipped",
        "spec.rules[0].http.paths[4].backend: Service default/missing not found or not "
        "served; skipped",
    ]


def test_resource_backends_and_tcp_ports_are_reported() -> None:
    resource = {
        "pathType": "Prefix",
        "path": "/r",
        "backend": {"resource": {"kind": "Bucket", "name": "b"}},
    }
    t = run(
        service("db", 5432),
        *SERVICES,
        ingress("ing", ingress_rule(None, resource, ingress_path("/db", "db", 5432))),
        tcp_services=parse_tcp_services("db:5432"),
    )
    assert not t.model.ingress_routes
    assert any("Resource backends are not supported" in r for r in reasons(t))
    assert any("is served as TCP" in r for r in reasons(t))


def test_services_in_other_namespaces_are_not_reachable() -> None:
    t = run(service("web", namespace="other"), simple())
    assert not t.model.ingress_routes
    assert reasons(t) == [
        "spec.rules[0].http.paths[0].backend: Service default/web not found or not served; skipped"
    ]


# --- precedence and conflicts ------------------------------------------------------------


def test_exact_and_prefix_of_the_same_path_are_both_kept() -> None:
    t = run(
        *SERVICES,
        ingress(
            "ing",
            ingress_rule(
                "mixed",
                ingress_path("/foo", "web"),
                ingress_path("/foo", "api", path_type="Exact"),
            ),
        ),
    )
    assert routes(t) == {("mixed", "/foo", "prefix", WEB), ("mixed", "/foo", "exact", API)}


def test_the_oldest_ingress_wins_a_conflict() -> None:
    new = ingress(
        "a-new", ingress_rule("h", ingress_path("/x/", "web")), created="2026-02-01T00:00:00Z"
    )
    old = ingress(
        "z-old",
        ingress_rule("h", ingress_path("/x", "api", path_type="ImplementationSpecific")),
        created="2026-01-01T00:00:00Z",
    )
    t = run(*SERVICES, new, old)
    assert routes(t) == {("h", "/x", "prefix", API)}
    assert reasons(t) == [
        "rule h/x (Prefix) is already served by Ingress default/z-old, which comes first "
        "(oldest, then by name); skipped"
    ]
    assert t.ingresses == {ObjectKey("Ingress", "default", n) for n in ("a-new", "z-old")}


def test_same_age_goes_by_namespace_and_name_and_duplicates_within_one_ingress() -> None:
    a = ingress("a", ingress_rule(None, ingress_path("/x", "web"), ingress_path("/x", "api")))
    b = ingress("b", ingress_rule(None, ingress_path("/x", "api")))
    t = run(*SERVICES, a, b)
    assert routes(t) == {("", "/x", "prefix", WEB)}
    assert reasons(t, "a") == [
        "rule (any host)/x (Prefix) is already served by an earlier rule of this Ingress; skipped"
    ]
    assert len(reasons(t, "b")) == 1


def test_the_same_host_across_ingresses_merges_paths() -> None:
    a = ingress("a", ingress_rule("same", ingress_path("/test/foo", "web")))
    b = ingress("b", ingress_rule("same", ingress_path("/test/bar", "api")))
    assert routes(run(*SERVICES, a, b)) == {
        ("same", "/test/foo", "prefix", WEB),
        ("same", "/test/bar", "prefix", API),
    }


def test_default_backend_oldest_wins() -> None:
    a = ingress("a", default_backend=ingress_backend("web"), created="2026-03-01T00:00:00Z")
    b = ingress("b", default_backend=ingress_backend("api"), created="2026-01-01T00:00:00Z")
    t = run(*SERVICES, a, b)
    assert t.model.ingress_default == API
    assert reasons(t, "a") == [
        "spec.defaultBackend: Ingress default/b comes first (oldest, then by name) and has "
        "the default backend; ignored"
    ]


def test_service_routes_can_be_turned_off() -> None:
    on = run(*SERVICES, simple())
    off = run(*SERVICES, simple(), service_routes=False)
    assert on.model.http_routes and not off.model.http_routes
    assert off.model.ingress_routes == on.model.ingress_routes
    assert {b.name for b in off.model.backends} == {WEB, API}


def test_an_ingress_without_spec_is_ours_but_reported() -> None:
    bad = simple()
    bad["spec"] = "nope"
    t = run(*SERVICES, bad, watch_ingress_without_class=True)
    assert t.ingresses == {ObjectKey("Ingress", "default", "ing")}
    assert reasons(t) == ["has no spec; not served"]


# --- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_ingress(secret: str | None = "tls", **kwargs: Any) -> RawObject:
    return ingress(
        "ing",
        ingress_rule("foo.bar.com", ingress_path("/", "web")),
        ingress_rule("*.foo.com", ingress_path("/", "api")),
        tls=[ingress_tls("foo.bar.com", secret=secret)],
        **kwargs,
    )


def test_tls_hosts_get_https_and_the_redirect(ca: trustme.CA) -> None:
    secret = cert_secret("tls", ca.issue_cert("foo.bar.com"))
    t = run(*SERVICES, tls_ingress(), secret, tls_secrets=True)
    assert not t.problems
    by_host = {r.host: r for r in t.model.ingress_routes}
    assert by_host["foo.bar.com"] == IngressRoute(
        "foo.bar.com", "/", PathMatch.PREFIX, WEB, https=True, redirect=True
    )
    assert not by_host["*.foo.com"].https
    assert [c.name.startswith("default_tls_") for c in t.model.certificates] == [True]
    assert t.model.https and t.model.terminates
    quiet = run(*SERVICES, tls_ingress(), secret, tls_secrets=True, ingress_ssl_redirect=False)
    assert not any(r.redirect for r in quiet.model.ingress_routes)


OPAQUE = cert_secret("tls", trustme.CA().issue_cert("x")) | {"type": "Opaque"}


@pytest.mark.parametrize(
    ("objects", "settings", "fragment"),
    [
        ((), {"tls_secrets": True}, "Secret default/tls not found"),
        ((), {}, "--tls-secrets is off"),
        ((OPAQUE,), {"tls_secrets": True}, "is not of type kubernetes.io/tls"),
    ],
)  # fmt: skip
def test_a_bad_secret_takes_away_that_hosts_https_only(
    objects: tuple[RawObject, ...], settings: dict[str, Any], fragment: str
) -> None:
    t = run(*SERVICES, tls_ingress(), *objects, **settings)
    assert not any(r.https for r in t.model.ingress_routes)
    assert len(t.model.ingress_routes) == 2  # the plain HTTP routes stay
    (reason,) = reasons(t)
    assert reason.startswith("spec.tls[0]") and fragment in reason and "foo.bar.com" in reason


def test_tls_without_secret_uses_the_default_certificate(tmp_path: Any) -> None:
    t = run(*SERVICES, tls_ingress(secret=None))
    assert "no secretName and no --ssl-cert" in reasons(t)[0]
    with_default = run(*SERVICES, tls_ingress(secret=None), ssl_cert=tmp_path / "default.pem")
    assert not with_default.problems
    assert any(r.https for r in with_default.model.ingress_routes)
    assert not with_default.model.certificates


def test_tls_host_owned_by_the_oldest_ingress(ca: trustme.CA) -> None:
    old = tls_ingress(created="2026-01-01T00:00:00Z")
    new = ingress(
        "new",
        ingress_rule("foo.bar.com", ingress_path("/new", "api")),
        tls=[ingress_tls("foo.bar.com", secret="tls")],
        created="2026-05-01T00:00:00Z",
    )
    secret = cert_secret("tls", ca.issue_cert("foo.bar.com"))
    t = run(*SERVICES, old, new, secret, tls_secrets=True)
    assert "already given by Ingress default/ing" in reasons(t, "new")[0]
    # the host has HTTPS, for every route of it
    assert all(r.https for r in t.model.ingress_routes if r.host == "foo.bar.com")


@pytest.mark.parametrize(
    ("names", "hosts", "served"),
    [
        (("foo.bar.com",), ("foo.bar.com",), {"foo.bar.com"}),
        (("other.com",), ("foo.bar.com",), set()),
        (("*.bar.com",), ("foo.bar.com",), {"foo.bar.com"}),
        (("*.bar.com",), ("a.foo.bar.com",), set()),
        (("*.foo.com",), ("*.foo.com", "foo.bar.com"), {"*.foo.com"}),
        (("bar.foo.com",), ("*.foo.com",), set()),
    ],
)
def test_a_certificate_serves_only_the_hosts_it_is_valid_for(
    ca: trustme.CA, names: tuple[str, ...], hosts: tuple[str, ...], served: set[str]
) -> None:
    ing = ingress(
        "ing",
        *(ingress_rule(h, ingress_path("/", "web")) for h in hosts),
        tls=[ingress_tls(*hosts, secret="tls")],
    )
    t = run(*SERVICES, ing, cert_secret("tls", ca.issue_cert(*names)), tls_secrets=True)
    assert {r.host for r in t.model.ingress_routes if r.https} == served
    assert len(reasons(t)) == len(hosts) - len(served)
    assert all("its certificate is not valid for" in r for r in reasons(t))
    assert bool(t.model.certificates) is bool(served)


def test_acme_challenges_are_never_redirected(ca: trustme.CA) -> None:
    challenge = "/.well-known/acme-challenge/tok3n"
    solver = ingress(
        "cm-acme-http-solver",
        ingress_rule("foo.bar.com", ingress_path(challenge, "api", path_type="Exact")),
    )
    secret = cert_secret("tls", ca.issue_cert("foo.bar.com"))
    t = run(*SERVICES, tls_ingress(), solver, secret, tls_secrets=True)
    redirects = {r.path: r.redirect for r in t.model.ingress_routes if r.host == "foo.bar.com"}
    assert redirects == {"/": True, challenge: False}
