"""The addresses a load balancer is reachable at, as status.loadBalancer.ingress entries.

Pure. Two ways, as the issue (and ingress-nginx's --publish-service/--publish-status-address)
have it:

- `--publish-address a,b`: given by the operator (a VIP, a DNS name in front of the nodes);
  an IP becomes an `ip` entry, anything else a `hostname` entry;
- else the nodes that run a ready pod of our own workload: our pod (POD_NAMESPACE/POD_NAME
  from the downward API) names its owner (a ReplicaSet or a DaemonSet) in
  `metadata.ownerReferences`; every ready pod of the same workload counts, and its node's
  ExternalIP, else InternalIP, is an address. A node without either is skipped. When our
  own pod is not found (yet), there is no address: status stays as it is rather than
  being emptied on a guess.

  The workload of a Deployment's pod is the Deployment, not its ReplicaSet: during a
  rollout the old and the new ReplicaSet both run pods that serve, whichever one the
  leader belongs to. ReplicaSets are not watched (one more watch and RBAC for a name);
  the Deployment controller names each ReplicaSet `<deployment>-<pod-template-hash>`
  and puts that hash in the pod's `pod-template-hash` label, so a pod whose ReplicaSet
  name ends in `-<its own hash>` belongs to the Deployment named by the rest. A
  ReplicaSet without that label (made by hand) is its own workload.

Entries carry `ipMode: Proxy` for Services (we proxy: kube-proxy must not short-circuit
the address to the Service's pods). Ingress entries have no ipMode field; the caller
decides (`for_kind`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service_loadbalancer.kube.names import DNS1123_SUBDOMAIN, is_host_name
from service_loadbalancer.kube.objects import RawObject, pod_ready
from service_loadbalancer.settings import SettingsError

#: A label-style qualified name, as the API validates spec.loadBalancerClass:
#: an optional DNS subdomain prefix and "/", then a name of 63 at most.
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """One entry of status.loadBalancer.ingress: an IP or a host name."""

    value: str
    is_ip: bool

    def entry(self, *, ip_mode: str | None) -> dict[str, Any]:
        """The JSON entry; `ip_mode` ("Proxy") only for an IP of a Service."""
        if not self.is_ip:
            return {"hostname": self.value}
        entry: dict[str, Any] = {"ip": self.value}
        if ip_mode is not None:
            entry["ipMode"] = ip_mode
        return entry


def parse_class(text: str | None) -> str | None:
    """--load-balancer-class: a label-style qualified name (`example.com/lb`), or None."""
    if text is None:
        return None
    prefix, slash, name = text.rpartition("/")
    if not _QUALIFIED_NAME.match(name) or (slash and not DNS1123_SUBDOMAIN.matches(prefix)):
        raise SettingsError(
            f"--load-balancer-class: {text!r} is not a qualified name (example.com/name)"
        )
    return text


def parse_election_id(text: str) -> str:
    if not DNS1123_SUBDOMAIN.matches(text):
        raise SettingsError(f"--election-id: {text!r} is not a Lease name (DNS subdomain)")
    return text


def parse_publish_addresses(text: str) -> tuple[str, ...]:
    """`192.0.2.10,lb.example.com`: IPs (normalised) or host names, without duplicates."""
    result: list[str] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        address = parse_address(item)
        if address is None:
            raise SettingsError(f"--publish-address: {item!r} is neither an IP nor a host name")
        if address.value not in result:
            result.append(address.value)
    return tuple(result)


def parse_address(text: str) -> Address | None:
    try:
        if not text.isascii() or "%" in text:
            raise ValueError(text)
        return Address(str(ipaddress.ip_address(text)), is_ip=True)
    except ValueError:
        pass
    name = text.lower().removesuffix(".")
    return Address(name, is_ip=False) if is_host_name(name) else None


def published(values: Iterable[str]) -> tuple[Address, ...]:
    """The --publish-address values (already checked) as addresses."""
    return tuple(a for a in (parse_address(v) for v in values) if a is not None)


def _owner(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the pod's controller (the ownerReference with controller: true)."""
    refs = _part(pod, "metadata").get("ownerReferences") or []
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("kind") and ref.get("name"):
            return str(ref["kind"]), str(ref["name"])
    return None


#: The label the Deployment controller puts on a pod: its ReplicaSet's name suffix.
POD_TEMPLATE_HASH = "pod-template-hash"


def _workload(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the workload the pod belongs to: its controller, or the
    Deployment above its ReplicaSet (see the module's docstring)."""
    owner = _owner(pod)
    if owner is None or owner[0] != "ReplicaSet":
        return owner
    labels = _part(pod, "metadata").get("labels")
    suffix = labels.get(POD_TEMPLATE_HASH) if isinstance(labels, Mapping) else None
    name = owner[1]
    if isinstance(suffix, str) and suffix and name.endswith(f"-{suffix}"):
        return "Deployment", name.removesuffix(f"-{suffix}")
    return owner


def node_address(node: Mapping[str, Any]) -> Address | None:
    """The node's ExternalIP, else its InternalIP (the first of each); None without."""
    addresses = _part(node, "status").get("addresses") or []
    if not isinstance(addresses, list):
        return None
    for wanted in ("ExternalIP", "InternalIP"):
        for entry in addresses:
            if isinstance(entry, dict) and entry.get("type") == wanted:
                found = parse_address(str(entry.get("address") or ""))
                if found is not None and found.is_ip:
                    return found
    return None


def workload_addresses(
    *,
    pods: Iterable[RawObject],
    nodes: Mapping[str, RawObject],
    pod_name: str,
    pod_namespace: str,
) -> tuple[Address, ...] | None:
    """The addresses of the nodes running a ready pod of our workload, sorted; None when
    our own pod (or its owner) is not known: the caller then changes nothing."""
    ours = [p for p in pods if _namespace(p) == pod_namespace]
    me = next((p for p in ours if _part(p, "metadata").get("name") == pod_name), None)
    if me is None:
        return None
    workload = _workload(me)
    # A bare pod (no owner) is its own workload.
    mates = [me] if workload is None else [p for p in ours if _workload(p) == workload]
    found: set[Address] = set()
    for pod in mates:
        if not pod_ready(pod):
            continue
        node = nodes.get(str(_part(pod, "spec").get("nodeName") or ""))
        address = node_address(node) if node is not None else None
        if address is not None:
            found.add(address)
    return tuple(sorted(found))


def _namespace(obj: Mapping[str, Any]) -> str:
    return str(_part(obj, "metadata").get("namespace") or "default")


def _part(obj: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """obj[name] when it is a mapping (metadata, spec, status), else empty: a malformed
    object reads as one without the field, never as an exception in the publisher."""
    part = obj.get(name)
    return part if isinstance(part, Mapping) else {}
