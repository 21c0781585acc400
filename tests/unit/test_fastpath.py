"""The endpoint fast path must give exactly what a full translate + render gives, or
decline (None) so the full sync runs."""

from __future__ import annotations

import pytest
from factories import snapshot
from objects import endpoint_slice, endpoints, service, subset

from service_loadbalancer.fastpath import (
    endpoint_changes,
    patch_model,
    replace_sections,
    sub_snapshot,
)
from service_loadbalancer.haproxy.render import render
from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import LoadBalancer, Problem
from service_loadbalancer.settings import ServiceRef, Settings, TcpService
from service_loadbalancer.store import Snapshot
from service_loadbalancer.translate import translate

COOKIE = {"serviceloadbalancer/lb.cookie-sticky-session": "true"}
OTHERS: list[RawObject] = [
    service("api", 8080),
    endpoint_slice("api", "10.1.0.1"),
    service("db", 5432, namespace="data"),
    endpoint_slice("db", "10.2.0.1", namespace="data"),
]
TCP = Settings(tcp_services=(TcpService(ServiceRef("db"), 5432),))


def fast(before: list[RawObject], after: list[RawObject], settings: Settings) -> str | None:
    """The config text the fast path makes, or None when it declines."""
    old_snap, new_snap = snapshot(*before), snapshot(*after)
    old = translate_model(old_snap, settings)
    services = endpoint_changes(old_snap, new_snap)
    if services is None:
        return None
    partial = translate(sub_snapshot(new_snap, services), settings)
    old_problems = translate(old_snap, settings).problems
    patch = patch_model(old, partial.model, partial.problems, services, old_problems)
    if patch is None:
        return None
    tiny = render(LoadBalancer(backends=patch.backends), settings)
    patched = replace_sections(
        render(old, settings).config, {b.name: tiny.config for b in patch.backends}
    )
    return None if patched is None else patched[0]


def translate_model(snap: Snapshot, settings: Settings) -> LoadBalancer:
    return translate(snap, settings).model


def full(after: list[RawObject], settings: Settings) -> str:
    return render(translate_model(snapshot(*after), settings), settings).config


@pytest.mark.parametrize(
    ("before", "after", "settings"),
    [
        pytest.param(
            [service("web", 80), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80), endpoint_slice("web", "10.0.0.1", "10.0.0.2")],
            Settings(),
            id="scale-up",
        ),
        pytest.param(
            [service("web", 80), endpoint_slice("web", "10.0.0.1", "10.0.0.2")],
            [service("web", 80), endpoint_slice("web")],
            Settings(),
            id="to-empty",
        ),
        pytest.param(
            [service("web", 80), endpoint_slice("web")],
            [service("web", 80), endpoint_slice("web", "10.0.0.3")],
            Settings(),
            id="from-empty",
        ),
        pytest.param(
            [service("web", 80), endpoints("web", subset("10.0.0.1"))],
            [service("web", 80), endpoints("web", subset("10.0.0.9"))],
            Settings(),
            id="core-endpoints",
        ),
        pytest.param(
            [service("web", 80, annotations=COOKIE, session_affinity="ClientIP"),
             endpoint_slice("web", "10.0.0.1")],
            [service("web", 80, annotations=COOKIE, session_affinity="ClientIP"),
             endpoint_slice("web", "10.0.0.1", "10.0.0.2")],
            Settings(),
            id="cookie",
        ),
        pytest.param(
            [service("web", 80, session_affinity="ClientIP"), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80, session_affinity="ClientIP"),
             endpoint_slice("web", "fd00::1", address_type="IPv6")],
            Settings(),
            id="v4-to-v6-stick-table",
        ),
        pytest.param(
            [service("web", 80), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80), endpoint_slice("web", "10.0.0.1"),
             endpoint_slice("web", "10.0.0.7", name="web-second")],
            Settings(),
            id="slice-added",
        ),
        pytest.param(
            [service("db", 5432, namespace="data"),
             endpoint_slice("db", "10.2.0.1", namespace="data")],
            [service("db", 5432, namespace="data"),
             endpoint_slice("db", "10.2.0.2", namespace="data")],
            TCP,
            id="tcp-service",
        ),
    ],
)  # fmt: skip
def test_fast_path_equals_full_render(
    before: list[RawObject], after: list[RawObject], settings: Settings
) -> None:
    result = fast(before + OTHERS, after + OTHERS, settings)
    assert result is not None
    assert result == full(after + OTHERS, settings)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            [service("web", 80), endpoint_slice("web", "10.0.0.1")],
            [service("web", 81), endpoint_slice("web", "10.0.0.1")],
            id="service-changed",
        ),
        pytest.param(
            [service("web", 80), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80), endpoint_slice("web", "not-an-ip")],
            id="new-problem",
        ),
        pytest.param(
            [service("web", 80), endpoint_slice("web", "not-an-ip")],
            [service("web", 80), endpoint_slice("web", "10.0.0.1")],
            id="problem-resolved",
        ),
        pytest.param(
            [endpoint_slice("web", "10.0.0.1")],
            [endpoint_slice("web", "10.0.0.2")],
            id="no-service-no-backend",
        ),
        pytest.param(
            [service("web", 80), endpoint_slice("web", "10.0.0.1"),
             service("web", 80, namespace="shop"),
             endpoint_slice("web", "10.3.0.1", namespace="shop")],
            [service("web", 80), endpoint_slice("web", "10.0.0.1"),
             service("web", 80, namespace="shop"),
             endpoint_slice("web", "10.3.0.2", namespace="shop")],
            id="name-clash-is-reported-so-full-sync",
        ),
    ],
)  # fmt: skip
def test_fast_path_declines(before: list[RawObject], after: list[RawObject]) -> None:
    result = fast(before + OTHERS, after + OTHERS, Settings())
    # Either declined, or (no backend at all) nothing to patch: never a wrong config.
    assert result is None or result == full(after + OTHERS, Settings())


def test_endpoint_changes() -> None:
    a = endpoint_slice("web", "10.0.0.1")
    moved = endpoint_slice("api", "10.0.0.1", name="web-abcde")
    base = [service("web", 80), service("api", 80), a]
    assert endpoint_changes(snapshot(*base), snapshot(*base)) == set()
    assert endpoint_changes(snapshot(*base), snapshot(*base[:2], moved)) == {
        ("default", "web"),
        ("default", "api"),
    }
    assert endpoint_changes(snapshot(*base), snapshot(*base[:2])) == {("default", "web")}
    problem = Problem(ObjectKey("File", "", "x.yaml"), "bad")
    assert endpoint_changes(snapshot(*base), snapshot(*base, problems={"files": [problem]})) is None


def test_replace_sections_needs_both_sides() -> None:
    text = "global\n    x\n\nbackend a\n    server s 1.1.1.1:80\n\nbackend b\n    balance first\n"
    other = "backend b\n    balance first\n    server t 1.1.1.2:80\n"
    assert replace_sections(text, {"b": other}) == (
        "global\n    x\n\nbackend a\n    server s 1.1.1.1:80\n\n"
        "backend b\n    balance first\n    server t 1.1.1.2:80\n",
        {
            "b": (
                "backend b\n    balance first",
                "backend b\n    balance first\n    server t 1.1.1.2:80",
            )
        },
    )
    assert replace_sections(text, {"c": other}) is None
    assert replace_sections(text, {"a": other}) is None
