"""The informer's decisions as tables: failures, events, backoff, permission messages."""

from __future__ import annotations

import random
from typing import Any

import pytest

from service_loadbalancer.kube.watch import (
    RESOURCES,
    Action,
    Backoff,
    EventType,
    classify,
    forbidden_message,
    parse_event,
    resource_version,
)


def status(code: int, reason: str, message: str = "") -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}  # fmt: skip


@pytest.mark.parametrize(
    ("code", "body", "error", "action"),
    [
        (410, status(410, "Expired"), "", Action.RELIST),  # expired continue token
        (410, None, "", Action.RELIST),  # a bare 410
        (200, status(410, "Expired"), "", Action.RELIST),  # ERROR event in a watch
        (200, status(410, "Gone"), "", Action.RELIST),
        (200, {"reason": "Expired"}, "", Action.RELIST),  # reason alone
        (403, status(403, "Forbidden"), "", Action.FORBIDDEN),
        (401, status(401, "Unauthorized"), "", Action.FORBIDDEN),
        (500, status(500, "InternalError"), "", Action.RETRY),
        (503, None, "", Action.RETRY),
        (429, status(429, "TooManyRequests"), "", Action.RETRY),
        (504, status(504, "Timeout"), "", Action.RETRY),
        (0, None, "Cannot connect to host", Action.RETRY),  # connection refused / dropped
        (200, status(500, "InternalError"), "", Action.RETRY),  # ERROR event, not 410
    ],
)
def test_classify(code: int, body: dict[str, Any] | None, error: str, action: Action) -> None:
    assert classify(code, body, error=error).action is action


def test_classify_keeps_the_status_code_reason_and_message() -> None:
    failure = classify(200, status(403, "Forbidden", "services is forbidden"))
    assert (failure.code, failure.reason, failure.message) == (
        403, "Forbidden", "services is forbidden"
    )  # fmt: skip


@pytest.mark.parametrize(("header", "seconds"), [("3", 3.0), ("", 0.0), ("soon", 0.0)])
def test_retry_after(header: str, seconds: float) -> None:
    assert classify(429, None, retry_after=header).retry_after == seconds


def test_backoff_is_jittered_capped_and_grows() -> None:
    backoff = Backoff(base=0.2, cap=1.6, forbidden_cap=30.0)
    rng = random.Random(1)
    for attempt in range(1, 30):
        delay = backoff.delay(attempt, Action.RETRY, rng)
        ceiling = min(1.6, 0.2 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.delay(30, Action.FORBIDDEN, rng) > 1.6  # a slower cap for 403
    assert backoff.delay(30, Action.FORBIDDEN, rng) <= 30.0


def test_first_relist_is_immediate_a_repeated_one_backs_off() -> None:
    backoff = Backoff()
    assert backoff.delay(1, Action.RELIST) == 0.0
    assert backoff.delay(3, Action.RELIST) > 0.0


def test_default_cap_lets_the_controller_catch_up_within_two_seconds() -> None:
    """After an outage the next try comes within the cap, well inside 2 s."""
    assert Backoff().cap <= 1.0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "ADDED", "object": {"metadata": {"name": "a"}}}, EventType.ADDED),
        ({"type": "MODIFIED", "object": {"metadata": {"name": "a"}}}, EventType.MODIFIED),
        ({"type": "DELETED", "object": {"metadata": {"name": "a"}}}, EventType.DELETED),
        ({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
         EventType.BOOKMARK),
        ({"type": "ERROR", "object": status(410, "Expired")}, EventType.ERROR),
        ({"type": "SOMETHING", "object": {}}, None),
        ({"type": "ADDED", "object": "not an object"}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_parse_event(data: dict[str, Any], expected: EventType | None) -> None:
    event = parse_event(data, kind="Service", api_version="v1")
    assert (event.type if event else None) is expected


def test_objects_get_kind_and_api_version_bookmarks_do_not() -> None:
    added = parse_event({"type": "ADDED", "object": {"metadata": {}}}, kind="EndpointSlice",
                        api_version="discovery.k8s.io/v1")  # fmt: skip
    assert added is not None
    assert added.object["kind"] == "EndpointSlice"
    assert added.object["apiVersion"] == "discovery.k8s.io/v1"
    mark = parse_event({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
                       kind="Service", api_version="v1")  # fmt: skip
    assert mark is not None and "kind" not in mark.object
    assert resource_version(mark.object) == "7"
    assert resource_version({}) == ""


@pytest.mark.parametrize(
    ("kind", "namespace", "path"),
    [
        ("Service", "", "/api/v1/services"),
        ("Service", "shop", "/api/v1/namespaces/shop/services"),
        ("EndpointSlice", "", "/apis/discovery.k8s.io/v1/endpointslices"),
        ("EndpointSlice", "a", "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices"),
        ("Endpoints", "a", "/api/v1/namespaces/a/endpoints"),
        ("Secret", "", "/api/v1/secrets"),
    ],
)
def test_paths(kind: str, namespace: str, path: str) -> None:
    assert RESOURCES[kind].path(namespace) == path


def test_forbidden_message_names_resource_verb_group_and_namespace() -> None:
    failure = classify(403, status(403, "Forbidden", "nope"))
    text = forbidden_message(
        verb="list", resource=RESOURCES["EndpointSlice"], namespace="shop", failure=failure
    )
    assert text == (
        "403 Forbidden: cannot list endpointslices (API group discovery.k8s.io) "
        'in namespace "shop": nope'
    )
    text = forbidden_message(verb="watch", resource=RESOURCES["Service"], namespace="",
                             failure=classify(403, None))  # fmt: skip
    assert 'cannot watch services (API group "" (core)) at cluster scope' in text
