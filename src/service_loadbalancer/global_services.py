"""Global Services: one Service served from the endpoints of several clusters. Pure.

A Service annotated `lb.global: "true"` in the local cluster also gets, for each of its
ports, the ready endpoints of the Service of the same namespace and name in every remote
cluster where that Service is global too (the same annotation) or exported (a
Multi-Cluster Services `ServiceExport` of that namespace/name). The remote port is the
one of the same name, else of the same number. Nothing else of a remote Service is read:
its other annotations, its type, its selector are the remote cluster's business, so a
remote cluster can add endpoints to a Service the local cluster made global, and never
change local routing.

Which endpoints take traffic (lb.affinity) is said with HAProxy backup servers, so that
fail-over happens per request, inside HAProxy, the moment no preferred server is usable
(drained by the controller, or marked down by passive health), without waiting for the
controller or a reload:

- `local` (the default): local endpoints are active, remote ones backups; with
  `lb.min-local: N` (N >= 2), while fewer than N local endpoints are ready (none
  included), the remote ones are active too, so a cluster down to its last pods spills
  over before they are overwhelmed; with N = 1 they stay backups, which serve anyway
  when no local endpoint is ready. Either way the last local pod going changes no flag
  (no server is re-created at fail-over);
- `none`: every endpoint of every cluster is active;
- `remote`: remote endpoints are active, local ones backups (draining a cluster).

A server's backup flag cannot be changed at run time in HAProxy 2.6 (`set server` has no
such option), but `add server` takes the `backup` keyword (supported since 2.4, per the
Runtime API reference, https://www.haproxy.com/documentation/haproxy-runtime-api/
reference/add-server/; checked against 2.6.12 here). So the flag is part of the
server's name (`s_`/`sb_` local, `r_<cluster>_`/`rb_<cluster>_` remote): a flag change is
a new server (added, ready at once) and the old one drained, which the endpoint fast path
already does through the Runtime API, never a reload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from service_loadbalancer import annotations as ann
from service_loadbalancer.endpoints import index_slices, make_servers, ready_addresses, target_port
from service_loadbalancer.kube.objects import ObjectKey, RawObject, key_of
from service_loadbalancer.model import Affinity, Server
from service_loadbalancer.translation_run import TranslationRun

ServiceName = tuple[str, str]


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """What a local Service's annotations say about other clusters."""

    is_global: bool = False
    affinity: Affinity = Affinity.LOCAL
    min_local: int = 1

    @property
    def backups(self) -> bool:
        """Whether its backends may hold backup servers (`option allbackups`)."""
        return self.is_global and self.affinity is not Affinity.NONE


def global_options(annotations: Mapping[str, str]) -> GlobalOptions:
    """The local Service's lb.global, lb.affinity and lb.min-local (AnnotationError if
    one does not validate)."""
    return GlobalOptions(
        is_global=ann.GLOBAL.get(annotations),
        affinity=ann.AFFINITY.get(annotations),
        min_local=ann.MIN_LOCAL.get(annotations),
    )


def unused_options(annotations: Mapping[str, str], options: GlobalOptions) -> str | None:
    """Why lb.affinity or lb.min-local is ignored on this Service, if it is."""
    if not options.is_global and (
        ann.AFFINITY.key in annotations or ann.MIN_LOCAL.key in annotations
    ):
        return f"{ann.AFFINITY.key} and {ann.MIN_LOCAL.key} need {ann.GLOBAL.key}; ignored"
    if options.affinity is not Affinity.LOCAL and ann.MIN_LOCAL.key in annotations:
        return f"{ann.MIN_LOCAL.key} needs {ann.AFFINITY.key}: local; ignored"
    return None


@dataclass(frozen=True, slots=True)
class ClusterIndex:
    """One remote cluster's objects, by Service namespace and name."""

    services: Mapping[ServiceName, RawObject]
    exported: frozenset[ServiceName]
    slices: Mapping[ServiceName, list[RawObject]]
    endpoints: Mapping[ServiceName, RawObject]


def index_cluster(objects: Iterable[RawObject]) -> ClusterIndex:
    """Index a remote cluster's objects (a whole snapshot, or just the Services a fast
    path change touched)."""
    services: dict[ServiceName, RawObject] = {}
    exported: set[ServiceName] = set()
    slices: list[RawObject] = []
    endpoints: dict[ServiceName, RawObject] = {}
    for obj in objects:
        key = key_of(obj)
        name = (key.namespace, key.name)
        if key.kind == "Service":
            services[name] = obj
        elif key.kind == "ServiceExport":
            exported.add(name)
        elif key.kind == "EndpointSlice":
            slices.append(obj)
        elif key.kind == "Endpoints":
            endpoints[name] = obj
    return ClusterIndex(services, frozenset(exported), index_slices(slices), endpoints)


def remote_is_global(index: ClusterIndex, name: ServiceName) -> bool:
    """Whether the remote Service `name` shares its endpoints: exported, or annotated
    lb.global (a value that does not validate shares nothing)."""
    if name in index.exported:
        return True
    svc = index.services.get(name)
    annotations = ((svc or {}).get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, dict):
        return False
    try:
        return ann.GLOBAL.get({str(k): str(v) for k, v in annotations.items()})
    except ann.AnnotationError:
        return False


def matching_port(svc: RawObject, name: str, number: int) -> Mapping[str, Any] | None:
    """The remote Service's TCP port of the same name, else of the same number."""
    spec = svc.get("spec")
    raw = spec.get("ports") if isinstance(spec, dict) else None
    ports = [
        p
        for p in (raw if isinstance(raw, list) else [])
        if isinstance(p, dict) and str(p.get("protocol") or "TCP") == "TCP"
    ]
    if name:
        for port in ports:
            if (port.get("name") or "") == name:
                return port
    for port in ports:
        if port.get("port") == number:
            return port
    return None


def remote_servers(
    clusters: Mapping[str, ClusterIndex],
    key: ObjectKey,
    port_name: str,
    port_number: int,
    out: TranslationRun,
) -> tuple[Server, ...]:
    """The ready endpoints of the same Service port in every remote cluster that shares
    it, named `r_<cluster>_<address>_<port>`."""
    name = (key.namespace, key.name)
    found: list[Server] = []
    for cluster in sorted(clusters):
        index = clusters[cluster]
        svc = index.services.get(name)
        if svc is None or not remote_is_global(index, name):
            continue
        port = matching_port(svc, port_name, port_number)
        if port is None:
            continue
        target = target_port(port.get("targetPort"))
        remote_name = str(port.get("name") or "")
        ready = ready_addresses(
            index.slices.get(name), index.endpoints.get(name), key, remote_name, target
        )
        if ready is not None:
            addresses, subject, malformed = ready
            found.extend(
                make_servers(addresses, subject, out, cluster=cluster, malformed=malformed)
            )
    return tuple(found)


def with_affinity(
    local: tuple[Server, ...], remote: tuple[Server, ...], options: GlobalOptions
) -> tuple[Server, ...]:
    """All the servers of a global Service port, the backups flagged (and named) as
    lb.affinity and lb.min-local say; sorted by name."""
    local_backup = remote_backup = False
    if options.affinity is Affinity.LOCAL:
        # Below lb.min-local (2 or more) the remote servers are active, down to no local
        # server at all: flipping them to backups as the last local pod goes would drain
        # and re-add every one at the moment of fail-over. With min-local 1 they are
        # backups throughout; at no local server the backups serve anyway.
        remote_backup = options.min_local == 1 or len(local) >= options.min_local
    elif options.affinity is Affinity.REMOTE:
        local_backup = True
    servers = [_backup(s, "s", "sb") for s in local] if local_backup else list(local)
    servers += [_backup(s, "r", "rb") for s in remote] if remote_backup else remote
    return tuple(sorted(servers))


def _backup(server: Server, active: str, backup: str) -> Server:
    """The same endpoint as a backup server: another name, since the flag cannot change
    in place."""
    return replace(server, name=backup + server.name.removeprefix(active), backup=True)
