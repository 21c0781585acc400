"""Which Services are autoscaled and which workload each scales: the annotations go
through the registry; exactly one Deployment or StatefulSet must match the selector;
workloads an HPA targets are reported."""

from __future__ import annotations

from typing import Any

import pytest
from objects import service

from service_loadbalancer.autoscale.discovery import (
    Metric,
    Policy,
    Workload,
    find_target,
    hpa_targets,
    parse_workload,
    service_policy,
)
from service_loadbalancer.autoscale.rule import Bounds

P = "serviceloadbalancer/autoscale."


def workload(kind: str, name: str, labels: dict[str, str], namespace: str = "default") -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}},
        },
    }


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, None),
        ({P + "min": "2"}, None),  # bounds alone do nothing
        ({P + "target-rps": "50"}, Policy(Metric.RPS, 50.0, Bounds(1, 10))),
        (
            {P + "target-concurrency": "2.5", P + "min": "2", P + "max": "4"},
            Policy(Metric.CONCURRENCY, 2.5, Bounds(2, 4)),
        ),
    ],
)
def test_policies(annotations: dict[str, str], expected: Policy | None) -> None:
    assert service_policy(service("web", annotations=annotations)) == expected


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({P + "target-rps": "0"}, "is not above 0"),
        ({P + "target-rps": "1e3"}, "is not a number"),
        ({P + "target-rps": "nan"}, "is not a number"),
        ({P + "target-rps": "5", P + "max": "0"}, "between 1 and 1000"),
        ({P + "target-rps": "5", P + "min": "x"}, "not a number of replicas"),
        ({P + "target-rps": "5", P + "min": "5", P + "max": "2"}, "is above"),
        ({P + "target-rps": "5", P + "target-concurrency": "5"}, "choose one"),
    ],
)
def test_bad_values_are_problems(annotations: dict[str, str], message: str) -> None:
    problem = service_policy(service("web", annotations=annotations))
    assert isinstance(problem, str) and message in problem


def test_the_one_workload_whose_pods_the_selector_matches() -> None:
    svc = service("web")  # selector app=web
    found = find_target(
        svc,
        [
            workload("Deployment", "web", {"app": "web", "tier": "front"}),
            workload("Deployment", "api", {"app": "api"}),
            workload("Deployment", "web", {"app": "web"}, namespace="other"),
            workload("DaemonSet", "agent", {"app": "web"}),
        ],
    )
    assert found == Workload("Deployment", "default", "web")
    assert found.scale_path == "/apis/apps/v1/namespaces/default/deployments/web/scale"
    sts = find_target(svc, [workload("StatefulSet", "db", {"app": "web"})])
    assert sts == Workload("StatefulSet", "default", "db")


def test_none_or_several_is_a_problem() -> None:
    svc = service("web")
    none = find_target(svc, [workload("Deployment", "api", {"app": "api"})])
    assert isinstance(none, str) and "no Deployment or StatefulSet" in none
    several = find_target(
        svc,
        [workload("Deployment", "a", {"app": "web"}), workload("StatefulSet", "b", {"app": "web"})],
    )
    assert isinstance(several, str) and "several" in several
    no_selector = service("web")
    del no_selector["spec"]["selector"]
    assert "no selector" in str(find_target(no_selector, []))


def test_hpa_targets() -> None:
    hpa = {
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web-hpa", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
    }
    assert hpa_targets([hpa]) == {Workload("Deployment", "default", "web"): "web-hpa"}


def test_lb_workload_flag() -> None:
    assert parse_workload("kube-system/deployment/lb") == Workload(
        "Deployment", "kube-system", "lb"
    )
    assert parse_workload("lb/daemonset/x").kind == "DaemonSet"
    for bad in ("lb", "a/b/c", "a//c", "/deployment/x"):
        with pytest.raises(ValueError, match="NAMESPACE/deployment/NAME"):
            parse_workload(bad)
