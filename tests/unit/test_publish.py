"""The status publisher's pure parts: addresses from --publish-address or from our
pods and their nodes, and the status wanted for each object (generic over kind)."""

from __future__ import annotations

from typing import Any

import pytest

from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.publish.addresses import (
    Address,
    node_address,
    parse_class,
    parse_election_id,
    parse_publish_addresses,
    published,
    workload_addresses,
)
from service_loadbalancer.publish.desired import desired_status, needs_write, with_status
from service_loadbalancer.settings import SettingsError


def pod(
    name: str,
    node: str,
    *,
    ready: bool = True,
    owner: tuple[str, str] | None = ("ReplicaSet", "lb-1"),
    namespace: str = "lb",
    phase: str = "Running",
    deleting: bool = False,
    template_hash: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if template_hash is not None:
        meta["labels"] = {"app.kubernetes.io/name": "lb", "pod-template-hash": template_hash}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def node(name: str, **addresses: str) -> dict[str, Any]:
    return {
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": t, "address": a} for t, a in addresses.items()]},
    }


NODES = {
    "a": node("a", InternalIP="10.0.0.1"),
    "b": node("b", InternalIP="10.0.0.2", ExternalIP="192.0.2.2"),
    "c": node("c", InternalIP="10.0.0.3"),
    "d": node("d", Hostname="d"),
}


def ips(found: tuple[Address, ...] | None) -> list[str] | None:
    return None if found is None else [a.value for a in found]


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([pod("me", "a"), pod("x", "b")], ["10.0.0.1", "192.0.2.2"]),
        ([pod("me", "a"), pod("x", "b", ready=False)], ["10.0.0.1"]),
        ([pod("me", "a"), pod("x", "b", deleting=True)], ["10.0.0.1"]),
        ([pod("me", "a"), pod("x", "b", phase="Pending")], ["10.0.0.1"]),
        ([pod("me", "a"), pod("x", "b", owner=("DaemonSet", "other"))], ["10.0.0.1"]),
        ([pod("me", "a"), pod("x", "b", namespace="elsewhere")], ["10.0.0.1"]),
        ([pod("me", "a"), pod("x", "d"), pod("y", "gone")], ["10.0.0.1"]),  # no address
        ([pod("me", "a"), pod("x", "a")], ["10.0.0.1"]),  # one entry per node
        ([pod("me", "a", owner=None), pod("x", "b", owner=None)], ["10.0.0.1"]),  # bare pod
        ([pod("me", "a", ready=False), pod("x", "c")], ["10.0.0.3"]),
        ([pod("x", "b")], None),  # our own pod not seen: unknown
    ],
)
def test_addresses_from_pods_and_nodes(pods: list[dict[str, Any]], expected: list[str]) -> None:
    found = workload_addresses(pods=pods, nodes=NODES, pod_name="me", pod_namespace="lb")
    assert ips(found) == expected


def test_daemonset_owner() -> None:
    owner = ("DaemonSet", "lb")
    pods = [pod("me", "a", owner=owner), pod("x", "c", owner=owner)]
    found = workload_addresses(pods=pods, nodes=NODES, pod_name="me", pod_namespace="lb")
    assert ips(found) == ["10.0.0.1", "10.0.0.3"]


def deployed(name: str, node: str, replica_set: str, template_hash: str) -> dict[str, Any]:
    return pod(name, node, owner=("ReplicaSet", replica_set), template_hash=template_hash)


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        # A rollout: the leader is on the old ReplicaSet, the new one runs on b and c.
        ([deployed("me", "a", "slb-5d8f", "5d8f"), deployed("x", "b", "slb-7c9b", "7c9b"),
          deployed("y", "c", "slb-7c9b", "7c9b")], ["10.0.0.1", "10.0.0.3", "192.0.2.2"]),
        # Another Deployment in the namespace ("slb-web" is not "slb").
        ([deployed("me", "a", "slb-5d8f", "5d8f"), deployed("x", "b", "slb-web-1a2b", "1a2b")],
         ["10.0.0.1"]),
        # A ReplicaSet made by hand (no pod-template-hash): its own workload only.
        ([pod("me", "a", owner=("ReplicaSet", "slb-5d8f")), deployed("x", "b", "slb-7c9b", "7c9b")],
         ["10.0.0.1"]),
        # A hash that is not the ReplicaSet's suffix: not taken for a Deployment's.
        ([deployed("me", "a", "slb-5d8f", "zzzz"), deployed("x", "b", "slb-7c9b", "7c9b")],
         ["10.0.0.1"]),
    ],
)  # fmt: skip
def test_a_deployment_is_one_workload_across_its_replica_sets(
    pods: list[dict[str, Any]], expected: list[str]
) -> None:
    found = workload_addresses(pods=pods, nodes=NODES, pod_name="me", pod_namespace="lb")
    assert ips(found) == expected


def test_node_address_prefers_external() -> None:
    assert node_address(NODES["b"]) == Address("192.0.2.2", is_ip=True)
    assert node_address(NODES["d"]) is None
    assert node_address({"status": {"addresses": "junk"}}) is None


def test_publish_address_flag() -> None:
    assert parse_publish_addresses(" 192.0.2.1, LB.example.com., 192.0.2.1,,2001:db8::0:1") == (
        "192.0.2.1",
        "lb.example.com",
        "2001:db8::1",
    )
    for bad in ("a b", "-x.example", "1.2.3.4%eth0"):
        with pytest.raises(SettingsError, match="--publish-address"):
            parse_publish_addresses(bad)
    assert [a.entry(ip_mode="Proxy") for a in published(("192.0.2.1", "lb.example.com"))] == [
        {"ip": "192.0.2.1", "ipMode": "Proxy"},
        {"hostname": "lb.example.com"},
    ]


@pytest.mark.parametrize("good", ["example.com/lb", "lb", "a.b/c_d-e.f"])
def test_class_flag_good(good: str) -> None:
    assert parse_class(good) == good


@pytest.mark.parametrize("bad", ["", "/x", "Example.com/x", "x/", "a/b/c", "x" * 64])
def test_class_flag_bad(bad: str) -> None:
    with pytest.raises(SettingsError, match="--load-balancer-class"):
        parse_class(bad)


def test_election_id_flag() -> None:
    assert parse_election_id("service-loadbalancer-leader") == "service-loadbalancer-leader"
    with pytest.raises(SettingsError, match="--election-id"):
        parse_election_id("Not_A_Name")


SVC = ObjectKey("Service", "default", "db")
ING = ObjectKey("Ingress", "default", "web")
GONE = ObjectKey("Service", "default", "old")
ADDRS = published(("192.0.2.1", "lb.example.com"))


def test_desired_is_generic_over_kind() -> None:
    wanted = desired_status(publish=[SVC, ING], clear=[GONE], addresses=ADDRS)
    assert wanted == {
        SVC: ({"ip": "192.0.2.1", "ipMode": "Proxy"}, {"hostname": "lb.example.com"}),
        ING: ({"ip": "192.0.2.1"}, {"hostname": "lb.example.com"}),  # no ipMode on Ingress
        GONE: None,
    }


@pytest.mark.parametrize("addresses", [None, ()])
def test_unknown_or_no_addresses_publish_nothing_but_still_clear(
    addresses: tuple[Address, ...] | None,
) -> None:
    assert desired_status(publish=[SVC], clear=[GONE], addresses=addresses) == {GONE: None}


def test_needs_write_and_body() -> None:
    entries = ({"ip": "192.0.2.1", "ipMode": "Proxy"},)
    obj: dict[str, Any] = {"metadata": {"name": "db", "resourceVersion": "7"}, "status": {}}
    assert needs_write(obj, entries)
    body = with_status(obj, entries)
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["status"] == {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "Proxy"}]}}
    assert not needs_write(body, entries)
    assert needs_write(body, None)
    assert with_status(body, None)["status"] == {"loadBalancer": {}}
    assert not needs_write(obj, None)
    assert not needs_write(None, entries)


def test_an_api_server_that_drops_ip_mode_is_not_written_again_and_again() -> None:
    """Before Kubernetes 1.30 the API server stores the entries without ipMode: what it
    keeps is what we wrote, and a pass must not write it again every time."""
    entries = ({"ip": "192.0.2.1", "ipMode": "Proxy"},)
    stored = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    assert not needs_write(stored, entries)
    assert needs_write(stored, ({"ip": "192.0.2.2", "ipMode": "Proxy"},))
    assert needs_write(stored, None)


@pytest.mark.parametrize(
    "junk",
    [
        {"metadata": [1]},
        {"metadata": {"name": "x", "namespace": "lb", "ownerReferences": "no"}},
        {"metadata": {"name": "x", "namespace": "lb"}, "spec": "no", "status": [1]},
        {
            "metadata": {"name": "x", "namespace": "lb"},
            "status": {"phase": "Running", "conditions": 5},
        },
    ],
)
def test_malformed_pods_are_skipped(junk: dict[str, Any]) -> None:
    pods = [pod("me", "a"), junk]
    found = workload_addresses(pods=pods, nodes=NODES, pod_name="me", pod_namespace="lb")
    assert ips(found) == ["10.0.0.1"]
