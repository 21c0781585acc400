"""Reload reasons: every change gets a reason a person can read, never an empty one."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from service_loadbalancer.haproxy.plan import (
    OpKind,
    Plan,
    ReasonKind,
    ServerOp,
    plan,
    reload_reasons,
)
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import (
    Algorithm,
    Backend,
    Certificate,
    HttpRoute,
    LoadBalancer,
    Mode,
    Server,
    Stickiness,
    TcpFrontend,
)


def backend(
    name: str = "web", servers: int = 1, algorithm: Algorithm = Algorithm.ROUNDROBIN
) -> Backend:
    return Backend(
        name=f"http_default_{name}_80",
        mode=Mode.HTTP,
        service=ObjectKey("Service", "default", name),
        port=80,
        algorithm=algorithm,
        servers=tuple(Server(f"s{i}", f"127.0.0.{i + 1}", 80) for i in range(servers)),
    )


BASE = LoadBalancer(backends=(backend(),), http_routes=(HttpRoute("/web", "http_default_web_80"),))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(None, BASE, ["initial config"], id="first"),
        pytest.param(
            BASE,
            LoadBalancer(backends=(backend(), backend("api")), http_routes=BASE.http_routes),
            ["http backend default/api:80 added"],
            id="backend-added",
        ),
        pytest.param(
            BASE,
            LoadBalancer(backends=(), http_routes=()),
            ["http backend default/web:80 removed", "HTTP routes changed"],
            id="backend-removed",
        ),
        pytest.param(
            BASE,
            LoadBalancer(backends=(backend(servers=3),), http_routes=BASE.http_routes),
            ["http backend default/web:80 endpoints changed (+2 -0)"],
            id="scaled",
        ),
        pytest.param(
            BASE,
            LoadBalancer(
                backends=(backend(algorithm=Algorithm.LEASTCONN),), http_routes=BASE.http_routes
            ),
            ["http backend default/web:80 options changed"],
            id="algorithm",
        ),
        pytest.param(
            BASE,
            LoadBalancer(
                backends=BASE.backends,
                http_routes=BASE.http_routes,
                tcp_frontends=(TcpFrontend(3306, "x"),),
            ),
            ["TCP listeners changed"],
            id="tcp",
        ),
        pytest.param(BASE, BASE, ["config text changed"], id="same-model"),
    ],
)
def test_reload_reasons(old: LoadBalancer | None, new: LoadBalancer, expected: list[str]) -> None:
    reasons = reload_reasons(old, new)
    assert [str(r) for r in reasons] == expected
    assert all(r.text and r.kind for r in reasons)


@pytest.mark.parametrize(
    ("new", "kind"),
    [
        (LoadBalancer(backends=(backend(), backend("api"))), ReasonKind.ADDED),
        (LoadBalancer(backends=(backend(servers=3),)), ReasonKind.ENDPOINTS),
        (LoadBalancer(backends=(backend(),)), ReasonKind.ROUTES),
    ],
)
def test_reasons_carry_a_low_cardinality_kind(new: LoadBalancer, kind: ReasonKind) -> None:
    """The metric's label is the kind, typed: never parsed back from the sentence."""
    assert reload_reasons(BASE, new)[0].kind is kind


# --------------------------------------------------------------------------- planner


def srv(i: int) -> Server:
    return Server(f"s{i}", f"127.0.0.{i + 1}", 80)


def lb(*backends: Backend, routes: tuple[HttpRoute, ...] | None = None) -> LoadBalancer:
    if routes is None:
        routes = tuple(HttpRoute(f"/{b.service.name}", b.name) for b in backends)
    return LoadBalancer(backends=backends, http_routes=tuple(sorted(routes)))


def web(*servers: Server, **kw: object) -> Backend:
    return replace(backend(), servers=servers, **kw)  # type: ignore[arg-type]


WEB = "http_default_web_80"


@dataclass(frozen=True)
class Want:
    """A plan as the tests state it: reasons as the sentences that are logged."""

    ops: tuple[ServerOp, ...] = ()
    reload: tuple[str, ...] = ()


def shown(result: Plan) -> Want:
    return Want(ops=result.ops, reload=tuple(str(r) for r in result.reload))


@pytest.mark.parametrize(
    ("running", "desired", "draining", "expected"),
    [
        pytest.param(None, lb(web(srv(0))), {}, Want(reload=("initial config",)), id="initial"),
        pytest.param(lb(web(srv(0))), lb(web(srv(0))), {}, Want(), id="equal-noop"),
        pytest.param(
            lb(web(srv(0))),
            lb(web(srv(0), srv(1))),
            {},
            Want(ops=(ServerOp(WEB, OpKind.ADD, srv(1)),)),
            id="scale-up",
        ),
        pytest.param(
            lb(web(srv(0), srv(1))),
            lb(web(srv(1))),
            {},
            Want(ops=(ServerOp(WEB, OpKind.DRAIN, srv(0)),)),
            id="scale-down-drains",
        ),
        pytest.param(
            lb(web(srv(0))),
            lb(web(srv(1))),
            {},
            Want(ops=(ServerOp(WEB, OpKind.ADD, srv(1)), ServerOp(WEB, OpKind.DRAIN, srv(0)))),
            id="replace-pod",
        ),
        pytest.param(
            lb(web(srv(0))),
            lb(web()),
            {},
            Want(ops=(ServerOp(WEB, OpKind.DRAIN, srv(0)),)),
            id="to-empty",
        ),
        pytest.param(
            lb(web()),
            lb(web(srv(0), srv(1))),
            {WEB: frozenset({"s0"})},
            Want(ops=(ServerOp(WEB, OpKind.ADD, srv(1)), ServerOp(WEB, OpKind.READY, srv(0)))),
            id="draining-comes-back-ready",
        ),
        pytest.param(
            lb(web(srv(0), algorithm=Algorithm.SOURCE)),
            lb(web(srv(0), srv(1), algorithm=Algorithm.SOURCE)),
            {},
            Want(ops=(ServerOp(WEB, OpKind.ADD, srv(1)),)),
            id="source-hash-is-dynamic",
        ),
        pytest.param(
            lb(web(srv(0), stickiness=Stickiness.COOKIE)),
            lb(web(srv(0), srv(1), stickiness=Stickiness.COOKIE)),
            {},
            Want(
                reload=(
                    "http backend default/web:80 endpoints changed (+1 -0): "
                    "cookie stickiness needs a reload to give new servers a cookie",
                )
            ),
            id="cookie-add-falls-back",
        ),
        pytest.param(
            lb(web(srv(0), srv(1), stickiness=Stickiness.COOKIE)),
            lb(web(srv(0), stickiness=Stickiness.COOKIE)),
            {},
            Want(ops=(ServerOp(WEB, OpKind.DRAIN, srv(1)),)),
            id="cookie-remove-is-runtime",
        ),
        pytest.param(
            lb(web(srv(0))),
            lb(web(srv(0), srv(1)), backend("api")),
            {},
            Want(
                reload=(
                    "http backend default/api:80 added",
                    "HTTP routes changed",
                    "http backend default/web:80 endpoints changed (+1 -0)",
                )
            ),
            id="structural-wins-and-lists-endpoints",
        ),
        pytest.param(
            lb(web(srv(0))),
            lb(web(srv(0), strip_prefixes=("/web",))),
            {},
            Want(reload=("http backend default/web:80 options changed",)),
            id="options",
        ),
        pytest.param(
            lb(web(srv(0))),
            replace(lb(web(srv(0))), tcp_frontends=(TcpFrontend(3306, WEB),)),
            {},
            Want(reload=("TCP listeners changed",)),
            id="listener",
        ),
    ],
)
def test_plan(
    running: LoadBalancer | None,
    desired: LoadBalancer,
    draining: dict[str, frozenset[str]],
    expected: Want,
) -> None:
    assert shown(plan(running, desired, draining=draining)) == expected


def test_plan_settings_change_reloads() -> None:
    model = lb(web(srv(0)))
    result = plan(model, model, settings_changed=True)
    assert shown(result).reload == ("settings or template changed",)


def test_every_plan_reason_has_a_kind() -> None:
    result = plan(
        lb(web(srv(0), stickiness=Stickiness.COOKIE)),
        lb(web(srv(1), stickiness=Stickiness.COOKIE)),
    )
    assert [r.kind for r in result.reload] == [ReasonKind.COOKIE_ENDPOINTS]
    assert ReasonKind.COOKIE_ENDPOINTS.value == "cookie backend endpoints changed"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(
            {"certificates": (Certificate("default-site-abc.pem", "PEM"),)},
            "certificates changed (default-site-abc.pem)",
            id="certificate-rotated",
        ),
        pytest.param(
            {"https_routes": (HttpRoute("/web", "http_default_web_80"),)},
            "HTTPS routes changed",
            id="https-route",
        ),
    ],
)
def test_tls_changes_reload_even_with_endpoint_changes(
    change: dict[str, object], reason: str
) -> None:
    """Certificates and HTTPS routes live outside the backends: they still reload, and the
    endpoint change that came with them is named too."""
    desired = replace(lb(web(srv(1))), **change)  # type: ignore[arg-type]
    result = plan(lb(web(srv(0))), desired)
    assert result.ops == ()
    assert str(result.reload[0]) == reason
    assert any(r.kind is ReasonKind.ENDPOINTS for r in result.reload)


@pytest.mark.parametrize(
    "change",
    [{"ssl_redirect": True}, {"timeout_server_ms": 2000}, {"timeout_connect_ms": 500}],
    ids=["ssl-redirect", "timeout-server", "timeout-connect"],
)
def test_backend_option_changes_reload(change: dict[str, object]) -> None:
    running = lb(web(srv(0)))
    desired = lb(replace(web(srv(0)), **change))  # type: ignore[arg-type]
    assert shown(plan(running, desired)).reload == ("http backend default/web:80 options changed",)


def test_a_changed_external_name_reloads_never_adds_a_server() -> None:
    """Servers of an ExternalName come from DNS, inside HAProxy: a new name (or port)
    is a new backend, never an `add server` with a name the Runtime API cannot take."""
    old = replace(web(Server("ext_80", "a.example.test", 80)), external_name="a.example.test")
    new = replace(web(Server("ext_80", "b.example.test", 80)), external_name="b.example.test")
    result = plan(lb(old), lb(new))
    assert result.ops == ()
    assert "http backend default/web:80 options changed" in shown(result).reload
