"""The endpoint fast path must give exactly what a full translate + render gives, or
decline (None) so the full sync runs."""

from __future__ import annotations

from collections import defaultdict

import pytest
from objects import endpoint_slice, endpoints, service, subset

from service_loadbalancer.fastpath import patch_sections, running_from, swap_servers
from service_loadbalancer.haproxy.render import render
from service_loadbalancer.haproxy.sections import split_sections
from service_loadbalancer.kube.objects import KNOWN_KINDS, ObjectKey, RawObject
from service_loadbalancer.model import Problem
from service_loadbalancer.settings import ServiceRef, Settings, TcpService
from service_loadbalancer.store import Store
from service_loadbalancer.translate import translate

COOKIE = {"serviceloadbalancer/lb.cookie-sticky-session": "true"}
#: TLS to the pods without --backend-ca: a warning on every such Service, which stays.
HTTPS = {"serviceloadbalancer/lb.backend-protocol": "https"}
#: lb.affinity without lb.global: ignored, with a warning that stays.
IGNORED = {"serviceloadbalancer/lb.affinity": "none"}
OTHERS: list[RawObject] = [
    service("api", 8080),
    endpoint_slice("api", "10.1.0.1"),
    service("db", 5432, namespace="data"),
    endpoint_slice("db", "10.2.0.1", namespace="data"),
]
TCP = Settings(tcp_services=(TcpService(ServiceRef("db"), 5432),))


def ready_store(objects: list[RawObject]) -> Store:
    store = Store(KNOWN_KINDS)
    by_kind: dict[str, list[RawObject]] = defaultdict(list)
    for obj in objects:
        by_kind[str(obj["kind"])].append(obj)
    store.replace_many({kind: by_kind.get(kind, []) for kind in KNOWN_KINDS})
    return store


def fast(before: list[RawObject], after: list[RawObject], settings: Settings) -> str | None:
    """The config text the fast path makes, or None when it declines: the store moves
    from `before` to `after` as a list would, the journal says what changed."""
    store = ready_store(before)
    old = translate(store.snapshot(), settings)
    running = running_from(old, render(old.model, settings), version=store.version)
    by_kind: dict[str, list[RawObject]] = defaultdict(list)
    for obj in after:
        by_kind[str(obj["kind"])].append(obj)
    store.replace_many({kind: by_kind.get(kind, []) for kind in KNOWN_KINDS})
    changes = store.changes_since(running.version)
    assert changes is not None
    if not changes.endpoints_only:
        return None
    partial = translate(store.endpoints_of(changes.endpoints), settings)
    swap = swap_servers(running, partial, changes.endpoints)
    if swap.declined:
        return None
    patch = patch_sections(running.sections, [new for _, new in swap.pairs.values()], settings)
    return None if patch is None else patch.sections.text()


def full(after: list[RawObject], settings: Settings) -> str:
    return render(translate(ready_store(after).snapshot(), settings).model, settings).config


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
            [service("web", 80), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80), endpoint_slice("web", "10.0.0.1"),
             endpoint_slice("web", "10.0.0.7", name="web-second")],
            Settings(),
            id="slice-added",
        ),
        pytest.param(
            [service("web", 80, annotations=HTTPS), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80, annotations=HTTPS), endpoint_slice("web", "10.0.0.1", "10.0.0.2")],
            Settings(),
            id="unverified-tls-warning-stays",
        ),
        pytest.param(
            [service("web", 80, annotations=IGNORED), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80, annotations=IGNORED), endpoint_slice("web", "10.0.0.2")],
            Settings(),
            id="ignored-affinity-warning-stays",
        ),
        pytest.param(
            [service("web", 80), endpoint_slice("web", "not-an-ip", "10.0.0.1")],
            [service("web", 80), endpoint_slice("web", "not-an-ip", "10.0.0.1", "10.0.0.2")],
            Settings(),
            id="same-bad-address-stays",
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
            [service("web", 80, session_affinity="ClientIP"), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80, session_affinity="ClientIP"),
             endpoint_slice("web", "fd00::1", address_type="IPv6")],
            id="v4-to-v6-stick-table-needs-a-reload",
        ),
        pytest.param(
            [service("web", 80), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80, annotations={"serviceloadbalancer/lb.timeout-server": "2s"}),
             endpoint_slice("web", "10.0.0.2")],
            id="timeout-changed-needs-a-reload",
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
            [service("web", 80, annotations=HTTPS), endpoint_slice("web", "10.0.0.1")],
            [service("web", 80, annotations=HTTPS), endpoint_slice("web", "10.0.0.1", "bad")],
            id="warning-stays-but-a-new-problem-comes",
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
def test_fast_path_declines(
    before: list[RawObject], after: list[RawObject], request: pytest.FixtureRequest
) -> None:
    result = fast(before + OTHERS, after + OTHERS, Settings())
    if "reload" in request.node.callspec.id or "problem" in request.node.callspec.id:
        assert result is None
    # Either declined, or (no backend at all) nothing to patch: never a wrong config.
    assert result is None or result == full(after + OTHERS, Settings())


def test_store_journal_names_the_services_whose_endpoints_changed() -> None:
    a = endpoint_slice("web", "10.0.0.1")
    moved = endpoint_slice("api", "10.0.0.1", name="web-abcde")
    store = ready_store([service("web", 80), service("api", 80), a])
    start = store.version
    assert store.changes_since(start) is not None
    assert not store.changes_since(start).endpoints  # type: ignore[union-attr]
    store.upsert(moved)  # the slice now belongs to another Service: both changed
    changes = store.changes_since(start)
    assert changes is not None and changes.endpoints_only
    assert changes.endpoints == {("default", "web"), ("default", "api")}
    assert set(store.endpoints_of({("default", "api")}).objects) == {
        ObjectKey("Service", "default", "api"),
        ObjectKey("EndpointSlice", "default", "web-abcde"),
    }
    at = store.version
    store.delete(ObjectKey("EndpointSlice", "default", "web-abcde"))
    assert store.changes_since(at).endpoints == {("default", "api")}  # type: ignore[union-attr]
    problem = Problem(ObjectKey("File", "", "x.yaml"), "bad")
    at = store.version
    store.set_problems("files", [problem])
    assert not store.changes_since(at).endpoints_only  # type: ignore[union-attr]
    assert store.changes_since(store.version + 1) is None


def test_store_journal_forgets_beyond_its_size() -> None:
    store = ready_store([service("web", 80)])
    start = store.version
    for i in range(4100):
        store.upsert(endpoint_slice("web", f"10.0.{i // 250}.{i % 250 + 1}"))
    assert store.changes_since(start) is None  # too far back: a full sync
    assert store.changes_since(store.version - 10) is not None


def test_sections_swap_a_backend_body_and_keep_its_spacing() -> None:
    text = "global\n    x\n\nbackend a\n    server s 1.1.1.1:80\n\nbackend b\n    balance first\n"
    sections = split_sections(text)
    assert sections.text() == text
    assert sections.body("b") == "backend b\n    balance first"
    swapped = sections.replace({"a": "backend a\n    server t 1.1.1.2:80"})
    assert swapped.text() == text.replace("s 1.1.1.1", "t 1.1.1.2")
    assert sections.body("c") is None
    with pytest.raises(KeyError):
        sections.replace({"c": "backend c\n"})


@pytest.mark.parametrize(
    ("annotations", "warning"),
    [
        (HTTPS, "is not verified (no --backend-ca)"),
        (IGNORED, "ignored"),
    ],
)
def test_a_warning_that_stays_does_not_hold_back_the_fast_path(
    annotations: dict[str, str], warning: str
) -> None:
    before = [service("web", 80, annotations=annotations), endpoint_slice("web", "10.0.0.1")]
    problems = translate(ready_store(before + OTHERS).snapshot(), Settings()).problems
    assert any(warning in p.reason for p in problems), problems
    after = [service("web", 80, annotations=annotations), endpoint_slice("web", "10.0.0.9")]
    result = fast(before + OTHERS, after + OTHERS, Settings())
    assert result is not None and result == full(after + OTHERS, Settings())
