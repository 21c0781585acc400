"""Ingress routes as HAProxy maps: the conformance tables (path rules, host rules,
wildcards, trailing slashes, Exact over Prefix, longest prefix), run against the map
files as rendered, with the look-up order of the template. The same requests go
through the real HAProxy in tests/integration/test_ingress.py; here the tables are
fast and exhaustive, and every config goes through `haproxy -c`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from factories import render_checked, snapshot
from objects import ingress, ingress_backend, ingress_path, ingress_rule, service

from service_loadbalancer.fastpath import running_from
from service_loadbalancer.haproxy.ingress_maps import EXACT_MAP, PREFIX_MAP, lookups
from service_loadbalancer.haproxy.render import Rendered, render
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import IngressRoute, LoadBalancer, PathMatch
from service_loadbalancer.settings import Settings
from service_loadbalancer.translate import translate


def parse_map(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines())


def route_for(rendered: Rendered, host: str | None, path: str) -> str | None:
    """What the template's look-ups give: the exact host, the wildcard (first label
    replaced by *), then any host; Exact (map_str) before Prefix (map_beg: longest)."""
    exact = parse_map(rendered.files.get(EXACT_MAP, ""))
    prefix = parse_map(rendered.files.get(PREFIX_MAP, ""))
    candidates = []
    if host is not None and "/" not in host:
        name = host.split(":")[0].lower()
        candidates += [name, re.sub(r"^[^.]*", "*", name, count=1)]
    candidates.append("")
    for start in candidates:
        if start + path in exact:
            return exact[start + path].split("|")[0]
        key = start + path + "/"
        matches = [k for k in prefix if key.startswith(k)]
        if matches:
            return prefix[max(matches, key=len)].split("|")[0]
    return None


SERVICES = [
    service(name)
    for name in (
        "foo-exact",
        "foo-prefix",
        "aaa-slash-bbb-prefix",
        "aaa-prefix",
        "aaa-slash-bbb-slash-prefix",
        "foo-slash-exact",
        "wildcard-foo-com",
        "foo-bar-com",
        "any",
    )
]


def b(name: str) -> str:
    return f"http_default_{name}_80"


PATH_RULES = ingress(
    "path-rules",
    ingress_rule("exact-path-rules", ingress_path("/foo", "foo-exact", path_type="Exact")),
    ingress_rule(
        "prefix-path-rules",
        ingress_path("/foo", "foo-prefix"),
        ingress_path("/aaa/bbb", "aaa-slash-bbb-prefix"),
        ingress_path("/aaa", "aaa-prefix"),
    ),
    ingress_rule(
        "mixed-path-rules",
        ingress_path("/foo", "foo-prefix"),
        ingress_path("/foo", "foo-exact", path_type="Exact"),
    ),
    ingress_rule(
        "trailing-slash-path-rules",
        ingress_path("/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
        ingress_path("/foo/", "foo-slash-exact", path_type="Exact"),
    ),
)
HOST_RULES = ingress(
    "host-rules",
    ingress_rule("*.foo.com", ingress_path("/", "wildcard-foo-com")),
    ingress_rule("foo.bar.com", ingress_path("/", "foo-bar-com")),
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    t = translate(snapshot(*SERVICES, PATH_RULES, HOST_RULES), Settings())
    assert not t.problems
    return render_checked(t.model, Settings(), tmp_path_factory.mktemp("run"))


@pytest.mark.parametrize(
    ("host", "path", "served_by"),
    [
        # features/path_rules.feature
        ("exact-path-rules", "/foo", "foo-exact"),
        ("exact-path-rules", "/foo/", None),
        ("exact-path-rules", "/FOO", None),
        ("exact-path-rules", "/bar", None),
        ("prefix-path-rules", "/foo", "foo-prefix"),
        ("prefix-path-rules", "/foo/", "foo-prefix"),
        ("prefix-path-rules", "/FOO", None),
        ("prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix"),
        ("prefix-path-rules", "/aaa/bbb/ccc", "aaa-slash-bbb-prefix"),
        ("prefix-path-rules", "/aaa/ccc", "aaa-prefix"),
        ("prefix-path-rules", "/aaaccc", None),
        ("prefix-path-rules", "/aaa/bbbccc", "aaa-prefix"),
        ("mixed-path-rules", "/foo", "foo-exact"),
        ("mixed-path-rules", "/foo/", "foo-prefix"),
        ("mixed-path-rules", "/foo/x", "foo-prefix"),
        ("trailing-slash-path-rules", "/aaa/bbb", "aaa-slash-bbb-slash-prefix"),
        ("trailing-slash-path-rules", "/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
        ("trailing-slash-path-rules", "/foo", None),
        ("trailing-slash-path-rules", "/foo/", "foo-slash-exact"),
        # features/host_rules.feature
        ("foo.bar.com", "/", "foo-bar-com"),
        ("FOO.bar.com:80", "/x", "foo-bar-com"),
        ("subdomain.bar.com", "/", None),
        ("bar.foo.com", "/", "wildcard-foo-com"),
        ("baz.bar.foo.com", "/", None),
        ("foo.com", "/", None),
        # a Host that tries to pass for a path gets no host look-up
        ("prefix-path-rules/aaa", "/bbb", None),
        (None, "/foo", None),
    ],
)
def test_conformance_tables(
    rendered: Rendered, host: str | None, path: str, served_by: str | None
) -> None:
    assert route_for(rendered, host, path) == (b(served_by) if served_by else None)


def test_precedence_exact_host_then_wildcard_then_any_host(tmp_path: Path) -> None:
    ing = ingress(
        "ing",
        ingress_rule("a.foo.com", ingress_path("/x", "foo-exact")),
        ingress_rule("*.foo.com", ingress_path("/", "wildcard-foo-com")),
        ingress_rule(
            None, ingress_path("/", "any"), ingress_path("/y", "foo-prefix", path_type="Exact")
        ),
        default_backend=ingress_backend("foo-bar-com"),
    )
    t = translate(snapshot(*SERVICES, ing), Settings())
    rendered = render_checked(t.model, Settings(), tmp_path)
    assert route_for(rendered, "a.foo.com", "/x/1") == b("foo-exact")
    # a host whose paths do not match falls through to the wildcard, then any host
    assert route_for(rendered, "a.foo.com", "/z") == b("wildcard-foo-com")
    assert route_for(rendered, "b.example", "/z") == b("any")
    assert route_for(rendered, "b.example", "/y") == b("foo-prefix")
    assert t.model.ingress_default == b("foo-bar-com")
    assert "str(http_default_foo-bar-com_80|0)" in rendered.config


WILD = IngressRoute("*.h", "/", PathMatch.PREFIX, "b")


@pytest.mark.parametrize(
    ("routes", "count"),
    [
        ((IngressRoute("", "/", PathMatch.PREFIX, "b"),), 1),
        ((IngressRoute("h", "/", PathMatch.EXACT, "b"),), 1),
        ((IngressRoute("h", "/", PathMatch.EXACT, "b"), WILD), 2),
        (tuple(IngressRoute(f"h{i}", f"/p{i}", m, "b") for i in range(1000) for m in PathMatch), 2),
        (tuple(IngressRoute(h, "/", m, "b") for h in ("", "a", "*.a") for m in PathMatch), 6),
    ],
)  # fmt: skip
def test_the_number_of_lookups_does_not_grow_with_the_rules(
    routes: tuple[IngressRoute, ...], count: int
) -> None:
    assert len(lookups(routes, EXACT_MAP, PREFIX_MAP)) == count


def test_ingress_routes_come_before_service_routes_and_haproxy_accepts_them(
    tmp_path: Path,
) -> None:
    ing = ingress("ing", ingress_rule(None, ingress_path("/web", "any")))
    t = translate(snapshot(service("web"), service("any"), ing), Settings())
    rendered = render_checked(t.model, Settings(), tmp_path)
    frontend = rendered.config.split("frontend http\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in frontend.splitlines() if "set-var(txn.route)" in line]
    assert "ingress-prefix.map" in lines[0]
    assert "paths.map" in lines[-1]
    assert route_for(rendered, "x", "/web/a") == b("any")


def test_no_ingress_no_ingress_files(tmp_path: Path) -> None:
    rendered = render_checked(LoadBalancer(), Settings(), tmp_path)
    assert EXACT_MAP not in rendered.files and "txn.host" not in rendered.config


def test_the_running_state_knows_the_ingresses_served(tmp_path: Path) -> None:
    """What the status writer reads: the Ingresses that are ours, as of the last full
    sync; one that is no longer ours is the difference of two such sets."""
    ours = ingress("ours", ingress_rule(None, ingress_path("/a", "any")))
    other = ingress("other", ingress_rule(None, ingress_path("/b", "any")), class_name="nginx")
    t = translate(snapshot(service("any"), ours, other), Settings())
    running = running_from(t, render(t.model, Settings()), version=1)
    assert running.ingresses == t.ingresses == {ObjectKey("Ingress", "default", "ours")}
