"""Builders of the raw Kubernetes objects (as the API returns them) that both the unit
and the integration tests feed to the controller: one shape per kind, for both.

Imported as `from objects import ...`. pytest (prepend import mode) puts `tests/` on
sys.path when it loads `tests/conftest.py`, which it does for every test below it; mypy
adds the directory of a file outside a package to its search path; benchmarks put
`tests/` on sys.path themselves. Keep it plain data: no fixtures, no I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from service_loadbalancer.kube.objects import SERVICE_NAME_LABEL, RawObject

if TYPE_CHECKING:
    import trustme

#: `cluster_ip` default: a ClusterIP Service (not headless).
CLUSTER_IP = "10.96.0.10"


# --- Services ---------------------------------------------------------------------------


def port(
    number: int | object,
    *,
    name: str | None = None,
    target: int | str | None = None,
    protocol: str | None = None,
) -> RawObject:
    """One `spec.ports` entry. Omitted fields stay omitted, as the API does."""
    raw: RawObject = {"port": number}
    if name is not None:
        raw["name"] = name
    if target is not None:
        raw["targetPort"] = target
    if protocol is not None:
        raw["protocol"] = protocol
    return raw


def service(
    name: str,
    *ports: RawObject | int,
    namespace: str = "default",
    annotations: Mapping[str, str] | None = None,
    cluster_ip: str | None = CLUSTER_IP,
    session_affinity: str | None = None,
    affinity_timeout: object = None,
    type_: str | None = None,
) -> RawObject:
    """A v1 Service. Ports are `port(...)` dicts or bare numbers; none given means one
    unnamed port 80 with targetPort 8080."""
    spec_ports = [port(p, target=8080) if isinstance(p, int) else p for p in ports] or [
        port(80, target=8080)
    ]
    spec: RawObject = {"ports": spec_ports, "selector": {"app": name}}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if session_affinity is not None:
        spec["sessionAffinity"] = session_affinity
    if affinity_timeout is not None:
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity_timeout}}
    if type_ is not None:
        spec["type"] = type_
    metadata: RawObject = {"name": name, "namespace": namespace}
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


# --- EndpointSlices ---------------------------------------------------------------------


def endpoint(*addresses: str, ready: bool | None = True, conditions: bool = True) -> RawObject:
    """One EndpointSlice endpoint. `ready=None` is a nil condition (to be taken as
    ready); `conditions=False` leaves the conditions out altogether."""
    raw: RawObject = {"addresses": list(addresses)}
    if conditions:
        raw["conditions"] = {"ready": ready}
    return raw


def ep_port(number: object, *, name: str | None = None, protocol: str = "TCP") -> RawObject:
    """A port of an EndpointSlice or an Endpoints subset."""
    raw: RawObject = {"port": number, "protocol": protocol}
    if name is not None:
        raw["name"] = name
    return raw


def endpoint_slice(
    service_name: str,
    *endpoints: RawObject | str,
    namespace: str = "default",
    ports: Sequence[RawObject] = (),
    address_type: str = "IPv4",
    name: str | None = None,
) -> RawObject:
    """A discovery.k8s.io/v1 EndpointSlice of `service_name`. Endpoints are
    `endpoint(...)` dicts or bare addresses (ready); ports default to one unnamed 8080."""
    eps = [endpoint(e) if isinstance(e, str) else e for e in endpoints]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-abcde",
            "namespace": namespace,
            "labels": {SERVICE_NAME_LABEL: service_name},
        },
        "addressType": address_type,
        "endpoints": eps,
        "ports": list(ports) if ports else [ep_port(8080)],
    }


def slices(
    name: str,
    endpoints: Iterable[tuple[str, int]],
    *,
    namespace: str = "default",
    port_name: str = "",
) -> list[RawObject]:
    """One EndpointSlice of Service `name` per (address, port) endpoint, named
    `<name>-<i>`: in the integration tests each backend has its own free port."""
    return [
        endpoint_slice(
            name,
            address,
            namespace=namespace,
            ports=[ep_port(number, name=port_name)],
            name=f"{name}-{i}",
        )
        for i, (address, number) in enumerate(endpoints)
    ]


# --- core/v1 Endpoints ------------------------------------------------------------------


def subset(
    *ready: str, not_ready: Iterable[str] = (), ports: Sequence[RawObject] = ()
) -> RawObject:
    raw: RawObject = {"ports": list(ports) if ports else [ep_port(8080)]}
    if ready:
        raw["addresses"] = [{"ip": ip} for ip in ready]
    not_ready = list(not_ready)
    if not_ready:
        raw["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return raw


def endpoints(name: str, *subsets: RawObject, namespace: str = "default") -> RawObject:
    """core/v1 Endpoints, named like its Service."""
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace},
        "subsets": list(subsets),
    }


# --- TLS Secrets ------------------------------------------------------------------------


def tls_secret(
    name: str,
    chain_pem: bytes,
    key_pem: bytes,
    *,
    namespace: str = "default",
    type_: str = "kubernetes.io/tls",
) -> RawObject:
    """A v1 Secret of type kubernetes.io/tls: `data` holds base64, as the API returns it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": type_,
        "data": {
            "tls.crt": base64.b64encode(chain_pem).decode(),
            "tls.key": base64.b64encode(key_pem).decode(),
        },
    }


def cert_secret(name: str, cert: trustme.LeafCert, *, namespace: str = "default") -> RawObject:
    """`tls_secret` holding a trustme certificate: its whole chain and its key."""
    chain = b"".join(pem.bytes() for pem in cert.cert_chain_pems)
    return tls_secret(name, chain, cert.private_key_pem.bytes(), namespace=namespace)


# --- Ingress ----------------------------------------------------------------------------

#: Our IngressClass's controller (ingress_class.CONTROLLER), spelled out for the tests.
INGRESS_CONTROLLER = "k8s.io/service-loadbalancer"


def ingress_backend(service_name: str, port_: int | str = 80) -> RawObject:
    """An IngressBackend: a Service port by number (int) or by name (str)."""
    ref = {"number": port_} if isinstance(port_, int) else {"name": port_}
    return {"service": {"name": service_name, "port": ref}}


def ingress_path(
    path: str | None, service_name: str, port_: int | str = 80, *, path_type: str = "Prefix"
) -> RawObject:
    raw: RawObject = {"pathType": path_type, "backend": ingress_backend(service_name, port_)}
    if path is not None:
        raw["path"] = path
    return raw


def ingress_rule(host: str | None, *paths: RawObject) -> RawObject:
    raw: RawObject = {"http": {"paths": list(paths)}}
    if host is not None:
        raw["host"] = host
    return raw


def ingress(
    name: str,
    *rules: RawObject,
    namespace: str = "default",
    class_name: str | None = "service-loadbalancer",
    default_backend: RawObject | None = None,
    tls: Sequence[RawObject] = (),
    created: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> RawObject:
    """A networking.k8s.io/v1 Ingress, of our class unless `class_name` says otherwise."""
    spec: RawObject = {}
    if class_name is not None:
        spec["ingressClassName"] = class_name
    if default_backend is not None:
        spec["defaultBackend"] = default_backend
    if rules:
        spec["rules"] = list(rules)
    if tls:
        spec["tls"] = list(tls)
    metadata: RawObject = {"name": name, "namespace": namespace}
    if created is not None:
        metadata["creationTimestamp"] = created
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }


def ingress_tls(*hosts: str, secret: str | None = None) -> RawObject:
    raw: RawObject = {"hosts": list(hosts)}
    if secret is not None:
        raw["secretName"] = secret
    return raw


def ingress_class(
    name: str = "service-loadbalancer",
    *,
    controller: str = INGRESS_CONTROLLER,
    default: bool = False,
) -> RawObject:
    metadata: RawObject = {"name": name}
    if default:
        metadata["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": metadata,
        "spec": {"controller": controller},
    }


# --- Workloads (apps/v1) ------------------------------------------------------------------


def deployment(
    name: str,
    *,
    replicas: int = 1,
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    kind: str = "Deployment",
) -> RawObject:
    """An apps/v1 Deployment (or StatefulSet) whose pods carry `labels` (app=<name>)."""
    pod_labels = dict(labels or {"app": name})
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            },
        },
    }


# --- Multi-Cluster Services -------------------------------------------------------------


def service_export(name: str, *, namespace: str = "default") -> RawObject:
    """A multicluster.x-k8s.io/v1alpha1 ServiceExport: the Service of the same name is
    shared with the other clusters."""
    return {
        "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceExport",
        "metadata": {"name": name, "namespace": namespace},
    }
