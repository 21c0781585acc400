"""The store: the current set of objects from every source, and whether it is complete.

Sources write to it (one object at a time, or a whole kind at once after a list);
the reconciler reads immutable snapshots from it. It is deliberately synchronous and
free of I/O: a change bumps `version` and calls the listeners, nothing more.

Readiness matters: a config rendered before every kind has been listed once would
serve an empty or partial view (every Service without endpoints, say), so the
reconciler renders nothing until `ready` is true.

Cost follows the change: every change is also written to a short journal (which
Services' endpoints changed, or that something else did), and EndpointSlices are
indexed by their Service, so the endpoint fast path learns what changed since the
version it applied, and reads just those Services, without looking at (or copying)
the whole store. Only a full sync takes a `snapshot()`.

Several clusters: each remote cluster's source fills a store of its own, attached to
the local one with `add_remote`. A change there is journalled here as an endpoint
change of the same namespace/name (a remote cluster only ever contributes endpoints),
so it takes the same fast path; `endpoints_of` and `snapshot` carry the remote stores'
views beside the local objects (`Snapshot.remote`), for translation to merge.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from service_loadbalancer.gcpause import gc_paused
from service_loadbalancer.kube.objects import (
    CLUSTER_SCOPED_KINDS,
    SERVICE_NAME_LABEL,
    ObjectKey,
    RawObject,
    key_of,
)
from service_loadbalancer.model import Problem

#: A Service by namespace and name.
ServiceName = tuple[str, str]
#: Journal entries kept; a reader further behind than this does a full sync.
JOURNAL_SIZE = 4096
#: The objects read by a Service's namespace and name (a ServiceExport marks a remote
#: cluster's Service as shared).
_SERVICE_KINDS = ("Service", "Endpoints", "ServiceExport")


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in the store between two versions."""

    #: Services whose endpoints (EndpointSlices, Endpoints) changed.
    endpoints: frozenset[ServiceName]
    #: Services whose own object changed (added, removed, edited).
    services: frozenset[ServiceName]
    #: Anything else changed: a Secret, source problems, readiness (a full sync's job).
    other: bool

    @property
    def endpoints_only(self) -> bool:
        return not self.services and not self.other


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of the store at one version."""

    version: int
    objects: Mapping[ObjectKey, RawObject]
    #: Problems the sources found in their input (a bad file, say), by source name.
    source_problems: tuple[Problem, ...] = field(default_factory=tuple)
    #: The remote clusters' views (of the same Services, or whole), by cluster name.
    remote: Mapping[str, Snapshot] = field(default_factory=lambda: MappingProxyType({}))

    def of_kind(self, kind: str) -> list[RawObject]:
        """The objects of one kind, in key order (so translation is deterministic). Only
        that kind's keys are sorted: a translation asks for six kinds of a snapshot that
        is mostly EndpointSlices."""
        return [self.objects[k] for k in sorted(k for k in self.objects if k.kind == kind)]


class Store:
    """Objects by key, per-(kind, namespace) readiness, and per-source problems.

    A source that lists each namespace on its own (the Kubernetes source with
    `--namespace a,b`) gives `namespaces`: the store is then ready only once every kind has
    been listed in every one of them, and a relist of one namespace replaces that
    namespace's objects only. The default, `("",)`, is one list of all namespaces per kind.
    """

    def __init__(self, kinds: Iterable[str], *, namespaces: Iterable[str] = ("",)) -> None:
        self._objects: dict[ObjectKey, RawObject] = {}
        # A cluster-scoped kind (IngressClass) is one list, whatever the namespaces.
        self._pending: set[tuple[str, str]] = {
            (k, "" if k in CLUSTER_SCOPED_KINDS else ns) for k in kinds for ns in namespaces
        }
        self._problems: dict[str, tuple[Problem, ...]] = {}
        self._listeners: list[Callable[[], None]] = []
        self.version = 0
        #: (version, endpoint Services, changed Services, other) per change, oldest first.
        self._journal: deque[tuple[int, frozenset[ServiceName], frozenset[ServiceName], bool]]
        self._journal = deque(maxlen=JOURNAL_SIZE)
        #: EndpointSlice keys by Service, and each slice's Service.
        self._slices: dict[ServiceName, set[ObjectKey]] = {}
        self._slice_service: dict[ObjectKey, ServiceName] = {}
        #: Remote clusters' stores, by cluster name (see `add_remote`).
        self._remotes: dict[str, Store] = {}

    @property
    def ready(self) -> bool:
        """True once every kind has been listed (or loaded) at least once."""
        return not self._pending

    def pending(self) -> list[tuple[str, str]]:
        """The (kind, namespace) lists still awaited ("" = all namespaces), sorted."""
        return sorted(self._pending)

    def mark_listed(self, kind: str, *, namespace: str = "") -> bool:
        """Stop waiting for one list without changing any object.

        For a list the source cannot make (403: it is reported elsewhere): waiting for it
        would keep every other Service off the air, while it has no objects to lose.
        """
        if (kind, namespace) not in self._pending:
            return False
        self._pending.discard((kind, namespace))
        self._changed(other=True)
        return True

    def get(self, key: ObjectKey) -> RawObject | None:
        return self._objects.get(key)

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def add_remote(self, cluster: str, remote: Store) -> None:
        """Attach a remote cluster's store: each of its changes becomes, here, an
        endpoint change of the Services it touched (its readiness is not ours: a
        remote cluster never holds back the local one)."""
        if cluster in self._remotes:
            raise ValueError(f"remote cluster {cluster!r} attached twice")
        self._remotes[cluster] = remote
        seen = remote.version

        def forward() -> None:
            nonlocal seen
            changes = remote.changes_since(seen)
            seen = remote.version
            if changes is None:  # cannot happen (called on every change): be safe
                self._changed(other=True)
                return
            touched = changes.endpoints | changes.services
            if touched:
                self._changed(_Touched(endpoints=set(touched)))

        remote.add_listener(forward)

    def upsert(self, obj: RawObject) -> bool:
        key = key_of(obj)
        if self._objects.get(key) == obj:
            return False
        touched = _Touched()
        self._put(key, obj, touched)
        self._changed(touched)
        return True

    def delete(self, key: ObjectKey) -> bool:
        if key not in self._objects:
            return False
        touched = _Touched()
        self._put(key, None, touched)
        self._changed(touched)
        return True

    def _put(self, key: ObjectKey, obj: RawObject | None, touched: _Touched) -> None:
        """Set (or with None, delete) one object, keeping the slice index and noting
        what it touched."""
        service = (key.namespace, key.name)
        if key.kind == "EndpointSlice":
            old = self._slice_service.pop(key, None)
            if old is not None:
                self._slices[old].discard(key)
                if not self._slices[old]:
                    del self._slices[old]
                touched.endpoints.add(old)
            if obj is not None:
                service = (key.namespace, _service_label(obj))
                self._slice_service[key] = service
                self._slices.setdefault(service, set()).add(key)
                touched.endpoints.add(service)
        elif key.kind == "Endpoints":
            touched.endpoints.add(service)
        elif key.kind in ("Service", "ServiceExport"):
            touched.services.add(service)
        else:
            touched.other = True
        if obj is None:
            del self._objects[key]
        else:
            self._objects[key] = obj

    def endpoints_of(self, services: Iterable[ServiceName]) -> Snapshot:
        """Only these Services and their endpoints (EndpointSlices, Endpoints), read
        through the index: the input of the fast path's partial translation."""
        wanted = services if isinstance(services, frozenset | set) else list(services)
        objects: dict[ObjectKey, RawObject] = {}
        for namespace, name in wanted:
            keys = [ObjectKey(k, namespace, name) for k in _SERVICE_KINDS]
            for key in (*keys, *self._slices.get((namespace, name), ())):
                obj = self._objects.get(key)
                if obj is not None:
                    objects[key] = obj
        remote = {name: store.endpoints_of(wanted) for name, store in self._remotes.items()}
        return Snapshot(version=self.version, objects=objects, remote=MappingProxyType(remote))

    def changes_since(self, version: int) -> Changes | None:
        """What changed after `version`, or None when the journal no longer reaches back
        that far (the caller then does a full sync). Proportional to the changes."""
        endpoints: set[ServiceName] = set()
        services: set[ServiceName] = set()
        other = False
        if version > self.version:
            return None
        if version < self.version and (not self._journal or self._journal[0][0] > version + 1):
            return None
        for at, changed_endpoints, changed_services, changed_other in reversed(self._journal):
            if at <= version:
                break
            endpoints |= changed_endpoints
            services |= changed_services
            other = other or changed_other
        return Changes(frozenset(endpoints), frozenset(services), other)

    def replace(self, kind: str, objects: Iterable[RawObject], *, namespace: str = "") -> bool:
        """Make the objects of `kind` (in `namespace`, or all when "") exactly `objects`,
        in one step, and mark that list done.

        This is what a (re)list does: objects absent from the list are gone, but only from
        the namespace listed (a relist of `a` must not delete `b`'s objects).
        """
        return self.replace_many({kind: objects}, namespace=namespace)

    def replace_many(
        self, kinds: Mapping[str, Iterable[RawObject]], *, namespace: str = ""
    ) -> bool:
        """`replace` for several kinds as one change, so no snapshot ever holds new
        Services beside old endpoints (the file source reads all kinds at once)."""
        with gc_paused():  # a list of 10,000s of objects: collect once, after
            return self._replace_many(kinds, namespace=namespace)

    def _replace_many(self, kinds: Mapping[str, Iterable[RawObject]], *, namespace: str) -> bool:
        changed = False
        touched = _Touched()
        for kind, objects in kinds.items():
            new = {}
            for obj in objects:
                key = key_of(obj)
                if key.kind != kind or (namespace and key.namespace != namespace):
                    raise ValueError(f"{key} given as a {kind} of {namespace or 'any namespace'}")
                new[key] = obj
            old = {
                k: v
                for k, v in self._objects.items()
                if k.kind == kind and (not namespace or k.namespace == namespace)
            }
            if (kind, namespace) in self._pending:
                self._pending.discard((kind, namespace))
                touched.other = changed = True
            if new != old:
                for key in old.keys() - new.keys():
                    self._put(key, None, touched)
                for key, obj in new.items():
                    if old.get(key) != obj:
                        self._put(key, obj, touched)
                changed = True
        if changed:
            self._changed(touched)
        return changed

    def set_problems(self, source: str, problems: Iterable[Problem]) -> bool:
        value = tuple(sorted(set(problems)))
        if self._problems.get(source, ()) == value:
            return False
        self._problems[source] = value
        self._changed(other=True)
        return True

    def snapshot(self) -> Snapshot:
        problems = tuple(p for name in sorted(self._problems) for p in self._problems[name])
        remote = {name: store.snapshot() for name, store in self._remotes.items()}
        return Snapshot(
            version=self.version,
            objects=MappingProxyType(dict(self._objects)),
            source_problems=problems,
            remote=MappingProxyType(remote),
        )

    def _changed(self, touched: _Touched | None = None, *, other: bool = False) -> None:
        self.version += 1
        touched = touched or _Touched()
        self._journal.append(
            (
                self.version,
                frozenset(touched.endpoints),
                frozenset(touched.services),
                touched.other or other,
            )
        )
        for listener in self._listeners:
            listener()


@dataclass(slots=True)
class _Touched:
    """What one store change touched, gathered while it is applied."""

    endpoints: set[ServiceName] = field(default_factory=set)
    services: set[ServiceName] = field(default_factory=set)
    other: bool = False


def _service_label(obj: RawObject) -> str:
    """The Service an EndpointSlice belongs to (its kubernetes.io/service-name label)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
    return str(service) if service else ""
