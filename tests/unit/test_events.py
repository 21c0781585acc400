"""Events for problems: naming, the body kubectl describe needs, the rate limit, selection."""

from __future__ import annotations

import datetime
import re

from service_loadbalancer.events import TokenBucket, event_body, event_name, new_problems
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import Problem

WEB = ObjectKey("Service", "shop", "web")
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_event_name_is_stable_per_object_and_reason_and_a_valid_name() -> None:
    assert event_name(WEB, "bad") == event_name(WEB, "bad")
    assert event_name(WEB, "bad") != event_name(WEB, "worse")
    assert event_name(WEB, "bad") != event_name(ObjectKey("Service", "shop", "api"), "bad")
    long = event_name(ObjectKey("Service", "a", "x" * 300), "r")
    assert len(long) <= 253
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", event_name(WEB, "bad"))


def test_event_body_points_at_the_object_with_its_uid() -> None:
    meta = {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "7"}
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": meta}
    body = event_body(Problem(WEB, "invalid lb.algorithm"), obj, host="node-1", now=NOW)
    assert body["involvedObject"] == {
        "kind": "Service", "namespace": "shop", "name": "web", "apiVersion": "v1",
        "uid": "u-1", "resourceVersion": "7",
    }  # fmt: skip
    assert body["metadata"] == {"name": event_name(WEB, "invalid lb.algorithm"),
                                "namespace": "shop"}  # fmt: skip
    assert body["type"] == "Warning" and body["message"] == "invalid lb.algorithm"
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-01-02T03:04:05Z"
    assert body["count"] == 1 and body["source"] == {"component": "service-loadbalancer",
                                                     "host": "node-1"}  # fmt: skip


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3.0, clock=lambda: now[0])
    assert [bucket.wait_time() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.wait_time() == 0.5  # empty: one token comes in 1/rate s
    now[0] = 0.5
    assert bucket.wait_time() == 0.0
    now[0] = 100.0  # saved up, but never more than the burst
    assert [bucket.wait_time() for _ in range(4)][-1] > 0


def test_only_new_problems_on_api_objects() -> None:
    file_problem = Problem(ObjectKey("File", "", "/x.yaml"), "bad YAML")
    flag_problem = Problem(ObjectKey("Flag", "", "--tcp-services"), "clash")
    a = Problem(WEB, "a")
    b = Problem(ObjectKey("EndpointSlice", "shop", "web-1"), "b")
    current = [file_problem, flag_problem, a, b]
    assert new_problems(current, set()) == sorted([a, b])
    assert new_problems(current, {(WEB, "a")}) == [b]
