"""Reload reasons: every change gets a reason a person can read, never an empty one."""

from __future__ import annotations

import pytest

from service_loadbalancer.haproxy.plan import reason_kind, reload_reasons
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import (
    Algorithm,
    Backend,
    HttpRoute,
    LoadBalancer,
    Mode,
    Server,
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
    assert reasons == expected
    assert all(reasons)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("initial config", "initial config"),
        ("http backend default/api:80 added", "added"),
        ("http backend default/web:80 endpoints changed (+2 -0)", "endpoints changed"),
        ("HTTP routes changed", "routes changed"),
        ("something new", "other"),
    ],
)
def test_reason_kind_is_low_cardinality(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind
