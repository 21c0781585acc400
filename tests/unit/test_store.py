"""Store semantics: readiness, atomic replace, change reporting, listeners, snapshots."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import Problem
from service_loadbalancer.store import Store

KINDS = ("Service", "Endpoints", "EndpointSlice")


def obj(kind: str, name: str, namespace: str = "default", **extra: Any) -> RawObject:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace}, **extra}


def key(kind: str, name: str, namespace: str = "default") -> ObjectKey:
    return ObjectKey(kind, namespace, name)


@pytest.fixture
def store() -> Store:
    return Store(KINDS)


def test_ready_only_after_every_kind_was_replaced_once(store: Store) -> None:
    assert not store.ready
    assert store.replace("Service", [obj("Service", "a")]) is True
    assert not store.ready
    store.replace("Endpoints", [])
    assert not store.ready
    store.upsert(obj("EndpointSlice", "a-1"))  # an upsert is not a list
    assert not store.ready
    store.replace("EndpointSlice", [obj("EndpointSlice", "a-1")])
    assert store.ready


def test_a_store_without_kinds_is_ready() -> None:
    assert Store([]).ready


def test_first_empty_replace_is_a_change(store: Store) -> None:
    assert store.replace("Service", []) is True  # it made the kind listed
    assert store.version == 1
    assert store.replace("Service", []) is False
    assert store.version == 1


def test_replace_is_atomic_per_kind(store: Store) -> None:
    store.replace("Service", [obj("Service", "a"), obj("Service", "b")])
    store.replace("Endpoints", [obj("Endpoints", "a")])
    calls: list[int] = []
    store.add_listener(lambda: calls.append(store.version))

    assert store.replace("Service", [obj("Service", "b"), obj("Service", "c")]) is True
    assert set(store.snapshot().objects) == {
        key("Service", "b"),
        key("Service", "c"),
        key("Endpoints", "a"),  # other kinds untouched
    }
    assert len(calls) == 1  # one step, one notification


def test_unchanged_replace_returns_false_and_keeps_version(store: Store) -> None:
    store.replace("Service", [obj("Service", "a", spec={"ports": [{"port": 80}]})])
    version = store.version
    calls: list[int] = []
    store.add_listener(lambda: calls.append(1))
    # Equal by value, a different dict: still no change.
    assert store.replace("Service", [obj("Service", "a", spec={"ports": [{"port": 80}]})]) is False
    assert store.version == version
    assert calls == []


def test_replace_with_a_changed_object(store: Store) -> None:
    store.replace("Service", [obj("Service", "a", spec={"ports": [{"port": 80}]})])
    assert store.replace("Service", [obj("Service", "a", spec={"ports": [{"port": 81}]})])
    (service,) = store.snapshot().of_kind("Service")
    assert service["spec"]["ports"][0]["port"] == 81


@pytest.mark.parametrize(
    ("before", "operation", "changed"),
    [
        pytest.param([], ("upsert", obj("Service", "a")), True, id="upsert new"),
        pytest.param(
            [obj("Service", "a")], ("upsert", obj("Service", "a")), False, id="upsert same"
        ),
        pytest.param(
            [obj("Service", "a")],
            ("upsert", obj("Service", "a", spec={"type": "NodePort"})),
            True,
            id="upsert changed",
        ),
        pytest.param([obj("Service", "a")], ("delete", key("Service", "a")), True, id="delete"),
        pytest.param([], ("delete", key("Service", "a")), False, id="delete missing"),
        pytest.param(
            [obj("Service", "a")],
            ("delete", key("Service", "a", "other")),
            False,
            id="delete in another namespace",
        ),
    ],
)
def test_upsert_and_delete_report_change(
    store: Store, before: list[RawObject], operation: tuple[str, Any], changed: bool
) -> None:
    for o in before:
        store.upsert(o)
    version = store.version
    calls: list[int] = []
    store.add_listener(lambda: calls.append(store.version))
    name, argument = operation
    result = store.upsert(argument) if name == "upsert" else store.delete(argument)
    assert result is changed
    assert store.version == version + (1 if changed else 0)
    assert calls == ([store.version] if changed else [])


def test_listeners_are_called_after_the_change(store: Store) -> None:
    seen: list[set[ObjectKey]] = []
    store.add_listener(lambda: seen.append(set(store.snapshot().objects)))
    store.add_listener(lambda: seen.append({key("Listener", "second")}))
    store.upsert(obj("Service", "a"))
    assert seen == [{key("Service", "a")}, {key("Listener", "second")}]


def test_set_problems_dedups_and_reports_change(store: Store) -> None:
    p1 = Problem(ObjectKey("File", "", "a.yaml"), "bad")
    p2 = Problem(ObjectKey("File", "", "b.yaml"), "worse")
    assert store.set_problems("files", [p2, p1, p2]) is True
    assert store.snapshot().source_problems == (p1, p2)
    version = store.version
    assert store.set_problems("files", [p1, p2]) is False  # same set, other order
    assert store.version == version
    assert store.set_problems("other", []) is False  # nothing to nothing
    assert store.set_problems("files", []) is True
    assert store.snapshot().source_problems == ()


def test_problems_of_sources_are_kept_apart(store: Store) -> None:
    pa = Problem(ObjectKey("File", "", "a.yaml"), "bad")
    pk = Problem(ObjectKey("Service", "default", "x"), "from the cluster")
    store.set_problems("kube", [pk])
    store.set_problems("files", [pa])
    assert store.snapshot().source_problems == (pa, pk)  # by source name
    store.set_problems("files", [])
    assert store.snapshot().source_problems == (pk,)


def test_snapshot_is_immutable_and_detached(store: Store) -> None:
    store.upsert(obj("Service", "a"))
    snapshot = store.snapshot()
    assert isinstance(snapshot.objects, MappingProxyType)
    with pytest.raises(TypeError):
        snapshot.objects[key("Service", "b")] = obj("Service", "b")  # type: ignore[index]
    with pytest.raises(AttributeError):
        snapshot.version = 99  # type: ignore[misc]
    store.upsert(obj("Service", "b"))
    store.delete(key("Service", "a"))
    assert set(snapshot.objects) == {key("Service", "a")}  # later changes do not leak in
    assert snapshot.version == 1


def test_of_kind_is_in_key_order(store: Store) -> None:
    store.replace(
        "Service",
        [
            obj("Service", "b", "z"),
            obj("Service", "a", "z"),
            obj("Service", "z", "a"),
        ],
    )
    store.upsert(obj("Endpoints", "a", "a"))
    snapshot = store.snapshot()
    assert [
        (o["metadata"]["namespace"], o["metadata"]["name"]) for o in snapshot.of_kind("Service")
    ] == [
        ("a", "z"),
        ("z", "a"),
        ("z", "b"),
    ]
    assert [o["kind"] for o in snapshot.of_kind("Endpoints")] == ["Endpoints"]
    assert snapshot.of_kind("EndpointSlice") == []


def test_objects_without_namespace_are_keyed_as_default(store: Store) -> None:
    store.upsert({"kind": "Service", "metadata": {"name": "a"}})
    assert set(store.snapshot().objects) == {key("Service", "a")}
    assert store.delete(key("Service", "a")) is True


def test_namespaced_lists_each_gate_readiness_and_replace_only_their_namespace() -> None:
    store = Store(["Service"], namespaces=["a", "b"])
    assert store.pending() == [("Service", "a"), ("Service", "b")]
    store.replace("Service", [obj("Service", "x", "a"), obj("Service", "y", "a")], namespace="a")
    assert not store.ready
    store.replace("Service", [obj("Service", "x", "b")], namespace="b")
    assert store.ready
    # A relist of `a` that lost y: y goes, b's x stays.
    assert store.replace("Service", [obj("Service", "x", "a")], namespace="a")
    assert set(store.snapshot().objects) == {key("Service", "x", "a"), key("Service", "x", "b")}


def test_a_namespaced_replace_refuses_objects_of_another_namespace() -> None:
    store = Store(["Service"], namespaces=["a"])
    with pytest.raises(ValueError, match="given as a Service of a"):
        store.replace("Service", [obj("Service", "x", "b")], namespace="a")


def test_mark_listed_stops_waiting_without_touching_objects() -> None:
    store = Store(["Service", "Secret"])
    store.replace("Service", [obj("Service", "x")])
    assert store.pending() == [("Secret", "")]
    version = store.version
    assert store.mark_listed("Secret") is True
    assert store.ready and store.version == version + 1
    assert store.mark_listed("Secret") is False
    assert set(store.snapshot().objects) == {key("Service", "x")}
    assert store.get(key("Service", "x")) == obj("Service", "x")
