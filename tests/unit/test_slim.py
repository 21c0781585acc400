"""Slimming objects from the API server: less memory, the very same translation."""

from __future__ import annotations

import copy

from factories import snapshot
from objects import endpoint, endpoint_slice, service

from service_loadbalancer.kube.objects import RawObject, slim
from service_loadbalancer.settings import Settings
from service_loadbalancer.translate import translate


def bulky(obj: RawObject) -> RawObject:
    """As a real API server sends it: managed fields, kubectl's copy, endpoint details."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 3
    meta.setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = (
        '{"kind": "Service"}' * 100
    )
    for ep in obj.get("endpoints") or []:
        ep.update(nodeName="node-1", zone="a", targetRef={"kind": "Pod", "name": "p", "uid": "u"})
        ep["addresses"] = [*ep.get("addresses", []), "10.9.9.9"]
    return obj


OBJECTS = [
    service("web", 80, annotations={"serviceloadbalancer/lb.algorithm": "leastconn"}),
    endpoint_slice(
        "web",
        "10.0.0.1",
        endpoint("10.0.0.2", ready=False),
        endpoint("10.0.0.3", ready=None),
        endpoint("not-an-ip"),
    ),
    service("db", 5432),
    endpoint_slice("db", endpoint("10.1.0.1", conditions=False)),
]


def test_slimmed_objects_translate_exactly_as_the_originals() -> None:
    originals = [bulky(o) for o in OBJECTS]
    slimmed = [slim(copy.deepcopy(o)) for o in originals]
    want = translate(snapshot(*originals), Settings())
    assert translate(snapshot(*slimmed), Settings()) == want
    assert want.problems  # the bad address is still reported


def test_slim_drops_the_bulk() -> None:
    obj = slim(bulky(OBJECTS[1]))
    assert "managedFields" not in obj["metadata"]
    assert obj["metadata"]["annotations"] == {}
    assert obj["endpoints"][0] == {"addresses": ["10.0.0.1"]}
    assert obj["endpoints"][1] == {"addresses": ["10.0.0.2"], "conditions": {"ready": False}}
