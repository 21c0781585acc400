"""Which objects want which load-balancer status, and whether they have it. Pure.

The writer (writer.py) is generic over kind: it takes a mapping from object identity
(kind, namespace, name) to the entries of `status.loadBalancer.ingress` (None: clear),
so the Services of type LoadBalancer and the Ingresses we serve go through one writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from service_loadbalancer.kube.objects import ObjectKey, RawObject, key_of
from service_loadbalancer.loadbalancers import IP_MODE_PROXY, status_ingress
from service_loadbalancer.publish.addresses import Address

#: The entries of status.loadBalancer.ingress, as JSON; None: clear them.
Entries = tuple[dict[str, Any], ...]
Desired = Mapping[ObjectKey, Entries | None]

#: Kinds whose entries carry ipMode (a Service's LoadBalancerIngress has it; an
#: Ingress's IngressLoadBalancerIngress does not).
IP_MODE_KINDS = frozenset({"Service"})


def entries_for(kind: str, addresses: Sequence[Address]) -> Entries:
    """The status entries of one object of `kind` for these addresses."""
    mode = IP_MODE_PROXY if kind in IP_MODE_KINDS else None
    return tuple(a.entry(ip_mode=mode) for a in addresses)


def desired_status(
    *,
    publish: Iterable[ObjectKey],
    clear: Iterable[ObjectKey],
    addresses: Sequence[Address] | None,
) -> dict[ObjectKey, Entries | None]:
    """Status for every object to `publish` (when the addresses are known and not
    empty: an empty or unknown set changes nothing rather than emptying DNS on a
    guess), and None for every object to `clear`."""
    wanted: dict[ObjectKey, Entries | None] = {key: None for key in clear}
    if addresses:
        for key in publish:
            wanted[key] = entries_for(key.kind, addresses)
    return wanted


def current_entries(obj: RawObject | None) -> Entries:
    """The object's status.loadBalancer.ingress, as it is (empty when absent)."""
    ingress = status_ingress(obj) if obj is not None else None
    return tuple(e for e in ingress or () if isinstance(e, dict))


def unclaimed(objects: Iterable[RawObject], ours: AbstractSet[ObjectKey]) -> tuple[ObjectKey, ...]:
    """The objects not in `ours` that carry load-balancer status (maybe ours, from
    before they stopped being ours: the publisher compares it with what it would write)."""
    found = (key_of(obj) for obj in objects if current_entries(obj))
    return tuple(sorted(key for key in found if key not in ours))


def needs_write(obj: RawObject | None, wanted: Entries | None) -> bool:
    """Whether the object's status differs from what is wanted (None: cleared)."""
    if obj is None:
        return False  # gone: nothing to write to
    current = current_entries(obj)
    if current == (wanted or ()):
        return False
    # An API server before Kubernetes 1.30 (no LoadBalancerIPMode) drops ipMode from
    # what it stores: the same entries without it are what we wrote, not a difference
    # to write again every pass.
    return not current or _without_ip_mode(current) != _without_ip_mode(wanted or ())


def _without_ip_mode(entries: Entries) -> Entries:
    return tuple({k: v for k, v in e.items() if k != "ipMode"} for e in entries)


def with_status(obj: RawObject, wanted: Entries | None) -> RawObject:
    """The object (a copy) with status.loadBalancer set as wanted: the body of a PUT
    to its status subresource, carrying its resourceVersion (optimistic concurrency)."""
    old = obj.get("status")
    status = dict(old) if isinstance(old, dict) else {}
    status["loadBalancer"] = {"ingress": [dict(e) for e in wanted]} if wanted else {}
    return {**obj, "status": status}
