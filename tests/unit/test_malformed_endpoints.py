"""Malformed EndpointSlices and Endpoints (endpoints.py): a field of the wrong type reads
as missing, with a problem naming the object; never an exception (which would end the
controller's task group), whether the object is local or from a remote cluster."""

from __future__ import annotations

from typing import Any

import pytest
from factories import snapshot
from objects import endpoint_slice, endpoints, service, subset
from test_global_services import GLOBAL, run, the_backend

from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.settings import Settings
from service_loadbalancer.translate import translate

SLICE_KEY = ObjectKey("EndpointSlice", "default", "web")
CORE_KEY = ObjectKey("Endpoints", "default", "web")


def bad_slice(**fields: Any) -> RawObject:
    sl = endpoint_slice("web", "10.0.0.1", name="web-bad")
    sl.update(fields)
    return sl


def bad_core(**fields: Any) -> RawObject:
    core = endpoints("web", subset("10.0.0.1"))
    core.update(fields)
    return core


@pytest.mark.parametrize(
    ("objects", "subject", "reason"),
    [
        ([bad_slice(ports=5)], SLICE_KEY, "EndpointSlice 'web-bad': ports is a number"),
        ([bad_slice(ports="8080")], SLICE_KEY, "ports is a string, not a list"),
        ([bad_slice(ports=[7, {"port": 8080}])], SLICE_KEY, "an entry of ports is not"),
        ([bad_slice(endpoints={"a": 1})], SLICE_KEY, "endpoints is a mapping, not a list"),
        ([bad_slice(endpoints=[3])], SLICE_KEY, "an entry of endpoints is not a mapping"),
        ([bad_slice(endpoints=[{"addresses": 5}])], SLICE_KEY, "addresses of an endpoint"),
        ([bad_slice(endpoints=[{"addresses": {"0": 1}}])], SLICE_KEY, "is a mapping"),
        (
            [bad_slice(endpoints=[{"addresses": ["10.0.0.1"], "conditions": [1]}])],
            SLICE_KEY,
            "conditions is a list, not a mapping",
        ),
        ([bad_core(subsets=7)], CORE_KEY, "Endpoints 'web': subsets is a number"),
        ([bad_core(subsets=[[1]])], CORE_KEY, "an entry of subsets is not a mapping"),
        ([bad_core(subsets=[{"ports": {"a": 1}}])], CORE_KEY, "ports is a mapping"),
        ([bad_core(subsets=[{"ports": [{"port": 8080}], "addresses": 3}])], CORE_KEY, "addresses"),
        ([bad_core(subsets=[{"ports": [{"port": 8080}], "addresses": [5]}])], CORE_KEY, "entry"),
    ],
)
def test_malformed_parts_are_problems_not_exceptions(
    objects: list[RawObject], subject: ObjectKey, reason: str
) -> None:
    result = translate(snapshot(service("web"), *objects), Settings())
    reasons = [p.reason for p in result.problems if p.subject == subject]
    assert any(reason in r for r in reasons), result.problems
    assert [b.name for b in result.model.backends] == ["http_default_web_80"]


def test_the_good_slice_beside_a_malformed_one_still_serves() -> None:
    good = endpoint_slice("web", "10.0.0.2", name="web-good")
    result = translate(snapshot(service("web"), bad_slice(ports=5), good), Settings())
    (backend,) = result.model.backends
    assert [s.address for s in backend.servers] == ["10.0.0.2"]


def test_a_remote_clusters_malformed_slice_is_a_problem_naming_the_cluster() -> None:
    remote_slice = endpoint_slice("web", "10.9.0.1", name="web-east")
    remote_slice["endpoints"] = 5
    result = run(
        [service("web", annotations=GLOBAL), endpoint_slice("web", "10.0.0.1")],
        east=[service("web", annotations=GLOBAL), remote_slice],
    )
    assert [s.address for s in the_backend(result).servers] == ["10.0.0.1"]
    assert any(
        p.subject == SLICE_KEY
        and p.reason.startswith("cluster east: EndpointSlice 'web-east': endpoints is a number")
        for p in result.problems
    ), result.problems
